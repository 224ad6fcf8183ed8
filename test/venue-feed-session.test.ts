import test from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/daemon.js';
import { AlpacaEmulator } from './emulators/alpaca/alpaca-emulator.js';
import { BinanceEmulator } from './emulators/binance/binance-emulator.js';
import { buildTradingRig, type TradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';
import { ordersOf, passPrerequisites } from './helpers/venues.js';

const until = untilWithin(30_000, { pollMs: 20 });
const RECORDER = join(ROOT, 'test/fixtures/strategies/venue-bar-recorder.ts');
const KEY = 'vfs-key-0q9w8e7r6t';
const SECRET = 'vfs-secret-5y4u3i2o1p';
const ENV = { V_KEY: KEY, V_SECRET: SECRET };

const steppedTimes = (rig: TradingRig, id: string): number[] => ((rig.services.runners.runnerState(id)?.state ?? { times: [] }) as { times: number[] }).times;

test.serial('a live session trades on Binance 1s venue bars; a daemon restart that misses bars backfills them: no bar stepped twice or skipped', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const file = join(tempDir(), 'sessiond.db');
  const open = () =>
    buildTradingRig({
      file,
      modules: [RECORDER],
      brokers: { bn: { type: 'ccxt', exchange: 'binance', sandbox: false, apiKeyEnv: 'V_KEY', secretEnv: 'V_SECRET', urls: em.ccxtUrls, timeoutMs: 2000 } },
      env: ENV,
      reconcile: { intervalMs: 0, unknownTimeoutMs: 60_000 },
    });
  let rig = await open();
  let closed = false;
  t.teardown(async () => {
    if (!closed) await rig.close();
  });
  const params = { qty: 0.001, at: 2 };
  await passPrerequisites(rig, 'test-venue-bar-recorder', params, 'BTC/USDT');
  // The feed is checked at start: a timeframe the venue lacks is refused, naming it.
  const bad = await t.throwsAsync(rig.manager.startSession({ id: 'live-bad-tf', kind: 'live', strategy: { id: 'test-venue-bar-recorder', params }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'venue', timeframe: '7m' } }));
  t.regex(bad!.message, /timeframe 7m is not one binance has/);
  const paperVenue = await t.throwsAsync(rig.manager.startSession({ id: 'paper-venue', kind: 'paper', strategy: { id: 'test-venue-bar-recorder', params }, symbols: ['BTC/USDT'], feed: { type: 'venue', timeframe: '1s' } }));
  t.regex(paperVenue!.message, /a venue feed needs a live broker/);

  await rig.manager.startSession({ id: 'live-vf', kind: 'live', strategy: { id: 'test-venue-bar-recorder', params }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'venue', timeframe: '1s' } });
  await until('the order on the second venue bar filled', () => ordersOf(rig, 'live-vf').find((o) => o.status === 'filled'));
  await until('four bars stepped', () => steppedTimes(rig, 'live-vf').length >= 4);
  t.is(em.orders.length, 1);
  t.is(em.klineEvents > 0, true, 'bars came over the stream');
  await rig.close();
  closed = true;
  // What the stopped daemon left in SQLite.
  const db = new BetterSqlite3(file, { readonly: true });
  const row = db.prepare('SELECT strategy_state, cursor FROM runner_state WHERE session_id = ?').get('live-vf') as { strategy_state: string; cursor: number };
  db.close();
  const before = (JSON.parse(row.strategy_state) as { times: number[] }).times;
  t.is(row.cursor, before.at(-1)!, 'the cursor is the last stepped bar time');
  // Down for three bars and more.
  await new Promise((r) => setTimeout(r, 3200));
  rig = await open();
  closed = false;
  const restartedAt = Date.now();
  await until('bars stepped after the restart, up to now', () => {
    const times = steppedTimes(rig, 'live-vf');
    return times.length >= before.length + 4 && times.at(-1)! >= Math.floor(restartedAt / 1000) * 1000 ? times : undefined;
  });
  const times = steppedTimes(rig, 'live-vf');
  t.deepEqual(times.slice(0, before.length), before);
  // Every step had a bar: "nothing yet" is not a step.
  const state = rig.services.runners.runnerState('live-vf')!.state as { steps: number; times: number[] };
  t.is(state.steps, state.times.length);
  for (let i = 1; i < times.length; i++) t.is(times[i]! - times[i - 1]!, 1000, `bar ${i}: ${times[i - 1]} then ${times[i]}`);
  t.is(em.orders.length, 1, 'no order placed again');
  t.is(rig.manager.getSession('live-vf').status, 'running');
});

test.serial('a live session trades on Alpaca 1h venue bars (the last closed hour first), its fill seen between bars', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const rig = await buildTradingRig({
    file: join(tempDir(), 'sessiond.db'),
    modules: [RECORDER],
    brokers: { ap: { type: 'alpaca', paper: true, keyIdEnv: 'V_KEY', secretKeyEnv: 'V_SECRET', baseUrl: em.url, dataUrl: em.url, timeoutMs: 2000, rateLimit: { maxRequests: 1000, intervalMs: 1000 } } },
    env: ENV,
  });
  t.teardown(() => rig.close());
  const params = { qty: 2, at: 1 };
  await passPrerequisites(rig, 'test-venue-bar-recorder', params, 'AAPL');
  const bad = await t.throwsAsync(rig.manager.startSession({ id: 'live-1s', kind: 'live', strategy: { id: 'test-venue-bar-recorder', params }, brokerId: 'ap', symbols: ['AAPL'], feed: { type: 'venue', timeframe: '1s' } }));
  t.regex(bad!.message, /timeframe 1s is not one Alpaca has/);
  const startedAt = Date.now();
  await rig.manager.startSession({ id: 'live-ap', kind: 'live', strategy: { id: 'test-venue-bar-recorder', params }, brokerId: 'ap', symbols: ['AAPL'], feed: { type: 'venue', timeframe: '1h' } });
  const order = await until('the order filled', () => ordersOf(rig, 'live-ap').find((o) => o.status === 'filled'));
  t.is(order.filledQty, 2);
  t.is(em.orders.length, 1);
  const times = steppedTimes(rig, 'live-ap');
  const hour = 3_600_000;
  // The hour that closed last before the start (or, across an hour boundary, the one after it).
  t.true(times[0] === Math.floor(startedAt / hour) * hour - hour || times[0] === Math.floor(startedAt / hour) * hour, `first bar ${times[0]}`);
  // The next bar is up to an hour away: the fill was asked for between bars.
  t.is(times.length, 1);
  t.true(em.server.requests.some((r) => r.path === '/v2/stocks/bars'));
});
