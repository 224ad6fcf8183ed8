import { z } from 'zod';

// ccxt's unified structures, checked at the boundary: a field the adapter relies on that is missing or of the
// wrong type is an error naming it, never a silent 0.

const num = z.number().finite();
const optNum = num.nullish();

export const CcxtOrderSchema = z.object({
  id: z.string().min(1),
  clientOrderId: z.string().nullish(),
  symbol: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  type: z.string().nullish(),
  status: z.enum(['open', 'closed', 'canceled', 'expired', 'rejected']).nullish(),
  amount: num,
  filled: optNum,
  price: optNum,
  average: optNum,
  timestamp: optNum,
  trades: z.array(z.unknown()).nullish(),
});
export type CcxtOrder = z.infer<typeof CcxtOrderSchema>;

export const CcxtTradeSchema = z.object({
  id: z.string().min(1),
  order: z.string().nullish(),
  symbol: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  amount: num,
  price: num,
  timestamp: optNum,
  fee: z.object({ cost: optNum, currency: z.string().nullish() }).nullish(),
});
export type CcxtTrade = z.infer<typeof CcxtTradeSchema>;

export const CcxtMarketSchema = z.object({
  symbol: z.string().min(1),
  base: z.string().min(1),
  quote: z.string().min(1),
  active: z.boolean().nullish(),
  limits: z.object({
    amount: z.object({ min: optNum, max: optNum }).partial().nullish(),
    cost: z.object({ min: optNum, max: optNum }).partial().nullish(),
  }).partial(),
});

/** An OHLCV row: [time, open, high, low, close, volume]. */
export const CcxtOhlcvSchema = z.tuple([num, num, num, num, num, num.nullish()]);

export function parseWire<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`unexpected ${what} from the venue: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`);
  return r.data;
}
