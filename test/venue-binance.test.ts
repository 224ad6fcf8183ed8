import test from 'ava';
import { join } from 'node:path';
import { venueClientOrderId } from '../src/brokers/venue/client-order-id.js';
import { SessiondError } from '../src/domain/errors.js';
import { BinanceEmulator } from './emulators/binance/binance-emulator.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig, type TradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';
import { VENUE_BUYER, ordersOf, passPrerequisites, pauseReasons } from './helpers/venues.js';

const until = untilWithin(20_000);
const KEY = 'bn-test-key-9f8e7d6c5b4a';
const SECRET = 'bn-test-secret-0a1b2c3d4e5f';
const ENV = { BN_KEY: KEY, BN_SECRET: SECRET };
const PARAMS = { qty: 0.0123456 };

// Each test has its own emulator and SQLite file; serial so two pools and emulators do not share 2 cores.
async function rigOn(em: BinanceEmulator, file: string, extra: { timeoutMs?: number; unknownTimeoutMs?: number } = {}): Promise<TradingRig> {
  return buildTradingRig({
    file,
    modules: [VENUE_BUYER],
    brokers: { bn: { type: 'ccxt', exchange: 'binance', sandbox: false, apiKeyEnv: 'BN_KEY', secretEnv: 'BN_SECRET', urls: em.ccxtUrls, timeoutMs: extra.timeoutMs ?? 2000 } },
    env: ENV,
    reconcile: { intervalMs: 0, unknownTimeoutMs: extra.unknownTimeoutMs ?? 60_000 },
  });
}

const LIVE = (id: string, params: Record<string, unknown> = PARAMS) => ({
  id,
  kind: 'live' as const,
  strategy: { id: 'test-venue-buyer', params },
  brokerId: 'bn',
  symbols: ['BTC/USDT'],
  feed: { type: 'synthetic' as const, seed: 7, intervalMs: 50, startPrice: 50_000 },
});

test.serial('a live session trades end to end on the Binance emulator after passing its prerequisites', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET, fillParts: 2, fillIntervalMs: 30 });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    // Without prerequisites the live start is refused.
    const refused = await t.throwsAsync(rig.manager.startSession(LIVE('live-early')));
    t.is((refused as SessiondError).code, 'PREREQUISITES_NOT_MET');
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    // A symbol the venue does not list: VALIDATION_ERROR naming it, nothing created.
    const bad = await t.throwsAsync(rig.manager.startSession({ ...LIVE('live-bad'), symbols: ['DOGE/EUR'] }));
    t.is((bad as SessiondError).code, 'VALIDATION_ERROR');
    t.regex((bad as Error).message, /symbol DOGE\/EUR is not a market of broker bn/);

    const view = await rig.manager.startSession(LIVE('live-1'));
    t.is(view.status, 'running');
    const order = await until('the order filled', () => ordersOf(rig, 'live-1').find((o) => o.status === 'filled'));
    // Rounded down to the LOT_SIZE step before it was sent; the venue's order id stored beside ours.
    const atVenue = em.orders;
    t.is(atVenue.length, 1);
    t.is(atVenue[0]!.origQty, 0.01234);
    t.is(order.filledQty, 0.01234);
    t.is(order.brokerOrderId, String(atVenue[0]!.orderId));
    t.regex(atVenue[0]!.clientOrderId, /^sd-[0-9a-f]{8}-[0-9a-f]{20}$/);
    // Two partial fills, each recorded once by the venue's trade id, with the venue's commission (taken in BTC).
    const fills = await until('both fills', () => {
      const f = rig.services.orders.listFills('live-1');
      return f.length === 2 ? f : undefined;
    });
    t.deepEqual(fills.map((f) => f.id).sort(), em.trades.map((x) => `bn:BTC/USDT:${x.id}`).sort());
    t.true(fills.every((f) => f.commission > 0));
    // The position is what the venue holds: the executed amount net of the commission.
    const position = rig.services.orders.positions('live-1').find((p) => p.symbol === 'BTC/USDT');
    t.truthy(position);
    t.true(Math.abs(position!.qty - em.balance('BTC')) < 1e-9, `local ${position!.qty} venue ${em.balance('BTC')}`);
    // A reconciliation pass finds nothing to change.
    const report = await rig.services.runners.reconcileVenues();
    t.deepEqual(report.mismatches, []);
    t.is(rig.manager.getSession('live-1').status, 'running');
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('an order under the venue minimum is refused with RISK_LIMIT and never sent', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    const params = { qty: 0.00005 }; // 0.00005 x ~50,000 = ~2.5 USDT, under NOTIONAL 5
    await passPrerequisites(rig, 'test-venue-buyer', params, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-small', params));
    const order = await until('the order refused', () => ordersOf(rig, 'live-small').find((o) => o.status === 'rejected'));
    t.regex(order.reason ?? '', /^RISK_LIMIT: cost [\d.]+ is under the venue's minimum cost 5 for BTC\/USDT$/);
    t.is(em.server.count('POST', '/api/v3/order'), 0);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('accept-then-timeout ends with exactly one order at the venue and the order in the venue state', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  em.inject({ match: 'POST /api/v3/order', kind: 'accept-then-timeout' });
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'), { timeoutMs: 300 });
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-timeout'));
    const order = await until('the order resolved to the venue state', () => ordersOf(rig, 'live-timeout').find((o) => o.status === 'filled'));
    const history = rig.services.orders.history(order.clientOrderId).map((h) => h.status);
    t.deepEqual(history, ['new', 'unknown', 'filled']);
    t.is(em.orders.length, 1);
    t.is(em.server.count('POST', '/api/v3/order'), 1);
    t.is(rig.services.orders.listFills('live-timeout').length, 1);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('a planted position difference pauses the session with the reason', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-mismatch'));
    await until('a fill', () => rig.services.orders.listFills('live-mismatch').length === 1);
    const local = rig.services.orders.positions('live-mismatch')[0]!.qty;
    em.balances.set('BTC', em.balance('BTC') + 0.5); // a transfer in, or a trade nobody here made
    const report = await rig.services.runners.reconcileVenues();
    t.is(report.mismatches.length, 1);
    await until('paused', () => rig.manager.getSession('live-mismatch').status === 'paused');
    t.deepEqual(pauseReasons(rig, 'live-mismatch'), [`reconcile_mismatch: BTC/USDT local ${local} venue ${Number((local + 0.5).toPrecision(12))}`]);
    // Nothing overwritten: the book still holds what its fills say.
    t.is(rig.services.orders.positions('live-mismatch')[0]!.qty, local);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('a venue down at start pauses only its sessions', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const file = join(tempDir(), 'sessiond.db');
  let rig = await rigOn(em, file);
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-down'));
    await rig.manager.startSession({ id: 'paper-up', kind: 'paper', strategy: { id: 'sma-crossover' }, symbols: ['AAA'], feed: { type: 'synthetic', seed: 2, intervalMs: 20 } });
    await until('a fill', () => rig.services.orders.listFills('live-down').length === 1);
    await rig.close();
    await em.close();
    // Restart while the venue is unreachable.
    rig = await rigOn(em, file, { timeoutMs: 300 });
    t.is(rig.manager.getSession('live-down').status, 'paused');
    t.deepEqual(pauseReasons(rig, 'live-down'), ['venue_unreachable']);
    t.is(rig.manager.getSession('paper-up').status, 'running');
    const steps = rig.services.runners.runnerState('paper-up')!.steps;
    await until('the paper session steps on', () => rig.services.runners.runnerState('paper-up')!.steps > steps + 2);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial("an order at the venue with this daemon's prefix and not in SQLite is recorded as external and reported; other prefixes are left alone", async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-ext'));
    const ours = await until('the session order filled', () => ordersOf(rig, 'live-ext').find((o) => o.status === 'filled'));
    // Another process with this daemon's prefix (a second daemon on the same account, a restore from an old
    // backup): its id names this session's tag but SQLite never had it.
    const venueId = em.orders[0]!.clientOrderId;
    const foreign = `${venueId.slice(0, 12)}00000000000000000000`;
    t.is(foreign.length, 32);
    t.is(em.placeDirect({ symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.00100', price: '10000.00', newClientOrderId: foreign }).status, 200);
    t.is(em.placeDirect({ symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.00100', price: '10000.00', newClientOrderId: 'manual-order-by-a-human-1' }).status, 200);
    const report = await rig.services.runners.reconcileVenues();
    t.deepEqual(report.external, [foreign]);
    const ext = ordersOf(rig, 'live-ext').find((o) => o.status === 'external');
    t.truthy(ext, 'recorded under the session its id names');
    t.is(ext!.clientOrderId, `external:${foreign}`);
    t.is(ext!.qty, 0.001);
    t.is(ext!.limitPrice, 10_000);
    t.is(ext!.brokerOrderId, String(em.orders.find((o) => o.clientOrderId === foreign)!.orderId));
    t.regex(ext!.reason ?? '', /not placed by this database/);
    t.false(ordersOf(rig, 'live-ext').some((o) => o.clientOrderId.includes('manual-order')), 'another prefix is not ours');
    // Reported once, recorded once: the next pass finds it known.
    t.deepEqual((await rig.services.runners.reconcileVenues()).external, []);
    t.is(ordersOf(rig, 'live-ext').filter((o) => o.status === 'external').length, 1);
    t.is(ordersOf(rig, 'live-ext').find((o) => o.clientOrderId === ours.clientOrderId)!.status, 'filled');
    t.is(em.server.count('POST', '/api/v3/order'), 1, 'nothing placed or cancelled for it');
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('5xx and 429 answered to a placement leave it unknown, resolved by lookups only (never sent again); lookups answered 429 are retried', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'), { unknownTimeoutMs: 1500 });
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    // Answered without being processed: the venue never had these orders, but the daemon cannot know that.
    em.inject({ match: 'POST /api/v3/order', kind: 'status503' });
    await rig.manager.startSession(LIVE('live-503'));
    await until('the first order unknown', () => ordersOf(rig, 'live-503').find((o) => o.status === 'unknown'));
    em.inject({ match: 'POST /api/v3/order', kind: 'status429' });
    em.inject({ match: 'GET /api/v3/order', kind: 'status429', times: 2 });
    await rig.manager.startSession(LIVE('live-429'));
    for (const id of ['live-503', 'live-429']) {
      const o = await until(`${id} resolved`, () => ordersOf(rig, id).find((x) => x.status === 'rejected'));
      t.deepEqual(rig.services.orders.history(o.clientOrderId).map((h) => h.status), ['new', 'unknown', 'rejected'], id);
      t.regex(o.reason ?? '', /^venue_no_such_order/, id);
    }
    t.is(em.orders.length, 0);
    t.is(em.server.count('POST', '/api/v3/order'), 2, 'each sent once');
    t.true(em.server.count('GET', '/api/v3/order') >= 4, 'asked again after the 429s');
    t.is(em.server.faults.length, 0, 'every fault served');
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial("reconciliation reads the venue's open orders once: an order open there as recorded is not looked up, one that changed is", async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    const params = { qty: 0.001, limitPrice: 40_000 };
    await passPrerequisites(rig, 'test-venue-buyer', params, 'BTC/USDT');
    await rig.manager.startSession(LIVE('live-open', params));
    const order = await until('the limit order open', () => ordersOf(rig, 'live-open').find((o) => o.status === 'accepted'));
    await rig.manager.pauseSession('live-open');
    const lookups = () => em.server.count('GET', '/api/v3/order');
    const before = lookups();
    const openLists = em.server.count('GET', '/api/v3/openOrders');
    await rig.services.runners.reconcileVenues();
    t.is(lookups(), before, 'no lookup of an order the open list shows as recorded');
    t.is(em.server.count('GET', '/api/v3/openOrders'), openLists + 1);
    // Filled at the venue meanwhile: no longer in the open list, so it is looked up and its fill recorded.
    em.setPrice('BTCUSDT', 39_000);
    await rig.services.runners.reconcileVenues();
    t.true(lookups() > before);
    t.is(ordersOf(rig, 'live-open').find((o) => o.clientOrderId === order.clientOrderId)!.status, 'filled');
    t.is(rig.services.orders.listFills('live-open').length, 1);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('a duplicate client order id answer (-2010 "Duplicate order sent.") is read as already placed: looked up, nothing placed twice', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    await passPrerequisites(rig, 'test-venue-buyer', PARAMS, 'BTC/USDT');
    // The venue already holds an open order with the id this session's order will carry (sent before a lost answer).
    const venueId = venueClientOrderId('sd-', 'live-dup', 'live-dup:buy-once');
    t.is(em.placeDirect({ symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.01234', price: '40000.00', newClientOrderId: venueId }).status, 200);
    await rig.manager.startSession(LIVE('live-dup'));
    const order = await until('the order acknowledged', () => ordersOf(rig, 'live-dup').find((o) => o.status === 'accepted'));
    t.deepEqual(rig.services.orders.history(order.clientOrderId).map((h) => h.status), ['new', 'accepted'], 'known at once, never unknown');
    t.is(em.server.count('POST', '/api/v3/order'), 1, 'the one POST was answered -2010');
    t.is(em.ordersWithClientId(venueId).length, 1);
    t.is(order.brokerOrderId, String(em.orders[0]!.orderId));
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial("ccxt's limiter is on, as its rolling window by default (the leaky bucket made every order wait its cost) and as configured", async (t) => {
  const { createCcxtExchange, loadCcxt } = await import('../src/brokers/ccxt/ccxt-client.js');
  const { BrokerConfigSchema } = await import('../src/brokers/broker-config.js');
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const ccxt = await loadCcxt();
  const base = { exchange: 'binance', sandbox: false, apiKey: KEY, secret: SECRET, urls: em.ccxtUrls, streams: false };
  type Limited = { enableRateLimit: boolean; throttler: { config: { algorithm: string; maxWeight?: number }; timestamps: { cost: number }[] } };
  const ex = createCcxtExchange(ccxt, base);
  const limited = ex as unknown as Limited;
  t.true(limited.enableRateLimit);
  t.is(limited.throttler.config.algorithm, 'rollingWindow');
  // Binance's budget: 60 s / rateLimit 50 ms = 1200 cost units a minute (6000 request weight).
  t.is(limited.throttler.config.maxWeight, 1200);
  await ex.loadMarkets();
  for (let i = 0; i < 3; i++) await ex.createOrder('BTC/USDT', 'market', 'buy', 0.001, undefined, { newClientOrderId: `lim-${i}` });
  // Every request went through the window with its cost (loadMarkets' exchangeInfo, then three orders).
  t.true(limited.throttler.timestamps.length >= 4);
  t.is(em.orders.length, 3);
  await ex.close();

  const leaky = createCcxtExchange(ccxt, { ...base, rateLimiter: 'leakyBucket' }) as unknown as Limited;
  t.is(leaky.throttler.config.algorithm, 'leakyBucket');
  t.is(BrokerConfigSchema.safeParse({ type: 'ccxt', exchange: 'binance', apiKeyEnv: 'A', secretEnv: 'B', rateLimiter: 'none' }).success, false);
});
