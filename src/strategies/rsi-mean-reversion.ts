import { z } from 'zod';
import type { Bar, Signal } from '../domain/market.js';
import { defineStrategy, hasOpenOrder, heldQty, type StrategyBook } from './strategy-api.js';

export const RsiMeanReversionParamsSchema = z
  .object({
    period: z.number().int().min(2).default(14),
    oversold: z.number().min(0).max(100).default(30),
    overbought: z.number().min(0).max(100).default(70),
    qty: z.number().finite().positive().default(1),
  })
  .strict()
  .refine((p) => p.oversold < p.overbought, {
    path: ['overbought'],
    message: 'overbought must be greater than oversold',
  });
export type RsiMeanReversionParams = z.output<typeof RsiMeanReversionParamsSchema>;

/**
 * Per symbol Wilder RSI state. Until `period` changes are seen, `avgGain`/`avgLoss` hold running
 * sums; from then on, Wilder's smoothed averages. What is held comes from the book.
 */
export type RsiSymbolState = {
  prevClose: number | null;
  changes: number;
  avgGain: number;
  avgLoss: number;
  lastTime: number | null;
};
export type RsiMeanReversionState = { symbols: { [symbol: string]: RsiSymbolState } };

/**
 * Long-only RSI mean reversion, trading from the book. A level test, not a crossing: on any bar whose
 * Wilder RSI is below `oversold` while the book is flat in the symbol it buys `qty`; on any bar whose RSI is
 * above `overbought` while long it sells exactly what the book holds. It places nothing for a symbol that
 * has an order that can still fill (nor a second order in the same step); a refused entry is tried again on
 * the next oversold bar.
 */
export const rsiMeanReversion = defineStrategy<RsiMeanReversionParams, RsiMeanReversionState>({
  id: 'rsi-mean-reversion',
  name: 'RSI mean reversion',
  paramsSchema: RsiMeanReversionParamsSchema,
  initialState: () => ({ symbols: {} }),
  step(state, bars, params, book) {
    const symbols = { ...state.symbols };
    const signals: Signal[] = [];
    for (const bar of bars) {
      const prev = symbols[bar.symbol] ?? {
        prevClose: null,
        changes: 0,
        avgGain: 0,
        avgLoss: 0,
        lastTime: null,
      };
      // A bar at or before the last one seen was already counted (a re-run batch).
      if (prev.lastTime !== null && bar.time <= prev.lastTime) continue;
      symbols[bar.symbol] = onBar(prev, bar, params, book, signals);
    }
    return { state: { symbols }, signals };
  },
});

/**
 * Wilder's RSI from smoothed averages: `100 - 100 / (1 + avgGain / avgLoss)`. With no losses and some
 * gains it is 100 (RS is infinite, as in TA-Lib); with no change at all (no gains, no losses) it is 50: RS
 * is 0/0, and the neutral value keeps a motionless market from looking oversold or overbought.
 */
export function rsiFromAverages(avgGain: number, avgLoss: number): number {
  if (avgLoss === 0) return avgGain === 0 ? 50 : 100;
  return 100 - 100 / (1 + avgGain / avgLoss);
}

function onBar(prev: RsiSymbolState, bar: Bar, params: RsiMeanReversionParams, book: StrategyBook, signals: Signal[]): RsiSymbolState {
  // `position` was kept in the state before strategies saw the book: dropped from states persisted then.
  const { position: _legacy, ...kept } = prev as RsiSymbolState & { position?: unknown };
  const next: RsiSymbolState = { ...kept, prevClose: bar.close, lastTime: bar.time };
  if (prev.prevClose === null) return next;
  const change = bar.close - prev.prevClose;
  const gain = change > 0 ? change : 0;
  const loss = change < 0 ? -change : 0;
  next.changes = prev.changes + 1;
  const n = params.period;
  if (next.changes < n) {
    next.avgGain = prev.avgGain + gain;
    next.avgLoss = prev.avgLoss + loss;
    return next;
  }
  if (next.changes === n) {
    next.avgGain = (prev.avgGain + gain) / n;
    next.avgLoss = (prev.avgLoss + loss) / n;
  } else {
    next.avgGain = (prev.avgGain * (n - 1) + gain) / n;
    next.avgLoss = (prev.avgLoss * (n - 1) + loss) / n;
    // Only the count up to `period` matters; capping keeps the state small and stable.
    next.changes = n + 1;
  }
  const rsi = rsiFromAverages(next.avgGain, next.avgLoss);
  const shown = Math.round(rsi * 100) / 100;
  if (hasOpenOrder(book, bar.symbol) || signals.some((s) => s.symbol === bar.symbol)) return next;
  const position = heldQty(book, bar.symbol);
  if (position === 0 && rsi < params.oversold) {
    signals.push(signal(bar, 'buy', params.qty, `RSI ${shown} below oversold ${params.oversold}`));
  } else if (position > 0 && rsi > params.overbought) {
    signals.push(signal(bar, 'sell', position, `RSI ${shown} above overbought ${params.overbought}`));
  }
  return next;
}

function signal(bar: Bar, side: Signal['side'], qty: number, reason: string): Signal {
  return { key: `${bar.symbol}:${bar.time}:${side}`, symbol: bar.symbol, side, qty, type: 'market', reason };
}

/** The module form: user and built-in strategy modules export `strategy`. */
export { rsiMeanReversion as strategy };
