import type { BacktestMetrics } from './backtest.js';
import { drawdownPct } from './equity-curve.js';
import { ValidationError } from './errors.js';
import type { Side } from './market.js';
import type { Position } from './order.js';

/** The part of a Fill that position accounting needs. */
export interface PnlFill {
  symbol: string;
  side: Side;
  qty: number;
  price: number;
  /** Charged to realized PnL. @defaultValue 0 */
  commission?: number;
}

// Quantities are floats (fractional units); a residue such as 1e-15 after closing is flat.
const QTY_EPSILON = 1e-9;

export function emptyPosition(symbol: string): Position {
  return { symbol, qty: 0, avgPrice: 0, realizedPnl: 0, unrealizedPnl: 0, lastPrice: 0 };
}

/**
 * Applies one fill to a position (average-cost accounting) and returns the new position.
 *
 * - Adding to a position (or opening one) moves the average price; it realizes nothing.
 * - Reducing realizes `closedQty * (price - avgPrice)` for a long (the opposite for a short).
 * - A fill larger than the position closes it and opens the other side at the fill price.
 * - The commission is subtracted from realized PnL; it never moves the average price.
 * - The fill price becomes the position's last price; unrealized PnL is marked to it.
 *
 * @example
 * let p = applyFill(undefined, { symbol: 'X', side: 'buy', qty: 10, price: 100 });
 * p = applyFill(p, { symbol: 'X', side: 'sell', qty: 15, price: 120 }); // realized 200, qty -5 @ 120
 */
export function applyFill(position: Position | undefined, fill: PnlFill): Position {
  if (!(Number.isFinite(fill.qty) && fill.qty > 0)) throw new ValidationError(`fill qty must be a positive number, got ${fill.qty}`);
  if (!(Number.isFinite(fill.price) && fill.price > 0)) throw new ValidationError(`fill price must be a positive number, got ${fill.price}`);
  const commission = fill.commission ?? 0;
  if (!Number.isFinite(commission)) throw new ValidationError(`fill commission must be a finite number, got ${commission}`);
  const p = position ?? emptyPosition(fill.symbol);
  if (p.symbol !== fill.symbol) throw new ValidationError(`fill for ${fill.symbol} applied to a position in ${p.symbol}`);

  const signed = fill.side === 'buy' ? fill.qty : -fill.qty;
  let qty = p.qty;
  let avgPrice = p.avgPrice;
  let realizedPnl = p.realizedPnl - commission;

  if (qty === 0 || Math.sign(qty) === Math.sign(signed)) {
    const next = qty + signed;
    avgPrice = (Math.abs(qty) * avgPrice + fill.qty * fill.price) / Math.abs(next);
    qty = next;
  } else {
    const closed = Math.min(fill.qty, Math.abs(qty));
    realizedPnl += closed * (fill.price - avgPrice) * Math.sign(qty);
    const next = snap(qty + signed, fill.qty);
    if (next === 0) avgPrice = 0;
    else if (Math.sign(next) !== Math.sign(qty)) avgPrice = fill.price; // flipped: the rest opens at the fill price
    qty = next;
  }
  return markPosition({ symbol: p.symbol, qty, avgPrice, realizedPnl, unrealizedPnl: 0, lastPrice: p.lastPrice }, fill.price);
}

/** The position marked to a new last price: unrealized PnL = qty * (lastPrice - avgPrice). */
export function markPosition(position: Position, lastPrice: number): Position {
  if (!(Number.isFinite(lastPrice) && lastPrice > 0)) throw new ValidationError(`last price must be a positive number, got ${lastPrice}`);
  // `+ 0` turns -0 (a short marked at its own price) into 0.
  const unrealizedPnl = position.qty === 0 ? 0 : position.qty * (lastPrice - position.avgPrice) + 0;
  return { ...position, lastPrice, unrealizedPnl };
}

/** Positions by symbol after a sequence of fills, applied in order over `start` (not modified). */
export function applyFills(fills: readonly PnlFill[], start: readonly Position[] = []): Position[] {
  const bySymbol = new Map<string, Position>(start.map((p) => [p.symbol, p]));
  for (const f of fills) bySymbol.set(f.symbol, applyFill(bySymbol.get(f.symbol), f));
  return [...bySymbol.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
}

/** Realized + unrealized PnL over positions. */
export function totalPnl(positions: readonly Position[]): number {
  let sum = 0;
  for (const p of positions) sum += p.realizedPnl + p.unrealizedPnl;
  return sum;
}

/** Epoch ms of the start of the UTC day containing `atMs` (the reference point of daily PnL). */
export function utcDayStart(atMs: number): number {
  const d = new Date(atMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
}

/**
 * Closed round trips in a fill sequence: a trade ends each time a symbol's position returns to flat or
 * flips side (a flip also opens the next trade). A position still open at the end is not counted here
 * (see tradeCounts).
 */
export function countTrades(fills: readonly Pick<PnlFill, 'symbol' | 'side' | 'qty'>[]): number {
  return tradeCounts(fills).closed;
}

/**
 * What counts as a trade, for paper sessions and backtests alike: a round trip in one symbol, from the fill
 * that opens a position to the fill that brings it back to flat or flips it (a flip closes one trade and
 * opens the next). `closed` counts the finished ones; `open` the positions still open after the last fill
 * (at most one per symbol). A metric's `trades` is `closed + open`: a buy-and-hold that bought has traded.
 */
export function tradeCounts(fills: readonly Pick<PnlFill, 'symbol' | 'side' | 'qty'>[]): { closed: number; open: number } {
  const qty = new Map<string, number>();
  let closed = 0;
  for (const f of fills) {
    const before = qty.get(f.symbol) ?? 0;
    const after = snap(before + (f.side === 'buy' ? f.qty : -f.qty), f.qty);
    if (before !== 0 && (after === 0 || Math.sign(after) !== Math.sign(before))) closed++;
    qty.set(f.symbol, after);
  }
  let open = 0;
  for (const q of qty.values()) if (q !== 0) open++;
  return { closed, open };
}

export interface PerformanceOptions {
  /**
   * Annualizes the Sharpe ratio by `sqrt(periodsPerYear)` (e.g. 252 for daily steps).
   * @defaultValue undefined: the per-step Sharpe, not annualized
   */
  periodsPerYear?: number;
}

/**
 * Performance of an equity curve (one value per step, oldest first).
 *
 * - returnPct: `(last / first - 1) * 100`.
 * - maxDrawdownPct: the largest fall from a running peak, in percent of that peak (>= 0).
 * - sharpe: mean / sample standard deviation of the per-step simple returns, risk-free rate 0; 0 when
 *   there are fewer than two returns or they do not vary. Per step unless `periodsPerYear` is given.
 * - trades: passed through (see countTrades).
 */
export function performanceMetrics(equity: readonly number[], trades: number, options: PerformanceOptions = {}): BacktestMetrics {
  if (!(Number.isInteger(trades) && trades >= 0)) throw new ValidationError(`trades must be a non-negative integer, got ${trades}`);
  const { periodsPerYear } = options;
  if (periodsPerYear !== undefined && !(Number.isFinite(periodsPerYear) && periodsPerYear > 0)) {
    throw new ValidationError(`options.periodsPerYear must be a positive number, got ${periodsPerYear}`);
  }
  if (equity.length === 0) return { returnPct: 0, maxDrawdownPct: 0, sharpe: 0, trades };
  for (const [i, e] of equity.entries()) {
    if (!Number.isFinite(e)) throw new ValidationError(`equity[${i}] must be a finite number, got ${e}`);
  }
  const first = equity[0]!;
  if (first <= 0) throw new ValidationError(`equity must start positive, got ${first}`);

  const returnPct = (equity[equity.length - 1]! / first - 1) * 100;

  let peak = first;
  let maxDrawdownPct = 0;
  const returns: number[] = [];
  for (let i = 1; i < equity.length; i++) {
    const prev = equity[i - 1]!;
    const e = equity[i]!;
    if (prev > 0) returns.push(e / prev - 1);
    if (e > peak) peak = e;
    else maxDrawdownPct = Math.max(maxDrawdownPct, drawdownPct(peak, e));
  }

  let sharpe = 0;
  if (returns.length >= 2) {
    const mean = returns.reduce((a, r) => a + r, 0) / returns.length;
    const variance = returns.reduce((a, r) => a + (r - mean) ** 2, 0) / (returns.length - 1);
    const sd = Math.sqrt(variance);
    // Relative threshold: a constant return series has a stdev of float noise, not of information.
    if (sd > 1e-12 * Math.max(1, Math.abs(mean))) sharpe = (mean / sd) * (periodsPerYear === undefined ? 1 : Math.sqrt(periodsPerYear));
  }
  return { returnPct, maxDrawdownPct, sharpe, trades };
}

function snap(qty: number, scale: number): number {
  return Math.abs(qty) <= QTY_EPSILON * Math.max(1, Math.abs(scale)) ? 0 : qty;
}
