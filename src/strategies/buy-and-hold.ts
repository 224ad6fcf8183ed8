import { z } from 'zod';
import type { Signal } from '../domain/market.js';
import { defineStrategy } from './strategy-api.js';

export const BuyAndHoldParamsSchema = z
  .object({
    qty: z.number().finite().positive().default(1),
  })
  .strict();
export type BuyAndHoldParams = z.output<typeof BuyAndHoldParamsSchema>;

/** Symbols already bought, with the time of the buying bar. */
export type BuyAndHoldState = { bought: { [symbol: string]: number } };

/** Buys `qty` of each symbol on its first bar and holds: the baseline other strategies are judged against. */
export const buyAndHold = defineStrategy<BuyAndHoldParams, BuyAndHoldState>({
  id: 'buy-and-hold',
  name: 'Buy and hold',
  paramsSchema: BuyAndHoldParamsSchema,
  initialState: () => ({ bought: {} }),
  step(state, bars, params) {
    let bought = state.bought;
    const signals: Signal[] = [];
    for (const bar of bars) {
      if (bought[bar.symbol] !== undefined) continue;
      bought = { ...bought, [bar.symbol]: bar.time };
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
