import test from 'ava';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import { daemonEnv, ROOT, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';

// sessionctl as a user runs it: `node bin/sessionctl.js ...` against a real daemon on a private Redis.

const BIDDER = `
export const strategy = {
  id: 'test-bidder',
  name: 'Bids at half the price, once per symbol',
  paramsSchema: { safeParse: (v) => ({ success: true, data: v ?? {} }) },
  initialState: () => ({ bid: {} }),
  step(state, bars) {
    const bid = { ...state.bid };
    const signals = [];
    for (const b of bars) {
      if (bid[b.symbol]) continue;
      bid[b.symbol] = true;
      signals.push({ key: b.symbol + ':bid', symbol: b.symbol, side: 'buy', qty: 1, type: 'limit', limitPrice: b.close / 2 });
    }
    return { state: { bid }, signals };
  },
};
`;

let redis: RedisServerHandle;
let daemon: DaemonProcess;
let queue: string;
let dir: string;
let dbFile: string;

test.before(async () => {
  redis = await startTestRedis();
  dir = tempDir('sessiond-ctl-');
  // A user strategy (listed in a config file) that bids at half the price once per symbol: its orders stay open.
  const bidder = join(dir, 'bidder.mjs');
  writeFileSync(bidder, BIDDER);
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ strategies: { modules: [bidder] } }));
  const env = daemonEnv(redis.url, dir, { SESSIOND_CONFIG: config, SESSIOND_DATA_DIRS: dir });
  queue = env.SESSIOND_QUEUE!;
  dbFile = env.SESSIOND_DB!;
  daemon = spawnDaemon(env);
  await daemon.waitForLog((l) => l.msg === 'ready', 90_000);
});

test.after.always(async () => {
  daemon?.kill('SIGTERM');
  await daemon?.exited;
  await redis?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ctl(args: string[], opts: { queue?: string; timeoutMs?: number } = {}): Promise<Run> {
  const all = ['--redis', redis.url, '--queue', opts.queue ?? queue, '--timeout', String(opts.timeoutMs ?? 60_000), ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/sessionctl.js'), ...all], { cwd: dir, env: { ...process.env, REDIS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

const json = <T = Record<string, any>>(r: Run): T => JSON.parse(r.stdout) as T;
const until = untilWithin(60_000);

function readDb<T>(fn: (db: BetterSqlite3.Database) => T): T {
  const db = new BetterSqlite3(dbFile, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

type OrderRow = { client_order_id: string; symbol: string; status: string; reason: string | null };
const ordersOf = (sessionId: string): OrderRow[] =>
  readDb((db) => db.prepare('SELECT client_order_id, symbol, status, reason FROM orders WHERE session_id = ? ORDER BY symbol').all(sessionId) as OrderRow[]);

// Hour-long bars: this session does not trade during the test.
const SLOW_FEED = '{"type":"synthetic","seed":11,"intervalMs":3600000}';
const FAST_FEED = '{"type":"synthetic","seed":12,"intervalMs":200}';

test.serial('start takes --config, with --params, --feed and flags overriding its fields; --json and tables print the outcome', async (t) => {
  const cfg = join(dir, 'session.json');
  writeFileSync(
    cfg,
    JSON.stringify({ kind: 'paper', strategy: { id: 'sma-crossover', params: { fast: 4, slow: 8 } }, symbols: ['AAA'], executionMode: 'signal-only', riskControls: { maxOrderQty: 5 } }),
  );
  const r = await ctl(['--json', 'start', '--config', cfg, '--session-id', 'ctl-1', '--params', '{"fast":3,"slow":9}', '--feed', SLOW_FEED, '--mode', 'auto', '--symbols', 'AAA,BBB']);
  t.is(r.code, 0, r.stderr);
  const view = json(r);
  t.like(view, { id: 'ctl-1', kind: 'paper', status: 'running', strategyId: 'sma-crossover', executionMode: 'auto', symbols: ['AAA', 'BBB'], riskControls: { maxOrderQty: 5 } });
  // What the daemon stored: the params and the feed from the flags.
  const row = readDb((db) => db.prepare('SELECT strategy, feed FROM sessions WHERE id = ?').get('ctl-1') as { strategy: string; feed: string });
  t.like(JSON.parse(row.strategy), { id: 'sma-crossover', params: { fast: 3, slow: 9 } });
  t.like(JSON.parse(row.feed), { type: 'synthetic', seed: 11, intervalMs: 3_600_000 });

  // A table by default: a header naming the columns, one row per session.
  const list = await ctl(['list', '--active']);
  t.is(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  t.regex(lines[0]!, /^ID\s+KIND\s+STATUS\s+STRATEGYID/);
  t.true(lines.some((l) => /^ctl-1\s+paper\s+running\s+sma-crossover/.test(l)), list.stdout);
  // `show` prints one record as key: value lines.
  const show = await ctl(['show', 'ctl-1']);
  t.is(show.code, 0, show.stderr);
  t.regex(show.stdout, /status\s*:?\s+running/);
  t.throws(() => JSON.parse(show.stdout));
});

test.serial('a rejection exits 1 with CODE: message on stderr (and the error as JSON with --json)', async (t) => {
  const r = await ctl(['resume', 'ctl-1']);
  t.is(r.code, 1);
  t.is(r.stderr.trim(), 'INVALID_TRANSITION: session ctl-1 is running; cannot resume');
  const j = await ctl(['--json', 'pause', 'nobody']);
  t.is(j.code, 1);
  t.deepEqual(json(j), { error: { code: 'SESSION_NOT_FOUND', message: 'session nobody does not exist' } });
});

test('usage errors exit 2', async (t) => {
  const missing = await ctl(['start', '--kind', 'paper', '--symbols', 'AAA']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /start needs --strategy/);
  const badJson = await ctl(['start', '--kind', 'paper', '--strategy', 'sma-crossover', '--symbols', 'AAA', '--params', '{nope']);
  t.is(badJson.code, 2);
  t.regex(badJson.stderr, /--params is not valid JSON/);
  const noArg = await ctl(['pause']);
  t.is(noArg.code, 2);
  t.regex(noArg.stderr, /missing required argument/);
});

test('no daemon within --timeout: exit 3, and the command is withdrawn so it is never applied later', async (t) => {
  const nobody = `${queue}-unconsumed`;
  const r = await ctl(['pause', 'ctl-1', '--id', 'withdrawn-1'], { queue: nobody, timeoutMs: 1500 });
  t.is(r.code, 3);
  t.regex(r.stderr, /^TIMEOUT: no daemon took command withdrawn-1 within 1500 ms; it was withdrawn and not applied/);
  // Nothing is left on that queue for a daemon to pick up later.
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const q = new Queue(nobody, { connection, prefix: 'sessiond' });
  try {
    t.is(await q.getJob('withdrawn-1'), undefined);
    t.like(await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized'), { waiting: 0, active: 0, delayed: 0, prioritized: 0 });
  } finally {
    await q.close();
    connection.disconnect();
  }
});

test('Redis unreachable: exit 3 after the connect wait (not the whole --timeout), nothing submitted', async (t) => {
  // A port nothing listens on.
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  // With a 10-minute --timeout, waiting for it would fail this test by ava's own timeout.
  const r = await new Promise<Run>((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/sessionctl.js'), '--redis', `redis://127.0.0.1:${port}`, '--timeout', '600000', 'list'], { cwd: dir, env: { ...process.env, REDIS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
  t.is(r.code, 3);
  t.regex(r.stderr, new RegExp(`^TIMEOUT: Redis unreachable \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); command \\S+ was not submitted`));
});

test.serial('approve and reject go through the queue; kill-switch cancels the open orders of the sessions it stops', async (t) => {
  const start = await ctl(['start', '--kind', 'paper', '--strategy', 'test-bidder', '--symbols', 'AAA,BBB', '--session-id', 'ctl-confirm', '--mode', 'confirm', '--feed', FAST_FEED]);
  t.is(start.code, 0, start.stderr);
  const [a, b] = await until('two orders held for approval', () => {
    const o = ordersOf('ctl-confirm');
    return o.length === 2 && o.every((x) => x.status === 'pending_approval') ? o : undefined;
  });
  const approved = await ctl(['--json', 'approve', 'ctl-confirm', a!.client_order_id]);
  t.is(approved.code, 0, approved.stderr);
  t.like(json(approved), { clientOrderId: a!.client_order_id, status: 'accepted' });
  const rejected = await ctl(['--json', 'reject', 'ctl-confirm', b!.client_order_id, '--reason', 'not today']);
  t.is(rejected.code, 0, rejected.stderr);
  t.like(json(rejected), { clientOrderId: b!.client_order_id, status: 'rejected', reason: 'rejected by operator: not today' });
  t.deepEqual(ordersOf('ctl-confirm').map((o) => o.status), ['accepted', 'rejected']);

  // The approved bid at half the price does not fill: it is open when the kill-switch lands.
  const kill = await ctl(['--json', 'kill-switch', '--reason', 'drill']);
  t.is(kill.code, 0, kill.stderr);
  const stopped = json<{ id: string; status: string; stopReason: string }[]>(kill);
  t.deepEqual(stopped.map((v) => v.id).sort(), ['ctl-1', 'ctl-confirm']);
  t.true(stopped.every((v) => v.status === 'stopped' && v.stopReason === 'drill'));
  t.like(ordersOf('ctl-confirm')[0], { client_order_id: a!.client_order_id, status: 'cancelled', reason: 'session stopped (drill)' });
});

test('backtest run and backtest record store results judged against the thresholds', async (t) => {
  const csv = join(dir, 'wave.csv');
  const rows = Array.from({ length: 120 }, (_, i) => {
    const p = 100 + 10 * Math.sin(i / 5);
    return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 0.5},${p - 0.5},${p},100`;
  });
  writeFileSync(csv, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  const run = await ctl(['--json', 'backtest', 'run', '--strategy', 'sma-crossover', '--data', csv, '--params', '{"fast":2,"slow":5}']);
  t.is(run.code, 0, run.stderr);
  const ran = json(run);
  t.is(ran.strategyId, 'sma-crossover');
  t.true(ran.metrics.trades >= 3, JSON.stringify(ran.metrics));
  t.is(typeof ran.passed, 'boolean');
  t.true(Array.isArray(ran.checks) && ran.checks.length > 0);

  const result = join(dir, 'result.json');
  writeFileSync(result, JSON.stringify({ returnPct: -4, maxDrawdownPct: 8, sharpe: 1.3, trades: 40 }));
  const rec = await ctl(['--json', 'backtest', 'record', '--strategy', 'rsi-mean-reversion', '--file', result]);
  t.is(rec.code, 0, rec.stderr);
  const recorded = json(rec);
  t.like(recorded, { strategyId: 'rsi-mean-reversion', metrics: { returnPct: -4, maxDrawdownPct: 8, sharpe: 1.3, trades: 40 }, passed: false });
  // The default threshold is a return of at least 0: that is the check that failed.
  t.deepEqual(
    (recorded.checks as { passed: boolean; name?: string; reason?: string }[]).filter((c) => !c.passed).length,
    1,
    JSON.stringify(recorded.checks),
  );
  const stored = readDb((db) => db.prepare('SELECT strategy_id, passed FROM backtests ORDER BY created_at').all() as { strategy_id: string; passed: number }[]);
  t.deepEqual(stored.map((s) => s.strategy_id).sort(), ['rsi-mean-reversion', 'sma-crossover']);
});
