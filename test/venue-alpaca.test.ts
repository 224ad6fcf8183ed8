import test from 'ava';
import { join } from 'node:path';
import { venueClientOrderId } from '../src/brokers/venue/client-order-id.js';
import { SessiondError } from '../src/domain/errors.js';
import { AlpacaEmulator } from './emulators/alpaca/alpaca-emulator.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig, type TradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';
import { VENUE_BUYER, ordersOf, passPrerequisites } from './helpers/venues.js';

const until = untilWithin(20_000);
const KEY = 'PKTESTKEY1234567890';
const SECRET = 'alpaca-test-secret-abcdef0123456789';
const ENV = { AP_KEY: KEY, AP_SECRET: SECRET };

async function rigOn(em: AlpacaEmulator, file: string, timeoutMs = 2000): Promise<TradingRig> {
  return buildTradingRig({
    file,
    modules: [VENUE_BUYER],
    brokers: {
      ap: { type: 'alpaca', paper: true, keyIdEnv: 'AP_KEY', secretKeyEnv: 'AP_SECRET', baseUrl: em.url, dataUrl: em.url, timeoutMs, rateLimit: { maxRequests: 1000, intervalMs: 1000 } },
    },
    env: ENV,
  });
}

const LIVE = (id: string, symbol: string, params: Record<string, unknown>) => ({
  id,
  kind: 'live' as const,
  strategy: { id: 'test-venue-buyer', params },
  brokerId: 'ap',
  symbols: [symbol],
  feed: { type: 'synthetic' as const, seed: 5, intervalMs: 50, startPrice: 400 },
});

test.serial('a live session trades end to end on the Alpaca emulator after passing its prerequisites', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET, fillParts: 2, fillDelayMs: 30 });
  await em.start();
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    const params = { qty: 3.7 };
    await passPrerequisites(rig, 'test-venue-buyer', params, 'MSFT');
    const bad = await t.throwsAsync(rig.manager.startSession(LIVE('live-bad', 'NOPE', params)));
    t.is((bad as SessiondError).code, 'VALIDATION_ERROR');
    t.regex((bad as Error).message, /symbol NOPE is not a market of broker ap/);

    await rig.manager.startSession(LIVE('live-a', 'MSFT', params));
    const order = await until('the order filled', () => ordersOf(rig, 'live-a').find((o) => o.status === 'filled'));
    // MSFT is not fractionable: 3.7 rounded down to 3 whole shares before it was sent.
    t.is(em.orders.length, 1);
    t.is(em.orders[0]!.qty, 3);
    t.is(order.filledQty, 3);
    t.is(order.brokerOrderId, em.orders[0]!.id);
    t.regex(em.orders[0]!.client_order_id, /^sd-[0-9a-f]{8}-[0-9a-f]{20}$/);
    const fills = await until('both partial fills', () => {
      const f = rig.services.orders.listFills('live-a');
      return f.length === 2 ? f : undefined;
    });
    t.deepEqual(fills.map((f) => f.qty).sort(), [1, 2]);
    t.is(rig.services.orders.positions('live-a')[0]!.qty, em.positions.get('MSFT') ?? 0);
    const report = await rig.services.runners.reconcileVenues();
    t.deepEqual(report.mismatches, []);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('Alpaca: accept-then-timeout ends with exactly one order at the venue in the venue state', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  em.inject({ match: 'POST /v2/orders', kind: 'accept-then-timeout' });
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'), 300);
  try {
    const params = { qty: 2 };
    await passPrerequisites(rig, 'test-venue-buyer', params, 'AAPL');
    await rig.manager.startSession(LIVE('live-t', 'AAPL', params));
    const order = await until('the order resolved to the venue state', () => ordersOf(rig, 'live-t').find((o) => o.status === 'filled'));
    const history = rig.services.orders.history(order.clientOrderId).map((h) => h.status);
    t.deepEqual(history.slice(0, 2), ['new', 'unknown']);
    t.is(history.at(-1), 'filled');
    t.is(em.orders.length, 1);
    t.is(em.server.count('POST', '/v2/orders'), 1);
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('Alpaca: fills made while the daemon is down are recorded at restart, once each, and positions equal the venue', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  em.autoFill = false;
  const file = join(tempDir(), 'sessiond.db');
  let rig = await rigOn(em, file);
  try {
    const params = { qty: 5 };
    await passPrerequisites(rig, 'test-venue-buyer', params, 'MSFT');
    await rig.manager.startSession(LIVE('live-down', 'MSFT', params));
    const order = await until('the order accepted', () => ordersOf(rig, 'live-down').find((o) => o.status === 'accepted'));
    await rig.close();
    // The daemon is down: the venue fills the order in two parts.
    const cid = em.orders[0]!.client_order_id;
    em.fill(cid, 2);
    em.fill(cid);
    t.is(em.fills.length, 2);
    rig = await rigOn(em, file);
    const after = ordersOf(rig, 'live-down').find((o) => o.clientOrderId === order.clientOrderId)!;
    t.is(after.status, 'filled');
    t.is(after.filledQty, 5);
    t.deepEqual(rig.services.orders.listFills('live-down').map((f) => f.qty).sort(), [2, 3]);
    t.is(rig.services.orders.positions('live-down')[0]!.qty, em.positions.get('MSFT') ?? NaN);
    t.is(em.orders.length, 1, 'nothing placed again');
    t.is(rig.manager.getSession('live-down').status, 'running');
  } finally {
    await rig.close();
    await em.close();
  }
});

test.serial('Alpaca: 422 "client_order_id must be unique" is read as already placed: looked up, nothing placed twice', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  em.autoFill = false;
  const rig = await rigOn(em, join(tempDir(), 'sessiond.db'));
  try {
    const params = { qty: 2 };
    await passPrerequisites(rig, 'test-venue-buyer', params, 'AAPL');
    const venueId = venueClientOrderId('sd-', 'live-dup', 'live-dup:buy-once');
    // Someone (this daemon before a lost answer) placed it already.
    const placed = await fetch(`${em.url}/v2/orders`, {
      method: 'POST',
      headers: { 'APCA-API-KEY-ID': KEY, 'APCA-API-SECRET-KEY': SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify({ symbol: 'AAPL', qty: '2', side: 'buy', type: 'market', time_in_force: 'day', client_order_id: venueId }),
    });
    t.is(placed.status, 200);
    await rig.manager.startSession(LIVE('live-dup', 'AAPL', params));
    const order = await until('the order acknowledged', () => ordersOf(rig, 'live-dup').find((o) => o.status === 'accepted'));
    t.deepEqual(rig.services.orders.history(order.clientOrderId).map((h) => h.status), ['new', 'accepted'], 'known at once, never unknown');
    t.is(em.server.count('POST', '/v2/orders'), 2, 'ours was answered 422');
    t.is(em.ordersWithClientId(venueId).length, 1);
    t.is(order.brokerOrderId, em.orders[0]!.id);
  } finally {
    await rig.close();
    await em.close();
  }
});
