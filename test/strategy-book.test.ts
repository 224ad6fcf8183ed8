import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBook, type StrategyBook } from '../src/domain/book.js';
import { applyFills } from '../src/domain/pnl.js';
import { BarFiles } from '../src/market-data/bar-files.js';
import { loadFeed } from '../src/market-data/feed.js';
import { runBacktest } from '../src/runners/backtest-runner.js';
import { StrategyCatalog } from '../src/strategies/catalog.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

const dir = tempDir('sessiond-book-');
const catalog = new StrategyCatalog();
const files = new BarFiles({ dirs: [dir] });
const until = untilWithin(30_000);

/** One symbol on a wave: fast=2/slow=5 SMAs cross every few bars. */
function waveCsv(name: string, n = 200): string {
  const file = join(dir, name);
  const rows = Array.from({ length: n }, (_, i) => {
    const p = 100 + 10 * Math.sin(i / 4);
    return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 0.5},${p - 0.5},${p},100`;
  });
  writeFileSync(file, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  return file;
}

const wave = waveCsv('wave.csv');

// The two cases seen before strategies had a book: a risk control refuses every buy.
for (const [rule, riskControls] of [
  ['maxOrderNotional under one order', { maxOrderNotional: 50 }],
  ['maxOrderQty under its qty', { maxOrderQty: 1 }],
] as const) {
  test(`backtest: sma-crossover with ${rule} never sells, never goes short`, async (t) => {
    const r = await runBacktest({
      strategy: catalog.get('sma-crossover'),
      params: { fast: 2, slow: 5, qty: 2 },
      feed: await loadFeed({ type: 'replay', file: wave }, ['AAA'], { accelerated: true, files }),
      riskControls,
    });
    t.true(r.orders.length >= 5, `orders ${r.orders.length}`);
    t.true(r.orders.every((o) => o.status === 'rejected' && o.reason!.startsWith('RISK_LIMIT: ')), JSON.stringify(r.orders.slice(0, 3)));
    t.deepEqual(r.orders.filter((o) => o.side === 'sell'), [], 'no sell of what it never bought');
    t.deepEqual(r.fills, []);
    t.true(r.positions.every((p) => p.qty === 0));
  });
}

test('backtest: sma-crossover without limits alternates buy and sell, each sell of what the book holds', async (t) => {
  const r = await runBacktest({
    strategy: catalog.get('sma-crossover'),
    params: { fast: 2, slow: 5, qty: 2 },
    feed: await loadFeed({ type: 'replay', file: wave }, ['AAA'], { accelerated: true, files }),
  });
  t.true(r.fills.length >= 6, `fills ${r.fills.length}`);
  let held = 0;
  for (const f of r.fills) {
    held += f.side === 'buy' ? f.qty : -f.qty;
    t.true(held >= 0 && held <= 2, `position ${held} after ${f.clientOrderId}`);
  }
});

// A user strategy that keeps the book it was given in its state, and buys 2 on each of its first 3 steps.
const PROBE = `
export const strategy = {
  id: 'test-book-probe',
  name: 'Book probe',
  paramsSchema: { safeParse: (v) => ({ success: true, data: { buys: 3, ...(v ?? {}) } }) },
  initialState: () => ({ steps: 0, book: null }),
  step(state, bars, p, book) {
    const steps = state.steps + 1;
    const last = bars[bars.length - 1];
    const signals = [];
    if (last && steps <= p.buys) signals.push({ key: last.symbol + ':' + last.time + ':buy', symbol: last.symbol, side: 'buy', qty: 2, type: 'market' });
    return { state: { steps, book, lastClose: last ? last.close : null }, signals };
  },
};
`;
const probePath = join(dir, 'probe.mjs');
writeFileSync(probePath, PROBE);

/** The book persisted fills and last closes imply (what a step must have seen). */
function expectedBook(fills: Parameters<typeof applyFills>[0], lastPrices: Record<string, number>): StrategyBook {
  return buildBook({ initialEquity: 100_000, positions: applyFills(fills), lastPrices, openOrders: [] });
}

function close(t: import('ava').ExecutionContext, actual: number, expected: number, what: string): void {
  t.true(Math.abs(actual - expected) < 1e-6, `${what}: ${actual} vs ${expected}`);
}

test.serial('a session step sees its persisted book (positions, cash, equity), and the same after a restart', async (t) => {
  const file = join(tempDir('sessiond-book-restart-'), 'sessiond.db');
  let rig = await buildTradingRig({ file, modules: [probePath] });
  const id = 'probe-1';
  try {
    await rig.manager.startSession({ id, kind: 'paper', strategy: { id: 'test-book-probe' }, symbols: ['AAA'], feed: { type: 'synthetic', intervalMs: 10, volatility: 0.002 } });
    // The 3 buys were placed on steps 1-3 and filled on the next bars; later steps see them all.
    await until('6 steps', () => (rig.services.runnerStates.get(id)?.steps ?? 0) >= 6);
    await rig.manager.pauseSession(id);
    const check = (r: typeof rig): void => {
      const rec = r.services.runnerStates.get(id)!;
      const book = (rec.state as unknown as { book: StrategyBook }).book;
      const fills = r.services.orders.listFills(id);
      t.is(fills.length, 3);
      // Marked at the closes of the step's bars (the record may already hold a later, uncommitted bar's).
      const expected = expectedBook(fills, { AAA: (rec.state as { lastClose: number }).lastClose });
      t.is(book.positions.AAA!.qty, 6);
      close(t, book.positions.AAA!.avgPrice, expected.positions.AAA!.avgPrice, 'avgPrice');
      close(t, book.cash, expected.cash, 'cash');
      close(t, book.equity, expected.equity, 'equity');
      close(t, book.buyingPower, expected.cash, 'buying power (no open orders)');
      // Cash is what the paper broker's account holds: the buys' cost with commission out of 100000.
      const spent = fills.reduce((a, f) => a + f.qty * f.price + f.commission, 0);
      close(t, book.cash, 100_000 - spent, 'cash = initial - cost with commission');
      t.deepEqual(book.openOrders, []);
    };
    check(rig);
    const stepsBefore = rig.services.runnerStates.get(id)!.steps;
    await rig.close();

    rig = await buildTradingRig({ file, modules: [probePath] });
    await rig.manager.resumeSession(id);
    await until('steps after the restart', () => rig.services.runnerStates.get(id)!.steps >= stepsBefore + 2);
    await rig.manager.pauseSession(id);
    check(rig);
  } finally {
    await rig.close();
  }
});

test.serial('a step sees the orders that can still fill, and buying power net of open buys', async (t) => {
  const rig = await buildTradingRig({ file: join(tempDir('sessiond-book-open-'), 'sessiond.db'), modules: [probePath] });
  const id = 'probe-confirm';
  try {
    // Confirm mode: the first buy waits for approval, so the next steps see it open.
    await rig.manager.startSession({ id, kind: 'paper', strategy: { id: 'test-book-probe', params: { buys: 1 } }, symbols: ['AAA'], executionMode: 'confirm', feed: { type: 'synthetic', intervalMs: 10, volatility: 0.002 } });
    await until('3 steps', () => (rig.services.runnerStates.get(id)?.steps ?? 0) >= 3);
    await rig.manager.pauseSession(id);
    const rec = rig.services.runnerStates.get(id)!;
    const book = (rec.state as unknown as { book: StrategyBook }).book;
    t.is(book.openOrders.length, 1);
    const [o] = book.openOrders;
    t.like(o, { symbol: 'AAA', side: 'buy', qty: 2, filledQty: 0, type: 'market', status: 'pending_approval' });
    t.true(o!.clientOrderId.startsWith(`${id}:AAA:`));
    t.deepEqual(book.positions, {});
    t.is(book.cash, 100_000);
    close(t, book.buyingPower, 100_000 - 2 * (rec.state as { lastClose: number }).lastClose, 'buying power net of the open buy');
  } finally {
    await rig.close();
  }
});
