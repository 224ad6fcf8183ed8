import { buildBook, type StrategyBook } from '../domain/book.js';
import type { OrderRepository } from '../persistence/order-repository.js';
import type { SessionRunner } from './session-runner.js';

/**
 * The book a session's next step sees: its positions (the in-memory mirror of its persisted fills, marked at
 * the last closes), its open orders as persisted, and the cash and equity they imply over the session's
 * starting equity. The same inputs exist after a restart (reconcile rebuilds positions from the fills), so a
 * step sees the same book then.
 */
export function sessionBook(r: SessionRunner, orders: Pick<OrderRepository, 'listOpen'>): StrategyBook {
  return buildBook({
    initialEquity: r.record.initialEquity,
    positions: r.positions.values(),
    lastPrices: r.record.lastPrices,
    openOrders: orders.listOpen(r.id),
  });
}
