import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { resolve } from 'node:path';

/** redis-server is not on PATH. */
export class RedisNotInstalledError extends Error {
  readonly code = 'REDIS_NOT_INSTALLED';
  constructor(url: string) {
    super(`no Redis answered at ${url} and redis-server is not installed: run \`sudo apt-get install -y redis-server\` or set REDIS_URL to a running Redis`);
    this.name = this.constructor.name;
  }
}

export interface RedisServerHandle {
  url: string;
  port: number;
  process: ChildProcess;
  /** Stops the server (SIGTERM: it writes its AOF when persistent) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** @defaultValue a free port */
  port?: number;
  /** Directory for the append-only file; without it nothing is persisted. */
  dir?: string;
  /** Called when the server exits before `stop()` asked it to (a crash, a signal from elsewhere). */
  onUnexpectedExit?: (how: { code: number | null; signal: NodeJS.Signals | null }) => void;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

/** True when a Redis answers PING at the URL within the timeout (raw RESP, no client needed). */
export function pingRedis(url: string, timeoutMs = 500): Promise<boolean> {
  const u = new URL(url);
  return new Promise((res) => {
    const socket = new Socket();
    let buf = '';
    const done = (ok: boolean) => {
      socket.destroy();
      res(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (d) => {
      buf += d.toString();
      // PONG, or NOAUTH/WRONGPASS: either way a Redis is there.
      if (buf.includes('+PONG') || buf.includes('NOAUTH') || buf.includes('WRONGPASS')) done(true);
      else if (buf.split('\r\n').length > 3) done(false);
    });
    socket.connect(Number(u.port || 6379), u.hostname || '127.0.0.1', () => {
      const pass = decodeURIComponent(u.password);
      socket.write(pass ? `AUTH ${pass}\r\nPING\r\n` : 'PING\r\n');
    });
  });
}

/** Starts a private redis-server on 127.0.0.1, `maxmemory-policy noeviction` as BullMQ needs. */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const port = options.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--maxmemory-policy', 'noeviction', '--save', ''];
  if (options.dir) {
    const dir = resolve(options.dir);
    mkdirSync(dir, { recursive: true });
    args.push('--dir', dir, '--appendonly', 'yes');
  } else {
    args.push('--appendonly', 'no');
  }
  const url = `redis://127.0.0.1:${port}`;
  // Its own process group (detached): the terminal's Ctrl-C goes to sessiond's group only, so the server is
  // still up while sessiond drains, and sessiond stops it last.
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stopping: Promise<void> | undefined;
  const exited = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      if (stopping === undefined) options.onUnexpectedExit?.({ code, signal });
      r();
    }),
  );
  await new Promise<void>((res, rej) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        res();
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', (err: NodeJS.ErrnoException) => rej(err.code === 'ENOENT' ? new RedisNotInstalledError(url) : err));
    child.once('exit', (code) => rej(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    url,
    port,
    process: child,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      })();
      return stopping;
    },
  };
}

export interface EnsuredRedis {
  url: string;
  /** The private server sessiond started, when it started one. */
  embedded?: RedisServerHandle;
}

/**
 * Uses the Redis at `url` when it answers; otherwise, when allowed and the URL is local, starts a private
 * redis-server on that URL's port (so `sessionctl` finds it at the same REDIS_URL), persisting under `dir`.
 */
export async function ensureRedis(
  url: string,
  options: { embedded: boolean; dir: string; onUnexpectedExit?: StartRedisOptions['onUnexpectedExit'] },
): Promise<EnsuredRedis> {
  if (await pingRedis(url, 1000)) return { url };
  const u = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(u.hostname);
  if (!options.embedded || !local) return { url };
  const handle = await startRedisServer({
    port: Number(u.port || 6379),
    dir: options.dir,
    ...(options.onUnexpectedExit ? { onUnexpectedExit: options.onUnexpectedExit } : {}),
  });
  return { url: handle.url, embedded: handle };
}
