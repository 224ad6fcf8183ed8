// Bar close -> venue acknowledgement with 100 live sessions on the Binance emulator over loopback: each
// session's venue feed (1s bars from the kline stream, history as fallback) steps every bar when it
// closes, and the time from a bar's close (its open time + 1 s, wall clock) to the daemon holding the
// venue's answer to an order decided on it is taken for every order. Orders are spread over the bars
// (`--every N`: each session orders on one bar in N, phases spread, so 100/N orders a bar; default 20:
// 5 orders a bar, 300 a minute, enough for a p99). The emulator runs in a process of its own, as a venue
// does. Beside it: the submit call alone (ccxt's limiter + signing + loopback + the venue) and the
// emulator's own handler time for POST /api/v3/order, and the raw baseline, run first against the same
// emulator: ccxt alone in a process of its own (bench/fixtures/raw-venue-client.ts) watching the same stream
// and placing the same number of orders at each close, timed the same way: what this machine and the venue
// cost before sessiond adds anything.
// Target: p99 under 25 ms.
// Run: node --import=tsx bench/venue-latency.ts [--sessions 100] [--seconds 60] [--every 20] [--raw-seconds 20]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import type { BrokerOrderRequest, BrokerSubmitOptions } from '../src/brokers/broker.js';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { binanceCcxtUrls } from '../test/emulators/binance/binance-emulator.js';
import { ROOT, tempDir } from '../test/helpers/daemon.js';
import { buildTradingRig } from '../test/helpers/trading.js';
import { passPrerequisites } from '../test/helpers/venues.js';
import { pct } from './percentile.js';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '100' }, seconds: { type: 'string', default: '60' }, every: { type: 'string', default: '20' }, 'raw-seconds': { type: 'string', default: '20' } } });
const SESSIONS = Number(values.sessions);
const SECONDS = Number(values.seconds);
const EVERY = Number(values.every);
const KEY = 'bench-key-l4t3ncy00';
const SECRET = 'bench-secret-l4t3ncy00';
const STRATEGY = join(ROOT, 'bench/fixtures/venue-every-bar.ts');

const f = (x: number) => x.toFixed(1).padStart(7);

// The venue runs in a process of its own (as a venue does): its work does not share the daemon's event loop.
const venue = spawn(process.execPath, ['--import=tsx', join(ROOT, 'bench/fixtures/binance-emulator-process.ts'), JSON.stringify({ apiKey: KEY, secret: SECRET, balances: { USDT: 1e12 } })], {
  cwd: ROOT,
  stdio: ['pipe', 'pipe', 'inherit'],
});
const venueLines = createInterface({ input: venue.stdout })[Symbol.asyncIterator]();
const nextLine = async <T>(): Promise<T> => {
  const r = await venueLines.next();
  if (r.done === true) throw new Error('the emulator process ended');
  return JSON.parse(r.value as string) as T;
};
interface VenueStats {
  orders: { status: string }[];
  handled: { method: string; path: string; ms: number }[];
  closeEventLagMs: number[];
  streamConnections: number;
}
const venueStats = async (): Promise<VenueStats> => {
  venue.stdin.write('stats\n');
  return nextLine<VenueStats>();
};
const { port } = await nextLine<{ port: number }>();

// The raw baseline first, alone on the machine with the emulator.
const raw = await new Promise<number[]>((resolve, reject) => {
  const opts = { port, apiKey: KEY, secret: SECRET, seconds: Number(values['raw-seconds']), orders: Math.round(SESSIONS / EVERY), qty: 0.0002 };
  const child = spawn(process.execPath, ['--import=tsx', join(ROOT, 'bench/fixtures/raw-venue-client.ts'), JSON.stringify(opts)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += String(d)));
  child.on('error', reject);
  child.on('exit', (code) => (code === 0 ? resolve((JSON.parse(out) as { latencies: number[] }).latencies) : reject(new Error(`the raw client exited ${code}`))));
});
const rig = await buildTradingRig({
  file: join(tempDir('sessiond-bench-latency-'), 'sessiond.db'),
  modules: [STRATEGY],
  brokers: { bn: { type: 'ccxt', exchange: 'binance', sandbox: false, apiKeyEnv: 'BL_KEY', secretEnv: 'BL_SECRET', urls: binanceCcxtUrls(port), timeoutMs: 5000 } },
  env: { BL_KEY: KEY, BL_SECRET: SECRET },
  runners: { poolSize: 2, maxBatchSize: 64 },
  reconcile: { intervalMs: 0, unknownTimeoutMs: 60_000 },
});
const params = { qty: 0.0002 };
await passPrerequisites(rig, 'bench-venue-every-bar', params, 'BTC/USDT');

// The probe: when the daemon holds each order's acknowledgement (wall clock), and how long the submit took.
const broker = rig.services.venues[0]!;
const submit = broker.submit.bind(broker);
const ackAt = new Map<string, number>();
const submitMs: number[] = [];
broker.submit = async (req: BrokerOrderRequest, o?: BrokerSubmitOptions) => {
  const t0 = performance.now();
  const ack = await submit(req, o);
  submitMs.push(performance.now() - t0);
  // Wall clock, as bar times are (performance.timeOrigin + now() drifts from Date.now()).
  ackAt.set(req.clientOrderId, Date.now());
  return ack;
};

const started = Date.now();
for (let s = 0; s < SESSIONS; s++) {
  await rig.manager.startSession({ id: `lat-${s}`, kind: 'live', strategy: { id: 'bench-venue-every-bar', params: { ...params, every: EVERY, phase: s % EVERY } }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'venue', timeframe: '1s' } });
}
const allStarted = Date.now();
// Read once every session runs: the daemon's stream (and the raw client's, closed) are counted by then.
const before = await venueStats();
const handledBefore = before.handled.length;
await new Promise((r) => setTimeout(r, SECONDS * 1000));
await rig.close();
const em = await venueStats();
venue.stdin.end('close\n');

// Bars that closed after every session was running (the first bar of a session is one closed before it started).
const latencies: number[] = [];
let rejected = 0;
for (const [id, at] of ackAt) {
  const time = Number(id.split(':b:')[1]);
  if (time + 1000 <= allStarted + 1000) continue;
  latencies.push(at - (time + 1000));
}
for (const o of em.orders) if (o.status !== 'FILLED') rejected++;
const handled = em.handled.slice(handledBefore);
const posts = handled.filter((h) => h.method === 'POST' && h.path === '/api/v3/order').map((h) => h.ms);
console.log(`venue latency: ${SESSIONS} live sessions stepping every 1s venue bar (Binance emulator, kline stream, loopback), ${(SESSIONS / EVERY).toFixed(1)} orders a bar, ${SECONDS} s, starts took ${((allStarted - started) / 1000).toFixed(1)} s`);
console.log(`  orders timed ${latencies.length} (${em.orders.length} at the venue, ${rejected} not filled), stream reconnects ${em.streamConnections - before.streamConnections}`);
console.log('                                       p50     p99     max   (ms)');
console.log(`  bar close -> venue ack           ${f(pct(latencies, 50))} ${f(pct(latencies, 99))} ${f(Math.max(...latencies))}   target p99 < 25 ms: ${pct(latencies, 99) < 25 ? 'OK' : 'MISSED'}`);
console.log(`  raw ccxt, same work, alone      ${f(pct(raw, 50))} ${f(pct(raw, 99))} ${f(Math.max(...raw))}   (${raw.length} orders; sessiond adds p50 ${(pct(latencies, 50) - pct(raw, 50)).toFixed(1)}, p99 ${(pct(latencies, 99) - pct(raw, 99)).toFixed(1)})`);
console.log(`  submit call (ccxt + loopback)    ${f(pct(submitMs, 50))} ${f(pct(submitMs, 99))} ${f(Math.max(...submitMs))}`);
console.log(`  emulator's own POST order time   ${f(pct(posts, 50))} ${f(pct(posts, 99))} ${f(Math.max(...posts))}`);
const lags = em.closeEventLagMs.slice(-SECONDS);
console.log(`  emulator's close -> kline sent   ${f(pct(lags, 50))} ${f(pct(lags, 99))} ${f(Math.max(...lags))}   (the venue's own part of the first figure)`);
