// Reconciliation at start: 1,000 open orders across 100 live sessions on the Binance emulator (loopback),
// time from opening the daemon's trading side to READY (recovery + the reconciliation pass), with the
// emulator's request-rate limit on (429s counted: honoured means none).
// Target: under 5 s to READY.
// Run: node --import=tsx bench/venue-reconcile.ts [--sessions 100] [--orders 10] [--rps 50]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { SqliteVenueOrderStore } from '../src/brokers/venue/venue-order-store.js';
import { venueClientOrderId } from '../src/brokers/venue/client-order-id.js';
import { BinanceEmulator } from '../test/emulators/binance/binance-emulator.js';
import { tempDir } from '../test/helpers/daemon.js';
import { buildTradingRig } from '../test/helpers/trading.js';
import { VENUE_BUYER, passPrerequisites } from '../test/helpers/venues.js';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '100' }, orders: { type: 'string', default: '10' }, rps: { type: 'string', default: '50' } } });
const SESSIONS = Number(values.sessions);
const ORDERS = Number(values.orders);
const RPS = Number(values.rps);
const KEY = 'bench-key-r3c0nc1l3';
const SECRET = 'bench-secret-r3c0nc1l3';
const env = { BB_KEY: KEY, BB_SECRET: SECRET };

const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET, balances: { USDT: 1e9 } });
await em.start();
const file = join(tempDir('sessiond-bench-reconcile-'), 'sessiond.db');
const open = () =>
  buildTradingRig({
    file,
    modules: [VENUE_BUYER],
    brokers: { bn: { type: 'ccxt', exchange: 'binance', sandbox: false, apiKeyEnv: 'BB_KEY', secretEnv: 'BB_SECRET', urls: em.ccxtUrls, timeoutMs: 5000, streams: false } },
    env,
    runners: { poolSize: 1 },
    reconcile: { intervalMs: 0, unknownTimeoutMs: 60_000 },
  });

// Setup: live sessions that never trade by themselves, each with ORDERS open limit orders recorded in SQLite
// and open at the venue (as a daemon that placed them and stopped would leave them).
let rig = await open();
const params = { qty: 0.001, at: 1_000_000_000 };
await passPrerequisites(rig, 'test-venue-buyer', params, 'BTC/USDT');
const store = new SqliteVenueOrderStore(rig.db);
const at = new Date().toISOString();
for (let s = 0; s < SESSIONS; s++) {
  const id = `live-${s}`;
  await rig.manager.startSession({ id, kind: 'live', strategy: { id: 'test-venue-buyer', params }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'synthetic', intervalMs: 60_000, startPrice: 50_000 } });
  for (let k = 0; k < ORDERS; k++) {
    const clientOrderId = `${id}:ladder-${k}`;
    const venueId = venueClientOrderId('sd-', id, clientOrderId);
    const price = (20_000 + s * 10 + k).toFixed(2);
    const answer = em.placeDirect({ symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.00100', price, newClientOrderId: venueId });
    if (answer.status !== 200) throw new Error(`setup: ${JSON.stringify(answer.body)}`);
    const orderId = String((answer.body as { orderId: number }).orderId);
    rig.services.orders.save({ clientOrderId, sessionId: id, brokerId: 'bn', accountId: 'default', symbol: 'BTC/USDT', side: 'buy', qty: 0.001, type: 'limit', limitPrice: Number(price), status: 'accepted', filledQty: 0, brokerOrderId: orderId, createdAt: at, updatedAt: at });
    store.record({ clientOrderId, brokerId: 'bn', venueClientOrderId: venueId, venueOrderId: orderId, sessionId: id, symbol: 'BTC/USDT', createdAt: at });
  }
}
await rig.close();

// Restart with the venue's rate limit on: recovery, then the reconciliation pass, then READY.
const openAtVenue = em.orders.filter((o) => o.status === 'NEW').length;
const reqBefore = em.server.requests.length;
em.maxRequestsPerSecond = RPS;
const t0 = performance.now();
rig = await open();
const readyMs = performance.now() - t0;
const requests = em.server.requests.slice(reqBefore);
const spanS = requests.length > 1 ? (requests.at(-1)!.at - requests[0]!.at) / 1000 : 0;
const stillOpen = SESSIONS === 0 ? 0 : rig.services.orders.listBySession('live-0').filter((o) => o.status === 'accepted').length;
const running = rig.manager.listSessions().filter((x) => x.kind === 'live' && x.status === 'running').length;
await rig.close();
await em.close();

console.log(`venue reconcile: ${SESSIONS} live sessions, ${openAtVenue} open orders at the venue (emulator limit ${RPS} requests/s)`);
console.log(`  READY after        ${(readyMs / 1000).toFixed(2)} s   (target < 5 s)  ${readyMs < 5000 ? 'OK' : 'MISSED'}`);
console.log(`  venue requests     ${requests.length} in ${spanS.toFixed(2)} s, 429 answers: ${em.rateLimited}`);
console.log(`  sessions running   ${running}/${SESSIONS}, orders of live-0 still open ${stillOpen}/${ORDERS}`);

