import { startRedisServer, type RedisServerHandle } from '../../src/daemon/redis-server.js';

export type { RedisServerHandle };

/** A private redis-server on a free port, nothing persisted: one per test file. */
export async function startTestRedis(port?: number): Promise<RedisServerHandle> {
  return startRedisServer(port === undefined ? {} : { port });
}
