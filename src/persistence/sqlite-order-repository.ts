import type { Statement } from 'better-sqlite3';
import { z } from 'zod';
import { InternalError, ValidationError } from '../domain/errors.js';
import { ORDER_STATUSES, type Fill, type Order, type OrderStatus, type Position } from '../domain/order.js';
import type { Db } from './database.js';
import {
  OPEN_ORDER_STATUSES,
  type OrderListFilter,
  type OrderRepository,
  type OrderStatusChange,
  type StoredOrder,
} from './order-repository.js';
import { parseRow } from './parse-row.js';

// ---- mapping: rows <-> domain, in one place; rows are validated when read ----

/** The `orders` row as stored. */
export interface OrderRow {
  client_order_id: string;
  session_id: string;
  broker_id: string;
  account_id: string;
  broker_order_id: string | null;
  symbol: string;
  side: string;
  qty: number;
  type: string;
  limit_price: number | null;
  status: string;
  filled_qty: number;
  avg_fill_price: number | null;
  reason: string | null;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface FillRow {
  id: string;
  client_order_id: string;
  session_id: string;
  symbol: string;
  side: string;
  qty: number;
  price: number;
  commission: number;
  at: string;
}

export interface PositionRow {
  session_id: string;
  symbol: string;
  qty: number;
  avg_price: number;
  realized_pnl: number;
  unrealized_pnl: number;
  last_price: number;
  updated_at: string;
}

const finite = z.number().finite();
const positive = finite.positive();
const side = z.enum(['buy', 'sell']);

const OrderRowSchema = z.object({
  client_order_id: z.string().min(1),
  session_id: z.string().min(1),
  broker_id: z.string(),
  account_id: z.string(),
  broker_order_id: z.string().nullable(),
  symbol: z.string().min(1),
  side,
  qty: positive,
  type: z.enum(['market', 'limit']),
  limit_price: positive.nullable(),
  status: z.enum(ORDER_STATUSES),
  filled_qty: finite.min(0),
  avg_fill_price: finite.nullable(),
  reason: z.string().nullable(),
  expires_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

const HistorySchema = z.array(z.object({ status: z.enum(ORDER_STATUSES), reason: z.string().nullable(), at: z.string() }));

const FillRowSchema = z.object({
  id: z.string().min(1),
  client_order_id: z.string().min(1),
  session_id: z.string().min(1),
  symbol: z.string().min(1),
  side,
  qty: positive,
  price: positive,
  commission: finite,
  at: z.string(),
});

const PositionRowSchema = z.object({
  session_id: z.string(),
  symbol: z.string().min(1),
  qty: finite,
  avg_price: finite,
  realized_pnl: finite,
  unrealized_pnl: finite,
  last_price: finite,
  updated_at: z.string(),
});

/** The order columns the session book (`orders`) and the paper broker (`paper_orders`) both store. */
export interface OrderColumns {
  client_order_id: string;
  session_id: string;
  broker_id: string;
  account_id: string;
  symbol: string;
  side: Order['side'];
  qty: number;
  type: Order['type'];
  limit_price: number | null;
  status: Order['status'];
  filled_qty: number;
  avg_fill_price: number | null;
  reason: string | null;
  created_at: string;
  updated_at: string;
}

/** Validated order columns -> Order: the one mapping both order tables use. */
export function orderFromColumns(r: OrderColumns): Order {
  const o: Order = {
    clientOrderId: r.client_order_id,
    sessionId: r.session_id,
    brokerId: r.broker_id,
    accountId: r.account_id,
    symbol: r.symbol,
    side: r.side,
    qty: r.qty,
    type: r.type,
    status: r.status,
    filledQty: r.filled_qty,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  if (r.limit_price !== null) o.limitPrice = r.limit_price;
  if (r.avg_fill_price !== null) o.avgFillPrice = r.avg_fill_price;
  if (r.reason !== null) o.reason = r.reason;
  return o;
}

/** Row -> domain; a corrupt row is an INTERNAL error naming the order, never a silent default. */
export function rowToOrder(row: OrderRow): StoredOrder {
  const r = parseRow(OrderRowSchema, row, `order row ${row.client_order_id}`);
  const o: StoredOrder = orderFromColumns(r);
  if (r.broker_order_id !== null) o.brokerOrderId = r.broker_order_id;
  if (r.expires_at !== null) o.expiresAt = r.expires_at;
  return o;
}

export function orderToRow(o: StoredOrder): OrderRow {
  return {
    client_order_id: o.clientOrderId,
    session_id: o.sessionId,
    broker_id: o.brokerId,
    account_id: o.accountId,
    broker_order_id: o.brokerOrderId ?? null,
    symbol: o.symbol,
    side: o.side,
    qty: o.qty,
    type: o.type,
    limit_price: o.limitPrice ?? null,
    status: o.status,
    filled_qty: o.filledQty,
    avg_fill_price: o.avgFillPrice ?? null,
    reason: o.reason ?? null,
    expires_at: o.expiresAt === undefined ? null : isoTimestamp(o.expiresAt, 'order.expiresAt'),
    created_at: o.createdAt,
    updated_at: o.updatedAt,
  };
}

/** The fill columns the session book (`fills`) and the paper broker (`paper_fills`) both store. */
export interface FillColumns {
  id: string;
  client_order_id: string;
  session_id: string;
  symbol: string;
  side: Fill['side'];
  qty: number;
  price: number;
  commission: number;
  at: string;
}

/** Validated fill columns -> Fill: the one mapping both fill tables use. */
export function fillFromColumns(r: FillColumns): Fill {
  return {
    id: r.id,
    clientOrderId: r.client_order_id,
    sessionId: r.session_id,
    symbol: r.symbol,
    side: r.side,
    qty: r.qty,
    price: r.price,
    commission: r.commission,
    at: r.at,
  };
}

export function rowToFill(row: FillRow): Fill {
  return fillFromColumns(parseRow(FillRowSchema, row, `fill row ${row.id}`));
}

export function fillToRow(f: Fill): FillRow {
  return {
    id: f.id,
    client_order_id: f.clientOrderId,
    session_id: f.sessionId,
    symbol: f.symbol,
    side: f.side,
    qty: f.qty,
    price: f.price,
    commission: f.commission,
    at: f.at,
  };
}

export function rowToPosition(row: PositionRow): Position {
  const r = parseRow(PositionRowSchema, row, `position row ${row.session_id}/${row.symbol}`);
  return {
    symbol: r.symbol,
    qty: r.qty,
    avgPrice: r.avg_price,
    realizedPnl: r.realized_pnl,
    unrealizedPnl: r.unrealized_pnl,
    lastPrice: r.last_price,
  };
}

export function positionToRow(sessionId: string, p: Position, at: string): PositionRow {
  return {
    session_id: sessionId,
    symbol: p.symbol,
    qty: p.qty,
    avg_price: p.avgPrice,
    realized_pnl: p.realizedPnl,
    unrealized_pnl: p.unrealizedPnl,
    last_price: p.lastPrice,
    updated_at: at,
  };
}

// Writes are checked too, so a bad value fails with a message naming the field instead of a CHECK constraint.
const OrderWriteSchema = z.object({
  clientOrderId: z.string().min(1),
  sessionId: z.string().min(1),
  brokerId: z.string(),
  accountId: z.string(),
  symbol: z.string().min(1),
  side,
  qty: positive,
  type: z.enum(['market', 'limit']),
  limitPrice: positive.optional(),
  status: z.enum(ORDER_STATUSES),
  filledQty: finite.min(0),
  avgFillPrice: finite.optional(),
  createdAt: z.string().min(1),
  updatedAt: z.string().min(1),
});

const FillWriteSchema = z.object({
  id: z.string().min(1),
  clientOrderId: z.string().min(1),
  sessionId: z.string().min(1),
  symbol: z.string().min(1),
  side,
  qty: positive,
  price: positive,
  commission: finite,
  at: z.string().min(1),
});

const PositionWriteSchema = z.object({
  symbol: z.string().min(1),
  qty: finite,
  avgPrice: finite,
  realizedPnl: finite,
  unrealizedPnl: finite,
  lastPrice: finite,
});

function validateWrite<S extends z.ZodType>(schema: S, value: unknown, what: string): void {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ValidationError(`${what} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  }
}

function isoTimestamp(value: Date | string, what: string): string {
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  if (Number.isNaN(ms)) throw new ValidationError(`${what} must be an ISO-8601 timestamp, got ${String(value)}`);
  // One canonical form, so timestamps compare correctly as text in SQL.
  return new Date(ms).toISOString();
}

// ---- the adapter ----

/** By default at most this many fill rows held by prefetchBooks at a time (a few hundred bytes of JS each). */
export const PREFETCH_FILL_ROWS = 50_000;

/** A read-ahead answer, given once. */
function takeAhead<R>(ahead: Map<string, R[]>, sessionId: string): R[] | undefined {
  const rows = ahead.get(sessionId);
  if (rows !== undefined) ahead.delete(sessionId);
  return rows;
}

const ORDER_COLUMNS = `client_order_id, session_id, broker_id, account_id, broker_order_id, symbol, side, qty, type,
  limit_price, status, filled_qty, avg_fill_price, reason, expires_at, created_at, updated_at`;
const OPEN_LIST = OPEN_ORDER_STATUSES.map((s) => `'${s}'`).join(',');
const OPEN_SET: ReadonlySet<OrderStatus> = new Set(OPEN_ORDER_STATUSES);
/** An open-orders entry a write made stale (see SqliteOrderRepository.#openBySession). */
const STALE = Symbol('stale');
const NONE: readonly StoredOrder[] = [];

/**
 * SQLite adapter of OrderRepository over the tables of migration 002. It does not own the database: the
 * caller opens and closes it. Every order's session must exist in `sessions` (foreign key).
 */
export class SqliteOrderRepository implements OrderRepository {
  readonly #adhoc = new Map<string, Statement<unknown[], unknown>>();
  /**
   * Each session's open orders as last committed, read through: the runners ask every session's open orders
   * on every step (its book; a live venue's poll), and most sessions have none. The first read loads every
   * session's open orders in one query (a restart asks 10,000 sessions in a row); from then on a session
   * without an entry has none, and a write marks its session STALE until it is read again. Entries are filled
   * only outside a transaction, so a rolled-back write never leaves memory ahead of the file.
   */
  readonly #openBySession = new Map<string, readonly StoredOrder[] | typeof STALE>();
  #openLoaded = false;
  /** prefetchBooks(): each session's fill and position rows as read then, answered once; writes drop theirs. */
  readonly #aheadFills = new Map<string, FillRow[]>();
  readonly #aheadPositions = new Map<string, PositionRow[]>();
  private readonly stmts: {
    upsertOrder: Statement<[OrderRow]>;
    getOrder: Statement<[string], OrderRow>;
    history: Statement<[string], { status_history: string }>;
    countOpen: Statement<[string], { n: number }>;
    listOpen: Statement<[string], OrderRow>;
    listAllOpen: Statement<[], OrderRow>;
    addFill: Statement<[FillRow]>;
    listFills: Statement<[string], FillRow>;
    fillsOfMany: Statement<[string], FillRow>;
    fillCountsOfMany: Statement<[string], { session_id: string; n: number }>;
    positions: Statement<[string], PositionRow>;
    positionsOfMany: Statement<[string], PositionRow>;
    deleteOtherPositions: Statement<[string, string]>;
    upsertPosition: Statement<[PositionRow]>;
    expire: Statement<{ at: string }, OrderRow>;
  };

  readonly #prefetchFillRows: number;

  /** `prefetchFillRows`: the fill rows prefetchBooks may hold (tests). @defaultValue PREFETCH_FILL_ROWS */
  constructor(
    private readonly db: Db,
    options: { prefetchFillRows?: number } = {},
  ) {
    this.#prefetchFillRows = options.prefetchFillRows ?? PREFETCH_FILL_ROWS;
    this.stmts = {
      // One statement per status change: the history entry is appended in the row, and only when the status
      // changed (migration 013).
      upsertOrder: db.prepare(`
        INSERT INTO orders (${ORDER_COLUMNS}, status_history)
        VALUES (@client_order_id, @session_id, @broker_id, @account_id, @broker_order_id, @symbol, @side, @qty, @type,
          @limit_price, @status, @filled_qty, @avg_fill_price, @reason, @expires_at, @created_at, @updated_at,
          json_array(json_object('status', @status, 'reason', @reason, 'at', @updated_at)))
        ON CONFLICT (client_order_id) DO UPDATE SET
          session_id = excluded.session_id, broker_id = excluded.broker_id, account_id = excluded.account_id,
          broker_order_id = excluded.broker_order_id, symbol = excluded.symbol, side = excluded.side, qty = excluded.qty,
          type = excluded.type, limit_price = excluded.limit_price, status = excluded.status,
          filled_qty = excluded.filled_qty, avg_fill_price = excluded.avg_fill_price, reason = excluded.reason,
          expires_at = excluded.expires_at, created_at = excluded.created_at, updated_at = excluded.updated_at,
          status_history = CASE WHEN orders.status IS excluded.status THEN orders.status_history
            ELSE json_insert(orders.status_history, '$[#]', json_object('status', excluded.status, 'reason', excluded.reason, 'at', excluded.updated_at)) END`),
      getOrder: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE client_order_id = ?`),
      history: db.prepare<[string], { status_history: string }>('SELECT status_history FROM orders WHERE client_order_id = ?'),
      countOpen: db.prepare(`SELECT COUNT(*) AS n FROM orders WHERE session_id = ? AND status IN (${OPEN_LIST})`),
      listOpen: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE session_id = ? AND status IN (${OPEN_LIST}) ORDER BY created_at, rowid`),
      // Ordered as listOpen within each session.
      listAllOpen: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE status IN (${OPEN_LIST}) ORDER BY created_at, rowid`),
      addFill: db.prepare(`
        INSERT INTO fills (id, client_order_id, session_id, symbol, side, qty, price, commission, at)
        VALUES (@id, @client_order_id, @session_id, @symbol, @side, @qty, @price, @commission, @at)
        ON CONFLICT (id) DO NOTHING`),
      listFills: db.prepare(
        'SELECT id, client_order_id, session_id, symbol, side, qty, price, commission, at FROM fills WHERE session_id = ? ORDER BY at, rowid',
      ),
      positions: db.prepare(
        `SELECT session_id, symbol, qty, avg_price, realized_pnl, unrealized_pnl, last_price, updated_at
         FROM positions WHERE session_id = ? ORDER BY symbol`,
      ),
      // Ordered as listFills and positions within each session.
      fillsOfMany: db.prepare(
        `SELECT id, client_order_id, session_id, symbol, side, qty, price, commission, at FROM fills
         WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY at, rowid`,
      ),
      fillCountsOfMany: db.prepare('SELECT session_id, COUNT(*) AS n FROM fills WHERE session_id IN (SELECT value FROM json_each(?)) GROUP BY session_id'),
      positionsOfMany: db.prepare(
        `SELECT session_id, symbol, qty, avg_price, realized_pnl, unrealized_pnl, last_price, updated_at
         FROM positions WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY symbol`,
      ),
      // Symbols no longer listed (runners never drop one, so this normally changes no row).
      deleteOtherPositions: db.prepare('DELETE FROM positions WHERE session_id = ? AND symbol NOT IN (SELECT value FROM json_each(?))'),
      // In place, and only when something moved: an unchanged position is no row change at all.
      upsertPosition: db.prepare(`
        INSERT INTO positions (session_id, symbol, qty, avg_price, realized_pnl, unrealized_pnl, last_price, updated_at)
        VALUES (@session_id, @symbol, @qty, @avg_price, @realized_pnl, @unrealized_pnl, @last_price, @updated_at)
        ON CONFLICT (session_id, symbol) DO UPDATE SET qty = excluded.qty, avg_price = excluded.avg_price,
          realized_pnl = excluded.realized_pnl, unrealized_pnl = excluded.unrealized_pnl, last_price = excluded.last_price,
          updated_at = excluded.updated_at
        WHERE qty IS NOT excluded.qty OR avg_price IS NOT excluded.avg_price OR realized_pnl IS NOT excluded.realized_pnl
          OR unrealized_pnl IS NOT excluded.unrealized_pnl OR last_price IS NOT excluded.last_price`),
      expire: db.prepare(`
        UPDATE orders SET status = 'expired', reason = 'approval expired at ' || expires_at, updated_at = @at,
          status_history = json_insert(status_history, '$[#]', json_object('status', 'expired', 'reason', 'approval expired at ' || expires_at, 'at', @at))
        WHERE status = 'pending_approval' AND expires_at IS NOT NULL AND expires_at <= @at
        RETURNING ${ORDER_COLUMNS}`),
    };
  }

  save(order: StoredOrder): void {
    validateWrite(OrderWriteSchema, order, `order ${order.clientOrderId}`);
    if (order.type === 'limit' && order.limitPrice === undefined) {
      throw new ValidationError(`order ${order.clientOrderId} is invalid: limitPrice is required for a limit order`);
    }
    const row = orderToRow(order);
    this.#forgetOpen(order.sessionId);
    this.stmts.upsertOrder.run(row);
  }

  getByClientId(clientOrderId: string): StoredOrder | undefined {
    const row = this.stmts.getOrder.get(clientOrderId);
    return row === undefined ? undefined : rowToOrder(row);
  }

  listBySession(sessionId: string, filter: OrderListFilter = {}): StoredOrder[] {
    if (filter.status !== undefined && filter.symbol === undefined && filter.limit === undefined) {
      const statuses: readonly OrderStatus[] = typeof filter.status === 'string' ? [filter.status] : filter.status;
      // Open statuses only: the same rows in the same order as the query (created_at, rowid) gives.
      if (statuses.every((x) => OPEN_SET.has(x))) return this.listOpen(sessionId).filter((o) => statuses.includes(o.status));
    }
    const where = ['session_id = ?'];
    const params: (string | number)[] = [sessionId];
    if (filter.status !== undefined) {
      const statuses: readonly OrderStatus[] = typeof filter.status === 'string' ? [filter.status] : filter.status;
      if (statuses.length === 0) return [];
      where.push(`status IN (${statuses.map(() => '?').join(',')})`);
      params.push(...statuses);
    }
    if (filter.symbol !== undefined) {
      where.push('symbol = ?');
      params.push(filter.symbol);
    }
    let sql = `SELECT ${ORDER_COLUMNS} FROM orders WHERE ${where.join(' AND ')} ORDER BY created_at, rowid`;
    if (filter.limit !== undefined) {
      if (!(Number.isInteger(filter.limit) && filter.limit > 0)) {
        throw new ValidationError(`filter.limit must be a positive integer, got ${filter.limit}`);
      }
      // The newest N, returned oldest first like the unlimited list.
      sql = `SELECT * FROM (SELECT ${ORDER_COLUMNS}, rowid AS rid FROM orders WHERE ${where.join(' AND ')}
             ORDER BY created_at DESC, rowid DESC LIMIT ?) ORDER BY created_at, rid`;
      params.push(filter.limit);
    }
    const rows = this.prepared<OrderRow>(sql).all(...params);
    return rows.map((r) => rowToOrder(r));
  }

  /**
   * One page of a session's orders, newest first, with the count of all that match: paged in SQL (the
   * page and the API read 50 rows, not the whole list). Status filter as in listBySession.
   */
  pageBySession(sessionId: string, page: { status?: OrderStatus | undefined; offset: number; limit: number }): { total: number; orders: StoredOrder[] } {
    const where = page.status === undefined ? 'session_id = ?' : 'session_id = ? AND status = ?';
    const params: (string | number)[] = page.status === undefined ? [sessionId] : [sessionId, page.status];
    const total = this.prepared<{ n: number }>(`SELECT COUNT(*) AS n FROM orders WHERE ${where}`).get(...params)?.n ?? 0;
    const rows = this.prepared<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE ${where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?`).all(
      ...params,
      page.limit,
      page.offset,
    );
    return { total, orders: rows.map((r) => rowToOrder(r)) };
  }

  /**
   * A statement for SQL built from a filter, compiled once: preparing costs ~50 us, and the runners ask
   * every live session's open orders on every step. Filters give few distinct texts; the cache is bounded anyway.
   */
  private prepared<R>(sql: string): Statement<unknown[], R> {
    let stmt = this.#adhoc.get(sql);
    if (stmt === undefined) {
      if (this.#adhoc.size >= 64) this.#adhoc.clear();
      stmt = this.db.prepare<unknown[], unknown>(sql);
      this.#adhoc.set(sql, stmt);
    }
    return stmt as Statement<unknown[], R>;
  }

  countOpen(sessionId: string): number {
    return this.stmts.countOpen.get(sessionId)?.n ?? 0;
  }

  listOpen(sessionId: string): StoredOrder[] {
    // Inside a transaction the rows may still be rolled back: read, never kept.
    if (this.db.inTransaction) return this.stmts.listOpen.all(sessionId).map((r) => rowToOrder(r));
    if (!this.#openLoaded) this.#loadAllOpen();
    let open = this.#openBySession.get(sessionId) ?? NONE;
    if (open === STALE) {
      open = this.stmts.listOpen.all(sessionId).map((r) => rowToOrder(r));
      if (open.length === 0) this.#openBySession.delete(sessionId);
      else this.#openBySession.set(sessionId, open);
    }
    // Copies: a caller that changes what it got must not change the next caller's.
    return open.map((o) => ({ ...o }));
  }

  #loadAllOpen(): void {
    for (const row of this.stmts.listAllOpen.iterate()) {
      const order = rowToOrder(row);
      const list = this.#openBySession.get(order.sessionId);
      if (list === undefined || list === STALE) this.#openBySession.set(order.sessionId, [order]);
      else (list as StoredOrder[]).push(order);
    }
    this.#openLoaded = true;
  }

  #forgetOpen(sessionId: string): void {
    if (this.#openLoaded) this.#openBySession.set(sessionId, STALE);
  }

  history(clientOrderId: string): OrderStatusChange[] {
    const text = this.stmts.history.get(clientOrderId)?.status_history;
    if (text === undefined) return [];
    const what = `status history of order ${clientOrderId}`;
    let entries: unknown;
    try {
      entries = JSON.parse(text);
    } catch {
      throw new InternalError(`${what} is not valid JSON`);
    }
    return parseRow(HistorySchema, entries, what).map((e) => {
      const change: OrderStatusChange = { clientOrderId, status: e.status, at: e.at };
      if (e.reason !== null) change.reason = e.reason;
      return change;
    });
  }

  addFill(fill: Fill): boolean {
    validateWrite(FillWriteSchema, fill, `fill ${fill.id}`);
    this.#aheadFills.delete(fill.sessionId);
    return this.stmts.addFill.run(fillToRow(fill)).changes === 1;
  }

  listFills(sessionId: string): Fill[] {
    return (takeAhead(this.#aheadFills, sessionId) ?? this.stmts.listFills.all(sessionId)).map((r) => rowToFill(r));
  }

  positions(sessionId: string): Position[] {
    return (takeAhead(this.#aheadPositions, sessionId) ?? this.stmts.positions.all(sessionId)).map((r) => rowToPosition(r));
  }

  /**
   * A few statements for every session instead of two per session; rows are validated when asked, as usual.
   * Fills are read ahead for the sessions that fit prefetchFillRows in all (in the order given): a fleet that
   * traded for weeks holds millions of fills, and those sessions are read one at a time as before.
   */
  prefetchBooks(sessionIds: readonly string[]): void {
    this.#aheadFills.clear();
    this.#aheadPositions.clear();
    if (sessionIds.length === 0) return;
    const all = JSON.stringify(sessionIds);
    const counts = new Map(this.stmts.fillCountsOfMany.all(all).map((r) => [r.session_id, r.n]));
    let budget = this.#prefetchFillRows;
    const withFills: string[] = [];
    for (const id of sessionIds) {
      this.#aheadPositions.set(id, []);
      const n = counts.get(id) ?? 0;
      if (n > budget) continue;
      budget -= n;
      this.#aheadFills.set(id, []);
      if (n > 0) withFills.push(id);
    }
    if (withFills.length > 0) for (const row of this.stmts.fillsOfMany.iterate(JSON.stringify(withFills))) this.#aheadFills.get(row.session_id)?.push(row);
    for (const row of this.stmts.positionsOfMany.iterate(all)) this.#aheadPositions.get(row.session_id)?.push(row);
  }

  savePositions(sessionId: string, positions: readonly Position[], at: string = new Date().toISOString()): void {
    const symbols = this.#checkPositions(sessionId, positions);
    this.transaction(() => {
      this.stmts.deleteOtherPositions.run(sessionId, JSON.stringify(symbols));
      this.#upsertPositions(sessionId, positions, at);
    });
  }

  updatePositions(sessionId: string, positions: readonly Position[], at: string = new Date().toISOString()): void {
    this.#checkPositions(sessionId, positions);
    // One statement is atomic on its own: no savepoint for the usual single symbol.
    if (positions.length === 1) this.#upsertPositions(sessionId, positions, at);
    else this.transaction(() => this.#upsertPositions(sessionId, positions, at));
  }

  #upsertPositions(sessionId: string, positions: readonly Position[], at: string): void {
    for (const p of positions) this.stmts.upsertPosition.run(positionToRow(sessionId, p, at));
  }

  /** @returns the symbols, each once @throws ValidationError */
  #checkPositions(sessionId: string, positions: readonly Position[]): string[] {
    const seen = new Set<string>();
    for (const p of positions) {
      validateWrite(PositionWriteSchema, p, `position ${sessionId}/${p.symbol}`);
      if (seen.has(p.symbol)) throw new ValidationError(`positions of session ${sessionId} list ${p.symbol} twice`);
      seen.add(p.symbol);
    }
    this.#aheadPositions.delete(sessionId);
    return [...seen];
  }

  expirePendingApprovals(now: Date | string): StoredOrder[] {
    const at = isoTimestamp(now, 'now');
    return this.transaction(() => {
      const rows = this.stmts.expire.all({ at });
      for (const r of rows) this.#forgetOpen(r.session_id);
      return rows.map((r) => rowToOrder(r));
    });
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
