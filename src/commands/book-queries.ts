import { ValidationError } from '../domain/errors.js';
import { BookQuerySchema, OrdersQuerySchema, PnlQuerySchema, type SessionBook } from '../sessions/session-book.js';
import { zodIssues } from '../sessions/zod-issues.js';
import type { z } from 'zod';
import type { CommandHandler } from './command-consumer.js';

function parse<S extends z.ZodType>(schema: S, data: unknown, name: string): z.output<S> {
  const r = schema.safeParse(data ?? {});
  if (!r.success) throw new ValidationError(`invalid ${name} job: ${zodIssues(r.error)}`);
  return r.data;
}

/**
 * The read jobs over sessions' books (`get-orders`, `get-fills`, `get-positions`, `get-pnl`, `get-history`):
 * read-only like `get-session`, so no command record and no ordering. They let sessionctl show the book with
 * nothing but Redis between it and the daemon.
 */
export function bookQueryHandlers(book: SessionBook): Record<string, CommandHandler> {
  const sync =
    (fn: (data: unknown) => unknown): CommandHandler =>
    async (data) =>
      fn(data);
  return {
    'get-orders': sync((d) => book.orders(parse(OrdersQuerySchema, d, 'get-orders'))),
    'get-fills': sync((d) => ({ fills: book.fills(parse(BookQuerySchema, d, 'get-fills').sessionId) })),
    'get-positions': sync((d) => ({ positions: book.positions(parse(BookQuerySchema, d, 'get-positions').sessionId) })),
    'get-pnl': sync((d) => book.pnlReport(parse(PnlQuerySchema, d, 'get-pnl').sessionId)),
    'get-history': sync((d) => ({ history: book.history(parse(BookQuerySchema, d, 'get-history').sessionId) })),
  };
}
