import type { Side } from './market.js';
import type { OrderStatus, Position } from './order.js';

/** A position as a strategy sees it: signed qty (positive long, negative short) at its average cost. */
export interface BookPosition {
  qty: number;
  avgPrice: number;
  /** The last close of the symbol (what the position is marked at). */
  lastPrice: number;
}

/** An order of the session that can still fill: `new`, `accepted`, `partially_filled` or `pending_approval`. */
export interface BookOrder {
  clientOrderId: string;
  symbol: string;
  side: Side;
  qty: number;
  filledQty: number;
  type: 'market' | 'limit';
  /** Limit orders only. */
  limitPrice?: number;
  status: OrderStatus;
}

/**
 * The session's book as every strategy step sees it, beside the bars (plain JSON). Built from what is
 * persisted (the session's fills, open orders and last closes), so it is the same after a restart and in a
 * backtest. It is taken after the step's bars reached the broker: fills at those bars' opens are in it.
 *
 * - `cash` = starting equity + realized PnL (commissions included) - the cost of open positions
 *   (`sum(qty x avgPrice)`; a short's proceeds add to cash).
 * - `equity` = cash + `sum(qty x lastPrice)`.
 * - `buyingPower` = cash - what open buy orders may still cost (`remaining qty x (limitPrice or last close)`),
 *   never below 0: what a new buy can spend without margin.
 */
export interface StrategyBook {
  cash: number;
  equity: number;
  buyingPower: number;
  /** Open (non-flat) positions by symbol. */
  positions: { [symbol: string]: BookPosition };
  /** Orders that can still fill, oldest first. */
  openOrders: BookOrder[];
}

/** Flat, no orders, no money: what a step sees when its caller passes no book (direct calls, benchmarks). */
export const EMPTY_BOOK: Readonly<StrategyBook> = Object.freeze({ cash: 0, equity: 0, buyingPower: 0, positions: Object.freeze({}), openOrders: Object.freeze([]) as unknown as BookOrder[] });

export interface BookInput {
  /** The session's starting equity (its notional cash before any fill). */
  initialEquity: number;
  /** Every symbol traded, flat ones included (they carry realized PnL). */
  positions: Iterable<Position>;
  /** Last close per symbol. */
  lastPrices: Readonly<Record<string, number>>;
  openOrders: readonly (Omit<BookOrder, 'limitPrice'> & { limitPrice?: number | undefined })[];
}

/** The book of a session from its positions, last closes and open orders (see StrategyBook for the formulas). */
export function buildBook(input: BookInput): StrategyBook {
  let cash = input.initialEquity;
  let marketValue = 0;
  const positions: { [symbol: string]: BookPosition } = {};
  const sorted = [...input.positions].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  for (const p of sorted) {
    cash += p.realizedPnl - p.qty * p.avgPrice;
    if (p.qty === 0) continue;
    const last = input.lastPrices[p.symbol] ?? (p.lastPrice > 0 ? p.lastPrice : p.avgPrice);
    marketValue += p.qty * last;
    positions[p.symbol] = { qty: p.qty, avgPrice: p.avgPrice, lastPrice: last };
  }
  let reserved = 0;
  const openOrders: BookOrder[] = input.openOrders.map((o) => {
    if (o.side === 'buy') {
      const price = o.type === 'limit' && o.limitPrice !== undefined ? o.limitPrice : (input.lastPrices[o.symbol] ?? 0);
      reserved += Math.max(0, o.qty - o.filledQty) * price;
    }
    const out: BookOrder = { clientOrderId: o.clientOrderId, symbol: o.symbol, side: o.side, qty: o.qty, filledQty: o.filledQty, type: o.type, status: o.status };
    if (o.limitPrice !== undefined) out.limitPrice = o.limitPrice;
    return out;
  });
  // `+ 0` keeps -0 out of the JSON a strategy sees.
  return { cash: cash + 0, equity: cash + marketValue + 0, buyingPower: Math.max(0, cash - reserved), positions, openOrders };
}

/** Signed qty the book holds in `symbol` (0 when flat). */
export function heldQty(book: StrategyBook, symbol: string): number {
  return book.positions[symbol]?.qty ?? 0;
}

/** True when an order for `symbol` can still fill. */
export function hasOpenOrder(book: StrategyBook, symbol: string): boolean {
  return book.openOrders.some((o) => o.symbol === symbol);
}
