import { z } from 'zod';
import type { Bar, Signal } from '../domain/market.js';
import { defineStrategy, hasOpenOrder, heldQty, type StrategyBook } from './strategy-api.js';

export const SmaCrossoverParamsSchema = z
  .object({
    fast: z.number().int().positive().default(5),
    slow: z.number().int().positive().default(20),
    qty: z.number().finite().positive().default(1),
  })
  .strict()
  .refine((p) => p.fast < p.slow, { path: ['slow'], message: 'slow must be greater than fast' });
export type SmaCrossoverParams = z.output<typeof SmaCrossoverParamsSchema>;

/** Per symbol: the last `slow + 1` closes and the last bar time seen. What is held comes from the book. */
export type SmaSymbolState = { closes: number[]; lastTime: number | null };
export type SmaCrossoverState = { symbols: { [symbol: string]: SmaSymbolState } };

/**
 * Long-only SMA crossover, trading from the book: buys `qty` when the fast SMA of closes crosses above the
 * slow SMA while the book is flat in the symbol, and sells exactly what the book holds when it crosses below
 * while long. It places nothing for a symbol that has an order that can still fill (nor a second order for it
 * in the same step), so a refused, rejected or unfilled buy never turns into a short or a buy/sell loop.
 */
export const smaCrossover = defineStrategy<SmaCrossoverParams, SmaCrossoverState>({
  id: 'sma-crossover',
  name: 'SMA crossover',
  paramsSchema: SmaCrossoverParamsSchema,
  initialState: () => ({ symbols: {} }),
  step(state, bars, params, book) {
    const symbols = { ...state.symbols };
    const signals: Signal[] = [];
    for (const bar of bars) {
      const stored = symbols[bar.symbol];
      // `position` was kept in the state before strategies saw the book: dropped from states persisted then.
      const prev: SmaSymbolState = stored === undefined ? { closes: [], lastTime: null } : { closes: stored.closes, lastTime: stored.lastTime };
      // A bar at or before the last one seen was already counted (a re-run batch).
      if (prev.lastTime !== null && bar.time <= prev.lastTime) continue;
      symbols[bar.symbol] = onBar(prev, bar, params, book, signals);
    }
    return { state: { symbols }, signals };
  },
});

function onBar(prev: SmaSymbolState, bar: Bar, params: SmaCrossoverParams, book: StrategyBook, signals: Signal[]): SmaSymbolState {
  const closes = [...prev.closes, bar.close].slice(-(params.slow + 1));
  const busy = hasOpenOrder(book, bar.symbol) || signals.some((s) => s.symbol === bar.symbol);
  const position = heldQty(book, bar.symbol);
  if (closes.length === params.slow + 1 && !busy) {
    const fastNow = mean(closes, closes.length - params.fast, closes.length);
    const slowNow = mean(closes, closes.length - params.slow, closes.length);
    const fastPrev = mean(closes, closes.length - 1 - params.fast, closes.length - 1);
    const slowPrev = mean(closes, 0, closes.length - 1);
    const values = `fast SMA ${round(fastNow)}, slow SMA ${round(slowNow)}`;
    if (position === 0 && fastPrev <= slowPrev && fastNow > slowNow) {
      signals.push(signal(bar, 'buy', params.qty, `fast SMA crossed above slow SMA (${values})`));
    } else if (position > 0 && fastPrev >= slowPrev && fastNow < slowNow) {
      signals.push(signal(bar, 'sell', position, `fast SMA crossed below slow SMA (${values})`));
    }
  }
  return { closes, lastTime: bar.time };
}

function signal(bar: Bar, side: Signal['side'], qty: number, reason: string): Signal {
  return { key: `${bar.symbol}:${bar.time}:${side}`, symbol: bar.symbol, side, qty, type: 'market', reason };
}

function mean(values: readonly number[], from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i]!;
  return sum / (to - from);
}

function round(n: number): number {
  return Math.round(n * 1e4) / 1e4;
}

/** The module form: user and built-in strategy modules export `strategy`. */
export { smaCrossover as strategy };
