import test from 'ava';
import {
  applyFill,
  applyFills,
  countTrades,
  markPosition,
  performanceMetrics,
  totalPnl,
  utcDayStart,
  type PnlFill,
} from '../src/domain/pnl.js';

const close = (a: number, b: number, eps = 1e-9): boolean => Math.abs(a - b) <= eps;

const SEQUENCE: PnlFill[] = [
  { symbol: 'X', side: 'buy', qty: 10, price: 100 },
  { symbol: 'X', side: 'buy', qty: 10, price: 110 },
  { symbol: 'X', side: 'sell', qty: 15, price: 120 },
  { symbol: 'X', side: 'sell', qty: 10, price: 90 },
];

test('buying twice averages the price and realizes nothing', (t) => {
  const p = applyFills(SEQUENCE.slice(0, 2))[0]!;
  t.deepEqual(p, { symbol: 'X', qty: 20, avgPrice: 105, realizedPnl: 0, unrealizedPnl: 100, lastPrice: 110 });
});

test('a partial sell realizes against the average and keeps it', (t) => {
  const p = applyFills(SEQUENCE.slice(0, 3))[0]!;
  t.deepEqual(p, { symbol: 'X', qty: 5, avgPrice: 105, realizedPnl: 225, unrealizedPnl: 75, lastPrice: 120 });
});

test('selling through flat realizes the rest and flips to a short at the fill price', (t) => {
  const p = applyFills(SEQUENCE)[0]!;
  // 15 x (120 - 105) + 5 x (90 - 105) = 225 - 75
  t.deepEqual(p, { symbol: 'X', qty: -5, avgPrice: 90, realizedPnl: 150, unrealizedPnl: 0, lastPrice: 90 });
  const marked = markPosition(p, 80);
  t.is(marked.unrealizedPnl, 50); // short 5 from 90, now 80
  t.is(totalPnl([marked]), 200);
});

test('commissions are charged to realized PnL and never move the average price', (t) => {
  const p = applyFills(SEQUENCE.map((f) => ({ ...f, commission: 1.5 })))[0]!;
  t.is(p.realizedPnl, 150 - 4 * 1.5);
  t.is(p.avgPrice, 90);
  t.is(p.qty, -5);
});

test('covering a short realizes the opposite way and closing flat resets the average', (t) => {
  let p = applyFill(undefined, { symbol: 'Y', side: 'sell', qty: 4, price: 50 });
  t.like(p, { qty: -4, avgPrice: 50 });
  p = applyFill(p, { symbol: 'Y', side: 'buy', qty: 4, price: 45, commission: 1 });
  t.deepEqual(p, { symbol: 'Y', qty: 0, avgPrice: 0, realizedPnl: 19, unrealizedPnl: 0, lastPrice: 45 });
});

test('fractional quantities close to exactly flat', (t) => {
  const p = applyFills([
    { symbol: 'BTC', side: 'buy', qty: 0.1, price: 100 },
    { symbol: 'BTC', side: 'buy', qty: 0.2, price: 100 },
    { symbol: 'BTC', side: 'sell', qty: 0.3, price: 110 },
  ])[0]!;
  t.is(p.qty, 0);
  t.true(close(p.realizedPnl, 3));
});

test('positions are kept per symbol', (t) => {
  const ps = applyFills([
    { symbol: 'B', side: 'buy', qty: 1, price: 10 },
    { symbol: 'A', side: 'sell', qty: 2, price: 20 },
  ]);
  t.deepEqual(ps.map((p) => [p.symbol, p.qty]), [['A', -2], ['B', 1]]);
  t.throws(() => applyFill(ps[0], { symbol: 'B', side: 'buy', qty: 1, price: 1 }), { message: 'fill for B applied to a position in A' });
});

test('countTrades counts round trips, a flip closing one and opening the next', (t) => {
  t.is(countTrades(SEQUENCE), 1); // long closed by the flip; the short is still open
  t.is(countTrades([...SEQUENCE, { symbol: 'X', side: 'buy', qty: 5, price: 80 }]), 2);
  t.is(countTrades(SEQUENCE.slice(0, 3)), 0);
});

test('performance metrics of a known equity curve', (t) => {
  const m = performanceMetrics([100, 110, 99, 120], 3);
  t.true(close(m.returnPct, 20));
  t.true(close(m.maxDrawdownPct, 10)); // 110 -> 99
  const r = [0.1, -0.1, 120 / 99 - 1];
  const mean = (r[0]! + r[1]! + r[2]!) / 3;
  const sd = Math.sqrt(r.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
  t.true(close(m.sharpe, mean / sd));
  t.is(m.trades, 3);
  t.true(close(performanceMetrics([100, 110, 99, 120], 3, { periodsPerYear: 252 }).sharpe, (mean / sd) * Math.sqrt(252)));
});

test('performance metrics of flat, empty and steadily growing curves', (t) => {
  t.deepEqual(performanceMetrics([], 0), { returnPct: 0, maxDrawdownPct: 0, sharpe: 0, trades: 0 });
  t.deepEqual(performanceMetrics([100, 100, 100], 0), { returnPct: 0, maxDrawdownPct: 0, sharpe: 0, trades: 0 });
  const growing = performanceMetrics([100, 101, 102.01, 103.0301], 0);
  t.is(growing.sharpe, 0); // constant returns: no variance, no meaningful Sharpe
  t.is(growing.maxDrawdownPct, 0);
  t.throws(() => performanceMetrics([0, 1], 0), { message: 'equity must start positive, got 0' });
});

test('utcDayStart is midnight UTC of the same day', (t) => {
  t.is(utcDayStart(Date.parse('2026-03-04T23:59:59.999Z')), Date.parse('2026-03-04T00:00:00.000Z'));
  t.is(utcDayStart(Date.parse('2026-03-05T00:00:00.000Z')), Date.parse('2026-03-05T00:00:00.000Z'));
});
