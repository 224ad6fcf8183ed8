import { readFileSync } from 'node:fs';
import { startRedisServer, type RedisServerHandle } from '../../src/daemon/redis-server.js';

export type { RedisServerHandle };

/** A private redis-server on a free port, nothing persisted: one per test file. */
export async function startTestRedis(port?: number): Promise<RedisServerHandle> {
  return startRedisServer(port === undefined ? {} : { port });
}

/** The kernel's ephemeral port range: where listen(0) and outgoing connections take their ports. */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

export interface RestartableRedis {
  readonly port: number;
  readonly url: string;
  current: RedisServerHandle;
  stop(): Promise<void>;
  /** Starts redis-server again on the same port (retrying while the old one's port is still being released). */
  restart(): Promise<RedisServerHandle>;
}

/**
 * A redis-server the test can stop and start again on the same port. The port is taken below the
 * ephemeral range, so while it is released no other test's free port (listen(0)) or client socket can
 * take it; starting is retried on another port at first, and on the same port on restart.
 */
export async function startRestartableRedis(): Promise<RestartableRedis> {
  const low = ephemeralLow();
  let lastErr: unknown;
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * Math.max(1, low - 10_000));
    let handle: RedisServerHandle;
    try {
      handle = await startRedisServer({ port });
    } catch (err) {
      lastErr = err;
      continue;
    }
    const self: RestartableRedis = {
      port,
      url: handle.url,
      current: handle,
      stop: () => self.current.stop(),
      async restart() {
        let err: unknown;
        for (let i = 0; i < 25; i++) {
          try {
            self.current = await startRedisServer({ port });
            return self.current;
          } catch (e) {
            err = e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        throw err;
      },
    };
    return self;
  }
  throw lastErr;
}
