import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Redis } from 'ioredis';
import { CommandClient } from '../src/commands/command-client.js';
import { BinanceEmulator } from './emulators/binance/binance-emulator.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';
import { writeBars, writeVenueDaemonConfig } from './helpers/venues.js';

const until = untilWithin(30_000, { pollMs: 50, retryOnError: true });
const KEY = 'daemon-key-7c1e9a2b4d6f8h0j';
const SECRET = 'daemon-secret-3k5m7n9p1q2r4s6t';
const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

function book(file: string, sessionId: string) {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    return {
      orders: db.prepare('SELECT client_order_id, status, filled_qty FROM orders WHERE session_id = ?').all(sessionId) as { client_order_id: string; status: string; filled_qty: number }[],
      fills: db.prepare('SELECT id, qty FROM fills WHERE session_id = ? ORDER BY id').all(sessionId) as { id: string; qty: number }[],
      positions: db.prepare('SELECT symbol, qty FROM positions WHERE session_id = ?').all(sessionId) as { symbol: string; qty: number }[],
    };
  } finally {
    db.close();
  }
}

test('a daemon SIGKILLed between submit and ack restarts with no duplicate at the venue, the fills made while down recorded and positions equal to the venue', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const redis = await startTestRedis();
  const dir = tempDir('sessiond-venue-daemon-');
  // The submit's answer is held by the emulator: the config's long client timeout keeps the daemon waiting for it.
  const configFile = writeVenueDaemonConfig(dir, em.ccxtUrls);
  const env = daemonEnv(redis.url, dir, { SESSIOND_CONFIG: configFile, SESSIOND_HTTP: 'true', BN_KEY: KEY, BN_SECRET: SECRET });
  const file = env.SESSIOND_DB!;
  const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
  const daemons: DaemonProcess[] = [];
  const spawn = async () => {
    const d = spawnDaemon(env);
    daemons.push(d);
    await d.waitForLog(isReady, 90_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last logs: ${JSON.stringify(d.logs.slice(-5))}`);
    });
    return d;
  };
  const params = { qty: 0.01, limitPrice: 49_000 };
  const views: unknown[] = [];
  try {
    let d = await spawn();
    views.push(await client.submit('backtest', { strategyId: 'test-venue-buyer', params, data: writeBars(join(dir, 'bars.csv'), 'BTC/USDT', 50_000) }));
    views.push(await client.submit('start', { id: 'paper-1', kind: 'paper', strategy: { id: 'test-venue-buyer', params }, symbols: ['BTC/USDT'], feed: { type: 'synthetic', intervalMs: 20, startPrice: 100 } }));
    views.push(await client.submit('stop', { sessionId: 'paper-1' }));
    em.inject({ match: 'POST /api/v3/order', kind: 'accept-then-timeout' });
    views.push(await client.submit('start', { id: 'live-k', kind: 'live', strategy: { id: 'test-venue-buyer', params }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'synthetic', intervalMs: 50, startPrice: 50_000 } }));
    // The venue took the order; the daemon has not seen the answer: the order is still `new` in SQLite.
    await until('the order at the venue', () => em.orders.length === 1);
    t.deepEqual(book(file, 'live-k').orders.map((o) => o.status), ['new']);
    d.kill('SIGKILL');
    await d.exited;
    // Fills while the daemon is down: part by hand, the rest when the price crosses the limit.
    const cid = em.orders[0]!.clientOrderId;
    em.fill(cid, 0.004);
    em.setPrice('BTCUSDT', 48_000);
    t.is(em.trades.length, 2);

    d = await spawn();
    const after = book(file, 'live-k');
    t.is(em.orders.length, 1, 'no second order at the venue');
    t.is(em.server.count('POST', '/api/v3/order'), 1);
    t.deepEqual(after.orders.map((o) => [o.status, o.filled_qty]), [['filled', 0.01]]);
    t.deepEqual(after.fills.map((f) => f.id), em.trades.map((x) => `bn:BTC/USDT:${x.id}`).sort());
    t.is(after.positions.length, 1);
    t.true(Math.abs(after.positions[0]!.qty - em.balance('BTC')) < 1e-9, `local ${after.positions[0]!.qty} venue ${em.balance('BTC')}`);
    t.true(d.logs.some((l) => l.msg === 'venues reconciled'));

    // Credentials never leave the environment: not in logs, views, job data, SQLite or the HTTP API.
    const http = d.logs.find((l) => l.msg === 'http listening') as { port: number };
    const api = await Promise.all(['/metrics', '/api/sessions', '/api/sessions/live-k', '/api/sessions/live-k/orders'].map(async (p) => (await fetch(`http://127.0.0.1:${http.port}${p}`)).text()));
    const r = new Redis(redis.url);
    const jobs: string[] = [];
    for (const key of await r.keys('*')) {
      const type = await r.type(key);
      if (type === 'hash') jobs.push(JSON.stringify(await r.hgetall(key)));
      else if (type === 'string') jobs.push(String(await r.get(key)));
      else if (type === 'list') jobs.push(JSON.stringify(await r.lrange(key, 0, -1)));
    }
    r.disconnect();
    t.true(jobs.join('').includes('live-k'), 'the job data was read');
    const everything = [
      ...daemons.flatMap((x) => [JSON.stringify(x.logs), x.stderr()]),
      JSON.stringify(views),
      ...api,
      ...jobs,
      readFileSync(file).toString('latin1'),
    ].join('\n');
    t.true(everything.includes('live-k'));
    t.false(everything.includes(KEY), 'api key leaked');
    t.false(everything.includes(SECRET), 'secret leaked');
  } finally {
    for (const x of daemons) x.kill('SIGKILL');
    await Promise.all(daemons.map((x) => x.exited));
    await client.close();
    await redis.stop();
    await em.close();
  }
});

test('a broker credential missing from the environment stops the daemon at start, naming the variable', async (t) => {
  const dir = tempDir('sessiond-venue-cred-');
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ brokers: { bn: { type: 'ccxt', exchange: 'binance', apiKeyEnv: 'BN_KEY_MISSING_X', secretEnv: 'BN_SECRET_X' } } }));
  const d = spawnDaemon({ ...daemonEnv('redis://127.0.0.1:1', dir, { SESSIOND_CONFIG: configFile }), BN_SECRET_X: 'present-secret-value' });
  const { code } = await d.exited;
  t.is(code, 2);
  t.regex(d.stderr(), /brokers\.bn: broker bn: environment variable BN_KEY_MISSING_X is not set/);
  t.false(d.stderr().includes('present-secret-value'));
});
