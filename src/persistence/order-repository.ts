import type { Fill, Order, OrderStatus, Position } from '../domain/order.js';

/** Statuses that count against maxOpenOrders and can still change. */
export const OPEN_ORDER_STATUSES = ['new', 'accepted', 'partially_filled', 'pending_approval', 'unknown'] as const satisfies readonly OrderStatus[];

/** An order as the session's book keeps it: the domain order plus what only persistence needs. */
export interface StoredOrder extends Order {
  /** The broker's own id for the order, once it acknowledged it. */
  brokerOrderId?: string | undefined;
  /** When a `pending_approval` order expires (ISO-8601); ignored in other statuses. */
  expiresAt?: string | undefined;
}

export interface OrderStatusChange {
  clientOrderId: string;
  status: OrderStatus;
  reason?: string | undefined;
  at: string;
}

export interface OrderListFilter {
  status?: OrderStatus | readonly OrderStatus[] | undefined;
  symbol?: string | undefined;
  /** The newest N orders (still returned oldest first). */
  limit?: number | undefined;
}

/**
 * A session's orders, fills and positions. Synchronous on purpose (better-sqlite3): a runner writes an order
 * update, its fill and the new positions in ONE transaction with `transaction(fn)`.
 *
 * @example
 * repo.transaction(() => {
 *   repo.save(filledOrder);
 *   repo.addFill(fill);
 *   repo.savePositions(sessionId, positions);
 * });
 */
export interface OrderRepository {
  /** Inserts or replaces the order by clientOrderId; a change of status is appended to its history. */
  save(order: StoredOrder): void;
  getByClientId(clientOrderId: string): StoredOrder | undefined;
  /** Oldest first. */
  listBySession(sessionId: string, filter?: OrderListFilter): StoredOrder[];
  /** Orders in OPEN_ORDER_STATUSES. */
  countOpen(sessionId: string): number;
  /** The orders countOpen counts, oldest first (a prepared statement: the runner reads it every step). */
  listOpen(sessionId: string): StoredOrder[];
  /** Status changes of one order, oldest first. */
  history(clientOrderId: string): OrderStatusChange[];
  /** Records a fill once: returns false (and changes nothing) when a fill with that id exists. */
  addFill(fill: Fill): boolean;
  /** Oldest first. */
  listFills(sessionId: string): Fill[];
  /**
   * Optional read-ahead (a restart rebuilds sessions' positions in a row): the next `listFills` and the next
   * `positions` of each of these sessions are answered from one read of them all, as committed now; a write of
   * a session's fills or positions drops its answers. Replaces the previous read-ahead.
   */
  prefetchBooks?(sessionIds: readonly string[]): void;
  /** Every symbol the session has traded, flat ones included (they carry realized PnL); by symbol. */
  positions(sessionId: string): Position[];
  /** Replaces the session's positions with exactly these. */
  savePositions(sessionId: string, positions: readonly Position[], at?: string): void;
  /**
   * Writes these positions in place (a row changes only when a value moved) and leaves the session's other
   * positions as they are: what fills and marks use, since a runner never drops a symbol.
   */
  updatePositions(sessionId: string, positions: readonly Position[], at?: string): void;
  /** Moves every `pending_approval` order whose expiresAt <= now to `expired`; returns them, updated. */
  expirePendingApprovals(now: Date | string): StoredOrder[];
  /** Runs fn in one transaction (a savepoint when already inside one); a throw rolls everything back. */
  transaction<T>(fn: () => T): T;
}
