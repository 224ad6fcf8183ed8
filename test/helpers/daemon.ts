import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function tempDir(prefix = 'sessiond-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface DaemonProcess {
  child: ChildProcess;
  /** Every stdout line parsed as JSON (pino), in order. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the first log line matching. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnDaemonOptions {
  /** Program and arguments. @defaultValue node --import=tsx src/daemon/main.ts */
  command?: [string, ...string[]];
  /** Its own process group (a terminal's foreground job): signal the group with `process.kill(-pid, sig)`. */
  detached?: boolean;
}

/** Runs `src/daemon/main.ts` as a child process (like `npm start`) with the given env. */
export function spawnDaemon(env: Record<string, string>, options: SpawnDaemonOptions = {}): DaemonProcess {
  const [program, ...args] = options.command ?? [process.execPath, '--import=tsx', join(ROOT, 'src/daemon/main.ts')];
  const child = spawn(program, args, {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', SESSIOND_HTTP: 'false', SESSIOND_REDIS_EMBEDDED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { raw: line };
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  return {
    child,
    logs,
    stderr: () => err,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitForLog(pred, timeoutMs = 60_000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${err.slice(-2000)}`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`daemon exited (${code ?? signal}) before the log line; stderr: ${err.slice(-2000)}`));
        });
      });
    },
  };
}

/** Env for a daemon on a test Redis and a temp SQLite file. */
export function daemonEnv(redisUrl: string, dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    SESSIOND_DB: join(dir, 'sessiond.db'),
    // Replay and backtest files the tests write beside the database may be read.
    SESSIOND_DATA_DIRS: dir,
    SESSIOND_QUEUE: `test-${Math.random().toString(36).slice(2)}`,
    ...extra,
  };
}
