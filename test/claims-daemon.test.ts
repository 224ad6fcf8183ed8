import test from 'ava';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import { freePort, pingRedis } from '../src/daemon/redis-server.js';
import type { SessionView } from '../src/domain/session.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';

// README claims about the daemon process, each checked on a real daemon (src/daemon/main.ts as `npm start` runs it).

/** Polls an async check until it yields a value other than undefined/false. */
async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, pollMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

/** The exit code, or 'still running' (then killed) when the daemon has not exited within the deadline. */
async function exitCode(d: DaemonProcess, ms = 90_000): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([d.exited.then((e) => e.code), new Promise<'still running'>((res) => (timer = setTimeout(() => res('still running'), ms)))]);
  clearTimeout(timer);
  d.kill('SIGKILL');
  return r;
}

test('off loopback the daemon refuses to start without a token, or with one under 16 characters (exit 2)', async (t) => {
  const db = join(tempDir(), 'x.db');
  const bare = spawnDaemon({ SESSIOND_HTTP: 'true', SESSIOND_HTTP_HOST: '0.0.0.0', SESSIOND_HTTP_PORT: '0', SESSIOND_DB: db });
  const short = spawnDaemon({ SESSIOND_HTTP: 'true', SESSIOND_HTTP_HOST: '0.0.0.0', SESSIOND_HTTP_PORT: '0', SESSIOND_HTTP_TOKEN: 'fifteen-chars-x', SESSIOND_DB: db });
  t.is(await exitCode(bare), 2);
  t.regex(bare.stderr(), /http\.token: is required when http\.host is 0\.0\.0\.0 \(not loopback\)/);
  t.is(await exitCode(short), 2);
  t.regex(short.stderr(), /http\.token: must be at least 16 characters \(from env SESSIOND_HTTP_TOKEN\)/);
  t.false(short.stderr().includes('fifteen-chars-x'), 'the rejected token is not echoed');
});

test('without redis-server on PATH the daemon exits with a one-line message saying how to get it', async (t) => {
  const port = await freePort();
  const d = spawnDaemon({
    PATH: tempDir('sessiond-empty-path-'),
    REDIS_URL: `redis://127.0.0.1:${port}`,
    SESSIOND_REDIS_EMBEDDED: 'true',
    SESSIOND_REDIS_DIR: tempDir(),
    SESSIOND_DB: join(tempDir(), 'x.db'),
  });
  t.is(await exitCode(d), 1);
  const lines = d.stderr().trim().split('\n');
  t.is(lines.length, 1, d.stderr());
  t.regex(lines[0]!, new RegExp(`^sessiond: no Redis answered at redis://127\\.0\\.0\\.1:${port} and redis-server is not installed: run \`sudo apt-get install -y redis-server\``));
});

test('with no Redis at a local REDIS_URL the daemon starts its own redis-server there (append-only file in its dir) and stops it on exit', async (t) => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redisDir = tempDir('sessiond-embedded-');
  // Runners disabled as well: sessions change state and nothing trades.
  const env = daemonEnv(url, tempDir(), { SESSIOND_REDIS_EMBEDDED: 'true', SESSIOND_REDIS_DIR: redisDir, SESSIOND_RUNNERS: 'false' });
  const d = spawnDaemon(env);
  let client: CommandClient | undefined;
  try {
    await d.waitForLog(isReady, 90_000);
    // Created once the daemon's redis-server is up (a client connecting earlier just retries).
    client = new CommandClient({ redisUrl: url, queueName: env.SESSIOND_QUEUE });
    t.like(d.logs.find((l) => l.msg === 'started a private redis-server'), { redisUrl: url, dir: redisDir });
    t.true(await pingRedis(url));
    const started = await client.submit<SessionView>('start', { id: 'emb-1', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'], feed: { type: 'synthetic', intervalMs: 10 } }, { timeoutMs: 60_000 });
    t.is(started.status, 'running');
    t.is((await client.submit<SessionView>('pause', { sessionId: 'emb-1' }, { timeoutMs: 60_000 })).status, 'paused');
    t.is((await client.submit<SessionView>('resume', { sessionId: 'emb-1' }, { timeoutMs: 60_000 })).status, 'running');
    // The session is running on 10 ms bars; with runners disabled no step runs and nothing is ordered.
    await new Promise((r) => setTimeout(r, 1000));
    await client.close();
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    t.false(await pingRedis(url), 'the private redis-server stopped with the daemon');
    t.true(readdirSync(redisDir, { recursive: true }).some((f) => String(f).includes('appendonly')), 'its append-only file is in redis.embeddedDir');
    const db = new BetterSqlite3(env.SESSIOND_DB!, { readonly: true });
    try {
      t.deepEqual(db.prepare('SELECT COUNT(*) AS n FROM orders').get(), { n: 0 });
      t.deepEqual(db.prepare('SELECT COUNT(*) AS n FROM runner_state').get(), { n: 0 });
      t.is((db.prepare("SELECT status FROM sessions WHERE id = 'emb-1'").get() as { status: string }).status, 'running');
    } finally {
      db.close();
    }
  } finally {
    await client?.close();
    d.kill('SIGKILL');
    await d.exited;
    // A daemon killed before its own stop leaves its redis-server (its own process group) running.
    if (await pingRedis(url)) {
      const leftover = new Redis(url);
      await leftover.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      leftover.disconnect();
    }
  }
});

test('SIGTERM with a command in flight: the command finishes, its outcome is recorded, and the daemon exits 0', async (t) => {
  const redis = await startTestRedis();
  const dir = tempDir('sessiond-drain-');
  // A backtest over 5,000 bars: long enough to be caught running.
  const csv = join(dir, 'long.csv');
  const rows = Array.from({ length: 5000 }, (_, i) => {
    const p = 100 + 10 * Math.sin(i / 7);
    return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 0.5},${p - 0.5},${p},100`;
  });
  writeFileSync(csv, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  // The drain waits up to shutdown.drainTimeoutMs: generous here, a loaded machine runs the backtest slowly.
  const env = daemonEnv(redis.url, dir, { SESSIOND_DATA_DIRS: dir, SESSIOND_DRAIN_TIMEOUT_MS: '120000' });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(env.SESSIOND_QUEUE!, { connection, prefix: 'sessiond' });
  const d = spawnDaemon(env);
  try {
    await d.waitForLog(isReady, 90_000);
    await queue.add('backtest', { strategyId: 'sma-crossover', data: csv, params: { fast: 3, slow: 9 } }, { jobId: 'drain-bt' });
    await eventually('the backtest running', async () => (await queue.getJobState('drain-bt')) === 'active', 60_000, 5);
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    const job = (await queue.getJob('drain-bt'))!;
    t.is(await job.getState(), 'completed', job.failedReason);
    t.like(job.returnvalue, { strategyId: 'sma-crossover', steps: 5000 });
    const db = new BetterSqlite3(env.SESSIOND_DB!, { readonly: true });
    try {
      t.like(db.prepare("SELECT outcome FROM commands WHERE id = 'drain-bt'").get(), { outcome: 'ok' });
      t.is((db.prepare("SELECT COUNT(*) AS n FROM backtests WHERE strategy_id = 'sma-crossover'").get() as { n: number }).n, 1);
    } finally {
      db.close();
    }
    // In that order: the signal, the command's outcome, then the exit.
    const at = (pred: (l: Record<string, unknown>) => boolean) => d.logs.findIndex(pred);
    const stopping = at((l) => String(l.msg).startsWith('stopping'));
    t.true(stopping >= 0 && stopping < at((l) => l.commandId === 'drain-bt' && l.outcome === 'ok'));
    t.true(at((l) => l.commandId === 'drain-bt') < at((l) => l.msg === 'stopped'));
  } finally {
    d.kill('SIGKILL');
    await queue.close();
    connection.disconnect();
    await redis.stop();
  }
});

test('config: env overrides the SESSIOND_CONFIG file, which overrides the defaults; Redis passwords and tokens stay out of logs, views and snapshots; metrics move as a session trades', async (t) => {
  const redis = await startTestRedis();
  const PASSWORD = 'redis-pass-7f3a9c';
  const TOKEN = 'http-token-5be41d0c93';
  const SECRET = 'broker-secret-0d9e1f';
  const admin = new Redis(redis.url);
  await admin.config('SET', 'requirepass', PASSWORD);
  admin.disconnect();
  const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`;
  const dir = tempDir('sessiond-layers-');
  const file = join(dir, 'config.json');
  // The file sets the queue name (env overrides it), the prefix (nothing overrides it) and an HTTP port (env overrides it).
  writeFileSync(file, JSON.stringify({ queue: { name: 'from-file', prefix: 'file-prefix' }, http: { port: 1 } }));
  const queueName = `from-env-${Math.random().toString(36).slice(2)}`;
  const env = daemonEnv(url, dir, {
    SESSIOND_CONFIG: file,
    SESSIOND_QUEUE: queueName,
    SESSIOND_HTTP: 'true',
    SESSIOND_HTTP_PORT: '0',
    SESSIOND_HTTP_TOKEN: TOKEN,
  });
  const d = spawnDaemon(env);
  const client = new CommandClient({ redisUrl: url, queueName, prefix: 'file-prefix' });
  try {
    await d.waitForLog(isReady, 90_000);
    const consuming = d.logs.find((l) => l.msg === 'consuming commands')!;
    t.like(consuming, { queue: queueName, prefix: 'file-prefix' });
    t.is(consuming.redisUrl, `redis://:***@127.0.0.1:${redis.port}`);
    const port = (d.logs.find((l) => l.msg === 'http listening')!.port as number);
    t.not(port, 1);
    const base = `http://127.0.0.1:${port}`;
    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      t.is(res.status, 200, path);
      return res.text();
    };
    const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const m0 = await get('/metrics');
    t.is(metric(m0, 'sessiond_runner_steps_total'), 0);
    t.is(metric(m0, 'sessiond_bar_to_order_seconds_count'), 0);

    // A start carrying a secret in a field the config does not have is refused; nothing of it is kept.
    const refused = await t.throwsAsync(
      client.submit('start', { id: 'sec-0', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'], apiKey: SECRET }, { timeoutMs: 60_000 }),
    );
    t.is((refused as { code?: string }).code, 'VALIDATION_ERROR');
    t.false(String((refused as Error).message).includes(SECRET));
    // A session that trades: buy-and-hold buys each symbol on its first 50 ms bar.
    await client.submit('start', { id: 'sec-1', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA', 'BBB'], feed: { type: 'synthetic', intervalMs: 50 } }, { timeoutMs: 60_000 });
    const text1 = await eventually('steps and an order acknowledged', async () => {
      const text = await get('/metrics');
      return metric(text, 'sessiond_bar_to_order_seconds_count') >= 1 && metric(text, 'sessiond_runner_steps_total') > 0 ? text : undefined;
    });
    const steps1 = metric(text1, 'sessiond_runner_steps_total');
    t.true(steps1 > 0);
    t.true(metric(text1, 'sessiond_bar_to_order_seconds_count') >= 1);
    t.true(metric(text1, 'sessiond_bar_to_order_seconds_sum') > 0);
    await eventually('more steps', async () => metric(await get('/metrics'), 'sessiond_runner_steps_total') > steps1);

    // Views, snapshots, history and logs hold neither the Redis password, the HTTP token nor the refused secret.
    const detail = await get('/api/sessions/sec-1');
    t.like(JSON.parse(detail), { session: { id: 'sec-1', status: 'running' } });
    t.truthy(JSON.parse(detail).snapshot);
    const everything = [detail, await get('/api/sessions'), await get('/api/sessions/sec-1/orders'), JSON.stringify(await client.submit('list-sessions', {}, { timeoutMs: 60_000 }))];
    await client.close();
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    const stdout = JSON.stringify(d.logs) + d.stderr();
    const files = readdirSync(dir).filter((f) => f.startsWith('sessiond.db')).map((f) => readFileSync(join(dir, f)).toString('latin1'));
    for (const secret of [PASSWORD, TOKEN, SECRET]) {
      t.false(everything.some((x) => x.includes(secret)), `${secret} in an API answer`);
      t.false(stdout.includes(secret), `${secret} in the logs`);
      t.false(files.some((x) => x.includes(secret)), `${secret} in the SQLite files`);
    }
  } finally {
    await client.close();
    d.kill('SIGKILL');
    await d.exited;
    await redis.stop();
  }
});
