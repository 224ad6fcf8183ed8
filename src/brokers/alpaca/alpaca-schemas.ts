import { z } from 'zod';

// Alpaca Trading API v2 and Market Data v2 wire formats, as the raw responses carry them (amounts are numeric
// strings; bar prices are numbers). Parsed here so nothing venue-shaped leaks inward.

const numStr = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = Number(v);
  if (!Number.isFinite(n)) ctx.addIssue({ code: 'custom', message: `not a number: ${String(v)}` });
  return n;
});
const optNumStr = numStr.nullish();

export const AlpacaOrderSchema = z.object({
  id: z.string().min(1),
  client_order_id: z.string(),
  symbol: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  type: z.string(),
  qty: optNumStr,
  filled_qty: numStr,
  filled_avg_price: optNumStr,
  limit_price: optNumStr,
  status: z.string(),
  created_at: z.string(),
});
export type AlpacaOrder = z.infer<typeof AlpacaOrderSchema>;

export const AlpacaFillSchema = z.object({
  id: z.string().min(1),
  activity_type: z.literal('FILL'),
  transaction_time: z.string(),
  type: z.string(),
  price: numStr,
  qty: numStr,
  side: z.enum(['buy', 'sell', 'sell_short']),
  symbol: z.string(),
  order_id: z.string(),
});
export type AlpacaFill = z.infer<typeof AlpacaFillSchema>;

export const AlpacaPositionSchema = z.object({ symbol: z.string(), qty: numStr, side: z.enum(['long', 'short']).optional() });

export const AlpacaAccountSchema = z.object({ cash: numStr, equity: numStr });

export const AlpacaAssetSchema = z.object({
  symbol: z.string(),
  tradable: z.boolean(),
  status: z.string().optional(),
  fractionable: z.boolean().optional(),
  min_order_size: optNumStr,
  min_trade_increment: optNumStr,
  price_increment: optNumStr,
});
export type AlpacaAsset = z.infer<typeof AlpacaAssetSchema>;

export const AlpacaBarsSchema = z.object({
  bars: z.record(z.string(), z.array(z.object({ t: z.string(), o: z.number(), h: z.number(), l: z.number(), c: z.number(), v: z.number() })).nullable()).nullable(),
  next_page_token: z.string().nullish(),
});

/** Alpaca's statuses -> the order statuses here (`new`, `pending_new`, `accepted`... are all "at the venue, not filled"). */
export function alpacaStatus(status: string, filled: number): 'accepted' | 'partially_filled' | 'filled' | 'cancelled' | 'rejected' | 'expired' {
  switch (status) {
    case 'filled':
      return 'filled';
    case 'partially_filled':
      return 'partially_filled';
    case 'canceled':
    case 'done_for_day':
    case 'replaced':
      return 'cancelled';
    case 'expired':
      return 'expired';
    case 'rejected':
    case 'suspended':
      return 'rejected';
    default:
      return filled > 0 ? 'partially_filled' : 'accepted';
  }
}
