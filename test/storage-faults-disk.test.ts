import test from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import type { SessionView } from '../src/domain/session.js';
import { bookProblems } from './helpers/book.js';
import { daemonEnv, spawnDaemon, tempDir } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';

// A real full disk: the daemon's database on a small tmpfs, filled by a file until ENOSPC, then freed.
// Mounting needs root (CI runs as root); elsewhere this test is skipped and says why.
const mountPoint = join(tempDir('sessiond-full-disk-'), 'disk');
mkdirSync(mountPoint);
let mounted = false;
let mountError = '';
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  mounted = true;
} catch (err) {
  mountError = String((err as { stderr?: Buffer }).stderr ?? err).trim();
}
test.after.always(() => {
  if (mounted) execFileSync('umount', ['-l', mountPoint]);
});

/** Writes zeros until the file system is full; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  let chunk = 1 << 20;
  let total = 0;
  try {
    while (chunk >= 1) {
      try {
        total += writeSync(fd, Buffer.alloc(chunk));
      } catch {
        chunk >>= 1;
      }
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

async function poll<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Orders are written when they are placed (runner_state only every runners.stateCommitMs): a session that
// trades adds orders.
const orderCount = (file: string, id: string): number => {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM orders WHERE session_id = ?').get(id) as { n: number }).n;
  } finally {
    db.close();
  }
};

(mounted ? test : test.skip)('a daemon whose disk fills stays up, answers STORAGE_UNAVAILABLE and 503, and resumes by itself when space frees', async (t) => {
  if (!mounted) t.log(`tmpfs not mountable here: ${mountError}`);
  const redis = await startTestRedis();
  const env = daemonEnv(redis.url, mountPoint, { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0' });
  const file = env.SESSIOND_DB!;
  const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
  const d = spawnDaemon(env);
  const filler = join(mountPoint, 'filler');
  try {
    const { port } = (await d.waitForLog((l) => l.msg === 'http listening', 30_000)) as { port: number };
    await d.waitForLog((l) => l.msg === 'ready', 30_000);
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return { status: res.status, body: (await res.json()) as { down: string[]; checks: Record<string, { ok: boolean; detail?: string }> } };
    };
    const ids = ['fd-1', 'fd-2', 'fd-3'];
    for (const id of ids) {
      await client.submit('start', { id, kind: 'paper', strategy: { id: 'sma-crossover', params: { fast: 2, slow: 3 } }, symbols: ['AAA', 'BBB'], feed: { type: 'synthetic', intervalMs: 20 } });
    }
    await poll('trading', () => ids.every((id) => orderCount(file, id) > 3));

    t.true(fill(filler) > 0);
    await d.waitForLog((l) => l.msg === 'SQLite cannot write: runners hold, statuses unchanged', 30_000);
    t.like(d.logs.find((l) => l.msg === 'SQLite cannot write: runners hold, statuses unchanged'), { err: 'database or disk is full' });
    const down = await poll('/readyz 503', async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    });
    t.deepEqual(down.body.down, ['sqlite']);
    t.regex(down.body.checks.sqlite!.detail!, /\(SQLITE_FULL\)$/);
    // A new session needs new rows: refused with the clear code, and nothing of it is left behind. (A write
    // can still fit now and then, when SQLite reuses its log: then the start simply succeeds; try a few.)
    let refused: { code?: string; message: string } | undefined;
    for (let i = 0; refused === undefined && i < 50; i++) {
      try {
        const v = await client.submit<SessionView>('start', { id: `fd-new-${i}`, kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'] });
        t.is(v.status, 'running');
        ids.push(v.id);
      } catch (err) {
        refused = err as { code?: string; message: string };
        t.is(refused.code, 'STORAGE_UNAVAILABLE', refused.message);
        // A start is two writes: `created` on its own (so a crash before START leaves a session a redelivery
        // starts), then START. When only the first fit, the session stays `created`; it never runs.
        const left = await client.submit<SessionView>('get-session', { sessionId: `fd-new-${i}` }).catch((err: { code?: string }) => err);
        if ('status' in left) t.is(left.status, 'created', 'a refused start never leaves a running session');
        else t.is(left.code, 'SESSION_NOT_FOUND');
      }
    }
    t.truthy(refused, 'a start was refused while the disk was full');
    t.regex(refused!.message, /^SQLite cannot write \(SQLITE_FULL: database or disk is full\); the command was not applied/);
    t.is(d.child.exitCode, null, 'the daemon is up');
    for (const id of ids) t.is((await client.submit<SessionView>('get-session', { sessionId: id })).status, 'running', `${id} unchanged`);

    rmSync(filler);
    await d.waitForLog((l) => l.msg === 'runners resumed after a storage fault', 30_000);
    await poll('/readyz 200', async () => (await readyz()).status === 200);
    const after = Object.fromEntries(ids.map((id) => [id, orderCount(file, id)]));
    await poll('orders again', () => ids.slice(0, 3).every((id) => orderCount(file, id) > after[id]! + 3));
    t.is((await client.submit<SessionView>('pause', { sessionId: 'fd-1' })).status, 'paused');
    t.false(d.logs.some((l) => l.msg === 'runner failed: stopping the session'), 'no session was failed for the disk');

    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    t.deepEqual(bookProblems(file), []);
  } finally {
    d.kill('SIGKILL');
    rmSync(filler, { force: true });
    await client.close();
    await redis.stop();
  }
});
