import test from 'ava';
import { join } from 'node:path';
import { createVenueBrokers } from '../src/brokers/broker-factory.js';
import type { BrokersConfig } from '../src/brokers/broker-config.js';
import type { VenueBroker } from '../src/brokers/venue/venue-broker.js';
import type { Bar } from '../src/domain/market.js';
import { createFeed } from '../src/market-data/feed.js';
import { VenueFeed } from '../src/market-data/venue-feed.js';
import { openDatabase } from '../src/persistence/database.js';
import { AlpacaEmulator } from './emulators/alpaca/alpaca-emulator.js';
import { BinanceEmulator, kline } from './emulators/binance/binance-emulator.js';
import { tempDir } from './helpers/daemon.js';
import { untilWithin } from './helpers/until.js';

const until = untilWithin(20_000, { pollMs: 10 });
const KEY = 'feed-key-1a2b3c4d5e';
const SECRET = 'feed-secret-6f7g8h9i0j';
const ENV = { F_KEY: KEY, F_SECRET: SECRET };

async function binanceBroker(t: { teardown(fn: () => unknown): void }, em: BinanceEmulator, streams = true): Promise<VenueBroker> {
  const db = openDatabase(join(tempDir(), 'feed.db'));
  const brokers: BrokersConfig = { bn: { type: 'ccxt', exchange: 'binance', sandbox: false, apiKeyEnv: 'F_KEY', secretEnv: 'F_SECRET', urls: em.ccxtUrls, timeoutMs: 1000, streams } };
  const [broker] = await createVenueBrokers(brokers, db, { env: ENV });
  t.teardown(async () => {
    await broker!.close();
    db.close();
  });
  return broker!;
}

/** Steps the feed as the runner does (next() on every wake and every intervalMs) and records what it returns. */
function drive(feed: VenueFeed): { steps: Bar[][]; stop(): void } {
  const steps: Bar[][] = [];
  const step = () => {
    for (let b = feed.next(); b.length > 0; b = feed.next()) steps.push(b);
  };
  feed.onReady(() => setImmediate(step));
  const timer = setInterval(step, feed.intervalMs);
  step();
  return { steps, stop: () => clearInterval(timer) };
}

function assertContiguous(t: { is(a: unknown, b: unknown, m?: string): void; true(v: boolean, m?: string): void }, times: number[], ms: number): void {
  for (let i = 1; i < times.length; i++) t.is(times[i]! - times[i - 1]!, ms, `bar ${i}: ${times[i - 1]} then ${times[i]} (stepped twice or skipped)`);
}

test.serial('Binance 1s venue feed over the kline stream: a dropped stream that stays down is backfilled from history, no bar doubled or skipped', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const broker = await binanceBroker(t, em);
  const feed = createFeed({ type: 'venue', timeframe: '1s' }, ['BTC/USDT', 'ETH/USDT'], { venue: broker.bars }) as VenueFeed;
  t.teardown(() => feed.close());
  t.is(feed.kind, 'venue');
  t.deepEqual(feed.next(), [], 'nothing due the instant it starts: an empty batch, not null');
  const run = drive(feed);
  t.teardown(() => run.stop());
  await until('bars from the stream', () => feed.stats.streamBars >= 6);
  const historyBefore = feed.stats.historyRequests;
  // The dropped-stream fault: connections cut and refused for ~2.5 bars.
  em.server.acceptStreams = false;
  t.true(em.server.dropStreams() >= 1);
  const droppedAt = Date.now();
  await until('the drop noticed', () => feed.stats.streamDrops >= 1);
  await until('bars from history while the stream is down', () => feed.stats.historyBars >= 2 && Date.now() - droppedAt > 2500);
  em.server.acceptStreams = true;
  const barsBack = feed.stats.streamBars;
  await until('the stream back', () => feed.stats.streamBars >= barsBack + 3);
  run.stop();
  t.true(feed.stats.historyRequests > historyBefore);
  t.true(em.server.streamConnections >= 2, 'reconnected');
  const times = run.steps.map((b) => b[0]!.time);
  t.true(times.length >= 6, `${times.length} steps`);
  assertContiguous(t, times, 1000);
  // Each step has both symbols' bar of that time, with the venue's values, closed when stepped.
  for (const bars of run.steps) {
    t.deepEqual(bars.map((b) => b.symbol), ['BTC/USDT', 'ETH/USDT']);
    for (const b of bars) {
      const spec = em.markets.get(b.symbol.replace('/', ''))!;
      t.is(b.close, Number(kline(spec.price, b.time, 1000).c));
    }
  }
});

test.serial('a venue feed reopened at its cursor (a restart) steps the bars it missed from history, then the live ones', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const broker = await binanceBroker(t, em, false);
  const first = createFeed({ type: 'venue', timeframe: '1s' }, ['BTC/USDT'], { venue: broker.bars }) as VenueFeed;
  const a = drive(first);
  await until('three bars', () => a.steps.length >= 3);
  a.stop();
  first.close();
  const cursor = first.cursor;
  t.is(cursor, a.steps.at(-1)![0]!.time);
  await new Promise((r) => setTimeout(r, 3200)); // "down" for three bars and more
  const second = createFeed({ type: 'venue', timeframe: '1s' }, ['BTC/USDT'], { venue: broker.bars }) as VenueFeed;
  t.teardown(() => second.close());
  second.seek(cursor);
  const b = drive(second);
  t.teardown(() => b.stop());
  await until('the missed bars and two live ones', () => b.steps.length >= 5 && b.steps.at(-1)![0]!.time > Date.now() - 2500);
  b.stop();
  const times = [...a.steps, ...b.steps].map((x) => x[0]!.time);
  assertContiguous(t, times, 1000);
  t.is(b.steps[0]![0]!.time, cursor + 1000);
});

test.serial('a feed whose history answers 5xx and 429 keeps its place and backfills once the venue answers', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const broker = await binanceBroker(t, em, false);
  const feed = createFeed({ type: 'venue', timeframe: '1s' }, ['BTC/USDT'], { venue: broker.bars }) as VenueFeed;
  t.teardown(() => feed.close());
  const run = drive(feed);
  t.teardown(() => run.stop());
  await until('two bars', () => run.steps.length >= 2);
  // More failures than the read retries absorb: the feed backs off, then catches up.
  em.inject({ match: 'GET /api/v3/klines', kind: 'status503', times: 4 });
  em.inject({ match: 'GET /api/v3/klines', kind: 'status429', times: 3 });
  const n = run.steps.length;
  await until('the faults served', () => em.server.faults.length === 0);
  await until('bars after the faults', () => run.steps.length >= n + 3);
  run.stop();
  assertContiguous(t, run.steps.map((x) => x[0]!.time), 1000);
});

test.serial('Alpaca 1m venue feed: the last closed minute first; timeframes the venue lacks are refused naming them', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const db = openDatabase(join(tempDir(), 'feed.db'));
  const [broker] = await createVenueBrokers({ ap: { type: 'alpaca', paper: true, keyIdEnv: 'F_KEY', secretKeyEnv: 'F_SECRET', baseUrl: em.url, dataUrl: em.url } }, db, { env: ENV });
  t.teardown(async () => {
    await broker!.close();
    db.close();
  });
  const bad = t.throws(() => createFeed({ type: 'venue', timeframe: '1s' }, ['AAPL'], { venue: broker!.bars }));
  t.is((bad as { code?: string }).code, 'VALIDATION_ERROR');
  t.regex(bad!.message, /broker ap: timeframe 1s is not one Alpaca has/);
  const noVenue = t.throws(() => createFeed({ type: 'venue', timeframe: '1m' }, ['AAPL'], {}));
  t.regex(noVenue!.message, /a venue feed needs a live broker/);
  const feed = createFeed({ type: 'venue', timeframe: '1m' }, ['AAPL', 'MSFT'], { venue: broker!.bars }) as VenueFeed;
  t.teardown(() => feed.close());
  const run = drive(feed);
  t.teardown(() => run.stop());
  const [bars] = await until('the last closed minute', () => (run.steps.length > 0 ? run.steps : undefined));
  t.is(bars!.length, 2);
  t.is(bars![0]!.time, Math.floor(Date.now() / 60_000) * 60_000 - 60_000);
  t.deepEqual(bars!.map((b) => b.symbol), ['AAPL', 'MSFT']);
});
