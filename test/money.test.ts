import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BarFiles } from '../src/market-data/bar-files.js';
import { loadFeed } from '../src/market-data/feed.js';
import { runBacktest } from '../src/runners/backtest-runner.js';
import { z } from 'zod';
import { StrategyCatalog } from '../src/strategies/catalog.js';
import { defineStrategy } from '../src/strategies/strategy-api.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

const dir = tempDir('sessiond-money-');
const catalog = new StrategyCatalog();
const files = new BarFiles({ dirs: [dir] });
const until = untilWithin(30_000);

function csv(name: string, price: (i: number) => number, n: number): string {
  const file = join(dir, name);
  const rows = Array.from({ length: n }, (_, i) => {
    const p = price(i);
    return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 0.5},${p - 0.5},${p},100`;
  });
  writeFileSync(file, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  return file;
}

test('buy-and-hold with qty 1e9 is refused INSUFFICIENT_FUNDS: cash stays, metrics stay defined', async (t) => {
  const r = await runBacktest({
    strategy: catalog.get('buy-and-hold'),
    params: { qty: 1e9 },
    feed: await loadFeed({ type: 'replay', file: csv('up.csv', (i) => 100 + i, 60) }, ['AAA'], { accelerated: true, files }),
  });
  t.is(r.orders.length, 1);
  t.is(r.orders[0]!.status, 'rejected');
  t.regex(r.orders[0]!.reason!, /^INSUFFICIENT_FUNDS: buy 1000000000 AAA costs about 100060005000 \(qty x 100\.05 \+ commission 10005000\) > available cash 100000 /);
  t.deepEqual(r.fills, []);
  t.is(r.metrics.returnPct, 0);
  t.is(r.metrics.maxDrawdownPct, 0);
  t.true(r.equity.every((p) => p.equity === 100_000));
});

// A scripted strategy: sells `qty` on every step (a short when the broker allows it).
const SELLER = `
export const strategy = {
  id: 'test-seller',
  name: 'Seller',
  paramsSchema: { safeParse: (v) => ({ success: true, data: { qty: 1, ...(v ?? {}) } }) },
  initialState: () => ({}),
  step(state, bars, p) {
    const last = bars[bars.length - 1];
    return { state, signals: last ? [{ key: last.symbol + ':' + last.time + ':sell', symbol: last.symbol, side: 'sell', qty: p.qty, type: 'market' }] : [] };
  },
};
`;
const sellerPath = join(dir, 'seller.mjs');
writeFileSync(sellerPath, SELLER);

test.serial('a paper session cannot sell what it does not hold: the broker rejects it with INSUFFICIENT_POSITION', async (t) => {
  const rig = await buildTradingRig({ file: join(tempDir('sessiond-money-noshort-'), 'sessiond.db'), modules: [sellerPath] });
  try {
    await rig.manager.startSession({ id: 'no-short', kind: 'paper', strategy: { id: 'test-seller' }, symbols: ['AAA'], feed: { type: 'synthetic', intervalMs: 10 } });
    const refused = await until('a rejected sell', () => rig.services.orders.listBySession('no-short').find((o) => o.status === 'rejected'));
    t.regex(refused.reason!, /^INSUFFICIENT_POSITION: sell 1 AAA > position 0 \(shorting is off: paperBroker\.allowShort\)$/);
    await rig.manager.stopSession('no-short');
    t.deepEqual(rig.services.orders.listFills('no-short'), []);
  } finally {
    await rig.close();
  }
});

test.serial('with allowShort, a short whose loss exhausts equity pauses the session with risk_breach, not silently', async (t) => {
  const rig = await buildTradingRig({ file: join(tempDir('sessiond-money-short-'), 'sessiond.db'), modules: [sellerPath], paperBroker: { allowShort: true }, marketData: { dirs: [dir] } });
  try {
    // 100 shares short per step while the price climbs from 100 to 700.
    const rising = csv('rising.csv', (i) => 100 + 10 * i, 60);
    await rig.manager.startSession({ id: 'short', kind: 'paper', strategy: { id: 'test-seller', params: { qty: 100 } }, symbols: ['AAA'], feed: { type: 'replay', file: rising } });
    await until('paused', () => rig.manager.getSession('short').status === 'paused');
    const last = rig.manager.history('short').at(-1)!;
    t.is(last.event, 'RISK_BREACH');
    t.regex(last.reason!, /^risk_breach: equity -[\d.e+]+ at or below 0$/);
    t.true(rig.services.runnerStates.get('short')!.equity <= 0);
  } finally {
    await rig.close();
  }
});

test('a backtest whose shorts exhaust equity stops at that step and says so; its metrics stay defined', async (t) => {
  const seller = defineStrategy({
    id: 'seller',
    name: 'Seller',
    paramsSchema: z.object({}).strict(),
    initialState: () => ({}),
    step: (state, bars) => ({ state, signals: bars.map((b) => ({ key: `${b.symbol}:${b.time}:sell`, symbol: b.symbol, side: 'sell' as const, qty: 100, type: 'market' as const })) }),
  });
  const r = await runBacktest({
    strategy: seller,
    feed: await loadFeed({ type: 'replay', file: csv('rising-bt.csv', (i) => 100 + 10 * i, 60) }, ['AAA'], { accelerated: true, files }),
    paperBroker: { allowShort: true },
  });
  t.true(r.steps < 60, `stopped after ${r.steps} steps`);
  t.is(r.equityExhaustedAt, r.equity.at(-1)!.at);
  t.true(r.equity.at(-1)!.equity <= 0);
  t.true(r.equity.slice(0, -1).every((p) => p.equity > 0));
  t.true(Number.isFinite(r.metrics.sharpe) && Number.isFinite(r.metrics.maxDrawdownPct) && Number.isFinite(r.metrics.returnPct));
  t.true(r.metrics.returnPct <= -100);
});
