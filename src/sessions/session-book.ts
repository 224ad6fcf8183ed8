import { z } from 'zod';
import { buildBook } from '../domain/book.js';
import { ValidationError } from '../domain/errors.js';
import type { Bar } from '../domain/market.js';
import { zodIssues } from './zod-issues.js';
import type { Fill, OrderStatus, Position } from '../domain/order.js';
import { ORDER_STATUSES } from '../domain/order.js';
import type { Session, SessionView } from '../domain/session.js';
import type { OrderRepository, StoredOrder } from '../persistence/order-repository.js';
import type { TransitionRecord } from '../persistence/ports.js';
import type { EquityPoint, RunnerStateRecord, RunnerStateRepository } from '../persistence/runner-state-repository.js';

/** A session's money, from its persisted book: what `sessionctl pnl` and the page show. */
export interface SessionPnl {
  sessionId: string;
  status: string;
  kind: string;
  realizedPnl: number;
  unrealizedPnl: number;
  /** Commissions paid (already inside realizedPnl). */
  commission: number;
  /** initialEquity + realized PnL - the cost of open positions (buildBook): every fill's cash flow, commissions paid. */
  cash: number;
  /** cash + marked value of the open positions (buildBook) = initialEquity + realized + unrealized. */
  equity: number;
  initialEquity: number;
  peakEquity: number;
  /** Fall from the peak now, percent of the peak. */
  drawdownPct: number;
  maxDrawdownPct: number;
  fills: number;
}

export interface PnlTotals {
  sessions: number;
  realizedPnl: number;
  unrealizedPnl: number;
  commission: number;
  cash: number;
  equity: number;
  initialEquity: number;
}

export interface OrderPage {
  /** Orders matching the filter, all pages. */
  total: number;
  offset: number;
  limit: number;
  /** Newest first. */
  orders: StoredOrder[];
}

export const BookQuerySchema = z.object({ sessionId: z.string().min(1).max(128) }).strict();

export const OrdersQuerySchema = z
  .object({
    sessionId: z.string().min(1).max(128),
    status: z.enum(ORDER_STATUSES).optional(),
    offset: z.coerce.number().int().min(0).default(0),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const PnlQuerySchema = z.object({ sessionId: z.string().min(1).max(128).optional() }).strict();

export const BarsQuerySchema = z
  .object({
    sessionId: z.string().min(1).max(128),
    symbol: z.string().min(1).max(32).optional(),
    limit: z.coerce.number().int().min(1).max(5000).default(500),
  })
  .strict();

/** What the book reads sessions through (the SessionManager fits). */
export interface BookSessions {
  getSession(id: string): SessionView;
  getStoredSession(id: string): { session: Session; snapshot: unknown };
  listSessions(filter?: { activeOnly?: boolean }): SessionView[];
  history(id: string): TransitionRecord[];
}

/** Replays a session's bars (the runner's own feed) up to its cursor: the price chart. */
export type BarSource = (session: Session, record: RunnerStateRecord, limit: number) => Bar[];

export interface SessionBookOptions {
  sessions: BookSessions;
  orders: Pick<OrderRepository, 'listBySession' | 'listFills' | 'positions'> & {
    /** Paged in SQL (SqliteOrderRepository); without it the whole list is read and sliced. */
    pageBySession?(sessionId: string, page: { status?: OrderStatus | undefined; offset: number; limit: number }): { total: number; orders: StoredOrder[] };
  };
  runnerStates?: Pick<RunnerStateRepository, 'get' | 'equityHistory'> | undefined;
  bars?: BarSource | undefined;
  /** Equity of a session that never ran (no runner state). @defaultValue 100000 */
  initialEquity?: number;
}

/**
 * The read model of sessions' books: orders (paged, newest first), fills, positions, PnL, equity and bars.
 * Everything is read from what is persisted, so the CLI (through read jobs) and the HTTP API agree.
 * Throws SESSION_NOT_FOUND (from the session source) for an unknown session.
 */
export class SessionBook {
  private readonly initialEquity: number;

  constructor(private readonly o: SessionBookOptions) {
    this.initialEquity = o.initialEquity ?? 100_000;
  }

  orders(q: z.input<typeof OrdersQuerySchema> | Record<string, unknown>): OrderPage {
    const { sessionId, status, offset, limit } = parse(OrdersQuerySchema, q, 'orders query');
    const id = this.o.sessions.getSession(sessionId).id;
    if (this.o.orders.pageBySession) return { ...this.o.orders.pageBySession(id, { status, offset, limit }), offset, limit };
    const all = this.o.orders.listBySession(id, status ? { status } : {});
    const newestFirst = all.reverse();
    return { total: newestFirst.length, offset, limit, orders: newestFirst.slice(offset, offset + limit) };
  }

  fills(sessionId: string): Fill[] {
    return this.o.orders.listFills(this.o.sessions.getSession(sessionId).id);
  }

  positions(sessionId: string): Position[] {
    return this.o.orders.positions(this.o.sessions.getSession(sessionId).id);
  }

  history(sessionId: string): TransitionRecord[] {
    return this.o.sessions.history(this.o.sessions.getSession(sessionId).id);
  }

  equity(sessionId: string, limit = 2000): EquityPoint[] {
    const id = this.o.sessions.getSession(sessionId).id;
    return this.o.runnerStates?.equityHistory(id, { limit }) ?? [];
  }

  bars(q: z.input<typeof BarsQuerySchema> | Record<string, unknown>): { symbol: string | undefined; bars: Bar[] } {
    const { sessionId, symbol, limit } = parse(BarsQuerySchema, q, 'bars query');
    const { session } = this.o.sessions.getStoredSession(sessionId);
    const record = this.o.runnerStates?.get(session.id);
    const sym = symbol ?? session.symbols[0];
    if (!record || !this.o.bars) return { symbol: sym, bars: [] };
    const bars = this.o.bars(session, record, limit).filter((b) => b.symbol === sym);
    return { symbol: sym, bars };
  }

  pnl(sessionId: string): SessionPnl {
    const view = this.o.sessions.getSession(sessionId);
    const positions = this.o.orders.positions(view.id);
    const fills = this.o.orders.listFills(view.id);
    const record = this.o.runnerStates?.get(view.id);
    const initialEquity = record?.initialEquity ?? this.initialEquity;
    let realizedPnl = 0;
    let unrealizedPnl = 0;
    for (const p of positions) {
      realizedPnl += p.realizedPnl;
      unrealizedPnl += p.unrealizedPnl;
    }
    let commission = 0;
    for (const f of fills) commission += f.commission;
    // Cash and equity by the same formulas as the book a strategy step sees (src/domain/book.ts).
    const { cash, equity } = buildBook({ initialEquity, positions, lastPrices: {}, openOrders: [] });
    const peakEquity = Math.max(record?.peakEquity ?? initialEquity, equity);
    return {
      sessionId: view.id,
      status: view.status,
      kind: view.kind,
      realizedPnl,
      unrealizedPnl,
      commission,
      cash,
      equity,
      initialEquity,
      peakEquity,
      drawdownPct: peakEquity > 0 ? ((peakEquity - equity) / peakEquity) * 100 : 0,
      maxDrawdownPct: Math.max(record?.maxDrawdownPct ?? 0, peakEquity > 0 ? ((peakEquity - equity) / peakEquity) * 100 : 0),
      fills: fills.length,
    };
  }

  /** One session's PnL, or every session's with totals. */
  pnlReport(sessionId?: string): { sessions: SessionPnl[]; totals: PnlTotals } {
    const ids = sessionId !== undefined ? [sessionId] : this.o.sessions.listSessions({}).map((s) => s.id);
    const sessions = ids.map((id) => this.pnl(id));
    const totals: PnlTotals = { sessions: sessions.length, realizedPnl: 0, unrealizedPnl: 0, commission: 0, cash: 0, equity: 0, initialEquity: 0 };
    for (const s of sessions) {
      totals.realizedPnl += s.realizedPnl;
      totals.unrealizedPnl += s.unrealizedPnl;
      totals.commission += s.commission;
      totals.cash += s.cash;
      totals.equity += s.equity;
      totals.initialEquity += s.initialEquity;
    }
    return { sessions, totals };
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(`invalid ${what}: ${zodIssues(r.error)}`);
  return r.data;
}
