import { z } from 'zod';
import type { Signal } from '../domain/market.js';
import { defineStrategy, hasOpenOrder, heldQty } from './strategy-api.js';

export const BuyAndHoldParamsSchema = z
  .object({
    qty: z.number().finite().positive().default(1),
  })
  .strict();
export type BuyAndHoldParams = z.output<typeof BuyAndHoldParamsSchema>;

/** Symbols a buy was signalled for, with the time of that bar. */
export type BuyAndHoldState = { bought: { [symbol: string]: number } };

/**
 * Buys `qty` of each symbol once, on its first bar, and holds: the baseline other strategies are judged
 * against. From the book: it does not buy a symbol it already holds or has an order for (a session restarted
 * on a book that holds it). It never sells. A refused or rejected buy is not tried again: it buys once.
 */
export const buyAndHold = defineStrategy<BuyAndHoldParams, BuyAndHoldState>({
  id: 'buy-and-hold',
  name: 'Buy and hold',
  paramsSchema: BuyAndHoldParamsSchema,
  initialState: () => ({ bought: {} }),
  step(state, bars, params, book) {
    let bought = state.bought;
    const signals: Signal[] = [];
    for (const bar of bars) {
      if (bought[bar.symbol] !== undefined) continue;
      bought = { ...bought, [bar.symbol]: bar.time };
      if (heldQty(book, bar.symbol) !== 0 || hasOpenOrder(book, bar.symbol)) continue;
      signals.push({
        key: `${bar.symbol}:${bar.time}:buy`,
        symbol: bar.symbol,
        side: 'buy',
        qty: params.qty,
        type: 'market',
        reason: 'first bar: buy and hold',
      });
    }
    return { state: { bought }, signals };
  },
});

/** The module form: user and built-in strategy modules export `strategy`. */
export { buyAndHold as strategy };
