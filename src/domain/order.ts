import type { Side } from './market.js';

export const ORDER_STATUSES = [
  'pending_approval', // execution mode `confirm`: waiting for approve-order / reject-order
  'new',
  'accepted',
  'partially_filled',
  'filled',
  'cancelled',
  'rejected',
  'expired',
  // Live venues: a submit whose outcome was not seen (timeout, reset, 5xx after the request left). Only the
  // venue's answer to a lookup by client order id moves it on.
  'unknown',
  // Found at the venue with this daemon's client-id prefix but never recorded here (reconciliation).
  'external',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export interface Order {
  /** Deterministic per session and signal: `${sessionId}:${signal.key}`. */
  clientOrderId: string;
  sessionId: string;
  brokerId: string;
  accountId: string;
  symbol: string;
  side: Side;
  qty: number;
  type: 'market' | 'limit';
  limitPrice?: number;
  status: OrderStatus;
  filledQty: number;
  avgFillPrice?: number;
  /** Why it was rejected / cancelled (e.g. `RISK_LIMIT: maxOrderQty 10 < 25`). */
  reason?: string;
  createdAt: string;
  updatedAt: string;
}

export interface Fill {
  id: string;
  clientOrderId: string;
  sessionId: string;
  symbol: string;
  side: Side;
  qty: number;
  price: number;
  commission: number;
  at: string;
}

export interface Position {
  symbol: string;
  /** Signed: positive long, negative short. */
  qty: number;
  avgPrice: number;
  realizedPnl: number;
  unrealizedPnl: number;
  lastPrice: number;
}
