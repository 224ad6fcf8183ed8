import type { Statement } from 'better-sqlite3';
import { z } from 'zod';
import { InternalError, ValidationError } from '../domain/errors.js';
import type { Bar } from '../domain/market.js';
import type { Fill, Order, Position } from '../domain/order.js';
import { applyFill, markPosition } from '../domain/pnl.js';
import type { Db } from '../persistence/database.js';
import { fillFromColumns, orderFromColumns } from '../persistence/sqlite-order-repository.js';
import type {
  Broker,
  BrokerAccount,
  BrokerBarEvent,
  BrokerExecution,
  BrokerFillFilter,
  BrokerOrderAck,
  BrokerOrderRequest,
} from './broker.js';
import { parseRow } from '../persistence/parse-row.js';

export interface PaperBrokerOptions {
  /** The id sessions name as `brokerId`; rows are namespaced by it. @defaultValue 'paper' */
  id?: string;
  /** Price concession per fill: a buy pays open x (1 + bps/10000), a sell receives open x (1 - bps/10000). @defaultValue 5 */
  slippageBps?: number;
  /** Fixed commission per order, charged on its fill. @defaultValue 0 */
  commissionPerOrder?: number;
  /** Commission in basis points of the fill's notional (qty x fill price). @defaultValue 1 */
  commissionBps?: number;
  /** Cash of an account the first time an order names it. @defaultValue 100000 */
  initialCash?: number;
  /**
   * Whether a sell may go beyond the account's position (open or grow a short). Off, such a sell is
   * `rejected` with `INSUFFICIENT_POSITION: ...`. There is no margin model: a short's proceeds are cash.
   * @defaultValue false
   */
  allowShort?: boolean;
  /** Clock for order timestamps (fills are stamped with their bar's time). @defaultValue () => new Date() */
  now?: () => Date;
}

export const DEFAULT_PAPER_BROKER_OPTIONS: Readonly<Required<PaperBrokerOptions>> = Object.freeze({
  id: 'paper',
  slippageBps: 5,
  commissionPerOrder: 0,
  commissionBps: 1,
  initialCash: 100_000,
  allowShort: false,
  now: () => new Date(),
});

/** Reason prefix of a buy the account's cash cannot pay for (at submit, or at the fill price). */
export const INSUFFICIENT_FUNDS = 'INSUFFICIENT_FUNDS';
/** Reason prefix of a sell beyond the account's position while `allowShort` is off. */
export const INSUFFICIENT_POSITION = 'INSUFFICIENT_POSITION';

const OPEN_STATUSES = new Set<Order['status']>(['accepted', 'partially_filled']);

// ---- rows and their mapping, in one place; rows are validated when read ----

interface PaperOrderRow {
  broker_id: string;
  client_order_id: string;
  seq: number;
  account_id: string;
  session_id: string;
  symbol: string;
  side: string;
  qty: number;
  type: string;
  limit_price: number | null;
  status: string;
  filled_qty: number;
  avg_fill_price: number | null;
  reason: string | null;
  after_bar_time: number | null;
  created_at: string;
  updated_at: string;
}

interface PaperFillRow {
  broker_id: string;
  id: string;
  client_order_id: string;
  account_id: string;
  session_id: string;
  symbol: string;
  side: string;
  qty: number;
  price: number;
  commission: number;
  at: string;
}

interface PaperPositionRow {
  symbol: string;
  qty: number;
  avg_price: number;
  realized_pnl: number;
  last_price: number;
}

interface PaperAccountRow {
  account_id: string;
  cash: number;
  initial_cash: number;
}

const finite = z.number().finite();
const side = z.enum(['buy', 'sell']);

const PaperOrderRowSchema = z.object({
  broker_id: z.string(),
  client_order_id: z.string(),
  seq: z.number().int(),
  account_id: z.string(),
  session_id: z.string(),
  symbol: z.string(),
  side,
  qty: finite,
  type: z.enum(['market', 'limit']),
  limit_price: finite.nullable(),
  status: z.enum(['accepted', 'partially_filled', 'filled', 'cancelled', 'rejected']),
  filled_qty: finite,
  avg_fill_price: finite.nullable(),
  reason: z.string().nullable(),
  after_bar_time: finite.nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

const PaperFillRowSchema = z.object({
  id: z.string(),
  client_order_id: z.string(),
  session_id: z.string(),
  symbol: z.string(),
  side,
  qty: finite,
  price: finite,
  commission: finite,
  at: z.string(),
});

const PaperPositionRowSchema = z.object({
  symbol: z.string(),
  qty: finite,
  avg_price: finite,
  realized_pnl: finite,
  last_price: finite,
});

const PaperAccountRowSchema = z.object({ account_id: z.string(), cash: finite, initial_cash: finite });

type ParsedOrderRow = z.output<typeof PaperOrderRowSchema>;
type ParsedAccountRow = z.output<typeof PaperAccountRowSchema>;

const rowToOrder = (r: ParsedOrderRow): Order => orderFromColumns(r);

function rowToFill(row: PaperFillRow): Fill {
  return fillFromColumns(parseRow(PaperFillRowSchema, row, `paper fill ${row.id}`));
}

function rowToPosition(row: PaperPositionRow): Position {
  const r = parseRow(PaperPositionRowSchema, row, `paper position ${row.symbol}`);
  const p: Position = { symbol: r.symbol, qty: r.qty, avgPrice: r.avg_price, realizedPnl: r.realized_pnl, unrealizedPnl: 0, lastPrice: r.last_price };
  return r.last_price > 0 ? markPosition(p, r.last_price) : p;
}

// ---- the broker ----

const ORDER_COLUMNS = `broker_id, client_order_id, seq, account_id, session_id, symbol, side, qty, type, limit_price, status,
  filled_qty, avg_fill_price, reason, after_bar_time, created_at, updated_at`;
const FILL_COLUMNS = 'broker_id, id, client_order_id, account_id, session_id, symbol, side, qty, price, commission, at';

/**
 * A simulated broker over SQLite. Market orders fill at the open of the next bar of their symbol; limit
 * orders fill on the first later bar that trades through the limit (a buy needs low < limit, a sell
 * high > limit), at the open if that is better, else at the limit. Slippage moves each fill against the
 * order (never past a limit) and commission is per order + bps of notional. Orders fill in full.
 *
 * Accounts open on the first order naming them, with `initialCash`. Money that exists:
 * - A buy is `rejected` with `INSUFFICIENT_FUNDS: ...` when its estimated cost (qty x (limit, or the last close
 *   seen) with slippage, plus commission) exceeds the account's available cash (cash minus the estimated cost
 *   of its other open buys). At the fill, the actual cost is checked against the account's cash again: a buy
 *   that a gap made unaffordable is `rejected` there (onBar reports it without a fill). Cash never goes
 *   below zero through a buy.
 * - A sell beyond the account's position (less its other open sells) is `rejected` with
 *   `INSUFFICIENT_POSITION: ...` unless `allowShort`; checked again at the fill.
 *
 * Everything (orders, fills, accounts, positions, the last bar seen per symbol) lives in the database, so a
 * new PaperBroker on the same file after a restart continues exactly where the last one stopped. Open orders,
 * marks, accounts and positions are also held in memory (the bars' and orders' hot path reads no SQLite); a
 * write changes memory only after its statement ran, and a broker transaction that rolls back rereads memory
 * from the file (reload).
 * The database is the caller's: close() does not close it.
 *
 * @example
 * const broker = new PaperBroker(db, { slippageBps: 0 });
 * await broker.onBar(bar1);                 // the bar the strategy decided on
 * await broker.submit(order);               // accepted
 * const [exec] = await broker.onBar(bar2);  // filled at bar2.open
 */
export class PaperBroker implements Broker {
  readonly id: string;
  readonly simulated = true;
  private readonly options: Readonly<Required<PaperBrokerOptions>>;
  private readonly stmts: {
    getOrder: Statement<[string, string], PaperOrderRow>;
    nextSeq: Statement<[string], { seq: number }>;
    insertOrder: Statement<[PaperOrderRow]>;
    openOrders: Statement<[string], PaperOrderRow>;
    fillOrder: Statement<{ broker_id: string; client_order_id: string; status: string; filled_qty: number; avg_fill_price: number; updated_at: string }>;
    cancelOrder: Statement<[string, string, string, string]>;
    rejectOrder: Statement<[string, string, string, string]>;
    countFills: Statement<[string, string], { n: number }>;
    insertFill: Statement<[PaperFillRow]>;
    getAccount: Statement<[string, string], PaperAccountRow>;
    insertAccount: Statement<[string, string, number, number, string, string]>;
    updateCash: Statement<[number, string, string, string]>;
    getPosition: Statement<[string, string, string], PaperPositionRow>;
    accountPositions: Statement<[string, string], PaperPositionRow>;
    upsertPosition: Statement<[string, string, string, number, number, number, number, string]>;
    markPositions: Statement<[number, string, string]>;
    marks: Statement<[string], { scope: string; symbol: string; bar_time: number; price: number }>;
    upsertMark: Statement<[string, string, string, number, number]>;
  };
  /** Open orders (accepted, partially filled) by client order id, in seq order: the bars' hot path reads no SQLite. */
  private readonly open = new Map<string, ParsedOrderRow>();
  /** The same open orders by `session\0symbol`, in seq order. */
  private readonly openByScope = new Map<string, Map<string, ParsedOrderRow>>();
  /** The last bar seen per symbol and market scope ('' = shared, else a session id); written at close. */
  private readonly marks = new Map<string, Map<string, { t: number; price: number }>>();
  /** The last close that moved a mark per symbol: what positions are marked at (written at close). */
  private readonly symbolPrice = new Map<string, number>();
  private readonly dirtyMarks = new Set<string>();
  /**
   * Accounts and positions as the database holds them (null: no row), read through: a fill and a buy's checks
   * read the account's cash and the symbol's position, and SQLite answered those three times per order. Written
   * through with every statement that changes them; cleared by reload(), like the open orders.
   */
  private readonly accountRows = new Map<string, ParsedAccountRow | null>();
  private readonly positionRows = new Map<string, PaperPositionRow | null>();
  private lastSeq = 0;
  private closePromise: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    options: PaperBrokerOptions = {},
  ) {
    const o = { ...DEFAULT_PAPER_BROKER_OPTIONS, ...stripUndefined(options) };
    if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 128) {
      throw new ValidationError('options.id must be a non-empty string of at most 128 characters');
    }
    for (const key of ['slippageBps', 'commissionPerOrder', 'commissionBps'] as const) {
      if (!(Number.isFinite(o[key]) && o[key] >= 0)) throw new ValidationError(`options.${key} must be a non-negative number`);
    }
    if (!(Number.isFinite(o.initialCash) && o.initialCash > 0)) throw new ValidationError('options.initialCash must be a positive number');
    if (typeof o.now !== 'function') throw new ValidationError('options.now must be a function returning a Date');
    if (typeof o.allowShort !== 'boolean') throw new ValidationError('options.allowShort must be a boolean');
    this.options = Object.freeze(o);
    this.id = o.id;

    this.stmts = {
      getOrder: db.prepare(`SELECT ${ORDER_COLUMNS} FROM paper_orders WHERE broker_id = ? AND client_order_id = ?`),
      nextSeq: db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM paper_orders WHERE broker_id = ?'),
      insertOrder: db.prepare(`
        INSERT INTO paper_orders (${ORDER_COLUMNS})
        VALUES (@broker_id, @client_order_id, @seq, @account_id, @session_id, @symbol, @side, @qty, @type, @limit_price,
          @status, @filled_qty, @avg_fill_price, @reason, @after_bar_time, @created_at, @updated_at)`),
      openOrders: db.prepare(`
        SELECT ${ORDER_COLUMNS} FROM paper_orders
        WHERE broker_id = ? AND status IN ('accepted','partially_filled') ORDER BY seq`),
      fillOrder: db.prepare(`
        UPDATE paper_orders SET status = @status, filled_qty = @filled_qty, avg_fill_price = @avg_fill_price, updated_at = @updated_at
        WHERE broker_id = @broker_id AND client_order_id = @client_order_id`),
      cancelOrder: db.prepare(`
        UPDATE paper_orders SET status = 'cancelled', reason = ?, updated_at = ? WHERE broker_id = ? AND client_order_id = ?`),
      rejectOrder: db.prepare(`
        UPDATE paper_orders SET status = 'rejected', reason = ?, updated_at = ? WHERE broker_id = ? AND client_order_id = ?`),
      countFills: db.prepare('SELECT COUNT(*) AS n FROM paper_fills WHERE broker_id = ? AND client_order_id = ?'),
      insertFill: db.prepare(`
        INSERT INTO paper_fills (${FILL_COLUMNS})
        VALUES (@broker_id, @id, @client_order_id, @account_id, @session_id, @symbol, @side, @qty, @price, @commission, @at)`),
      getAccount: db.prepare('SELECT account_id, cash, initial_cash FROM paper_accounts WHERE broker_id = ? AND account_id = ?'),
      insertAccount: db.prepare(`
        INSERT INTO paper_accounts (broker_id, account_id, cash, initial_cash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
      updateCash: db.prepare('UPDATE paper_accounts SET cash = ?, updated_at = ? WHERE broker_id = ? AND account_id = ?'),
      getPosition: db.prepare(`
        SELECT symbol, qty, avg_price, realized_pnl, last_price FROM paper_positions
        WHERE broker_id = ? AND account_id = ? AND symbol = ?`),
      accountPositions: db.prepare(`
        SELECT symbol, qty, avg_price, realized_pnl, last_price FROM paper_positions
        WHERE broker_id = ? AND account_id = ? ORDER BY symbol`),
      upsertPosition: db.prepare(`
        INSERT INTO paper_positions (broker_id, account_id, symbol, qty, avg_price, realized_pnl, last_price, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (broker_id, account_id, symbol) DO UPDATE SET qty = excluded.qty, avg_price = excluded.avg_price,
          realized_pnl = excluded.realized_pnl, last_price = excluded.last_price, updated_at = excluded.updated_at`),
      markPositions: db.prepare('UPDATE paper_positions SET last_price = ? WHERE broker_id = ? AND symbol = ?'),
      marks: db.prepare('SELECT scope, symbol, bar_time, price FROM paper_marks WHERE broker_id = ?'),
      upsertMark: db.prepare(`
        INSERT INTO paper_marks (broker_id, scope, symbol, bar_time, price) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (broker_id, scope, symbol) DO UPDATE SET bar_time = excluded.bar_time, price = excluded.price
        WHERE excluded.bar_time >= paper_marks.bar_time`),
    };
    this.reload();
    for (const m of this.stmts.marks.all(this.id)) this.setMark(m.scope, m.symbol, m.bar_time, m.price, false);
  }

  /**
   * Rereads the open orders and the order sequence from the database: at construction, and after a
   * storage fault rolled back writes whose effect this broker already holds in memory (the runners call it
   * before they are rebuilt). Marks stay: they are the last bars seen, not a write that can be undone.
   */
  reload(): void {
    this.accountRows.clear();
    this.positionRows.clear();
    this.open.clear();
    this.openByScope.clear();
    for (const raw of this.stmts.openOrders.all(this.id)) this.track(parseRow(PaperOrderRowSchema, raw, `paper order ${raw.client_order_id}`));
    this.lastSeq = this.stmts.nextSeq.get(this.id)!.seq - 1;
  }

  /** The effective options (defaults applied). */
  get settings(): Readonly<Required<PaperBrokerOptions>> {
    return this.options;
  }

  async submit(request: BrokerOrderRequest): Promise<BrokerOrderAck> {
    this.assertOpen();
    for (const key of ['clientOrderId', 'sessionId', 'accountId', 'symbol'] as const) {
      if (typeof request[key] !== 'string' || request[key].length === 0) {
        throw new ValidationError(`order.${key} must be a non-empty string`);
      }
    }
    if (request.side !== 'buy' && request.side !== 'sell') throw new ValidationError(`order.side must be buy or sell, got ${String(request.side)}`);
    if (request.type !== 'market' && request.type !== 'limit') throw new ValidationError(`order.type must be market or limit, got ${String(request.type)}`);

    return this.transact((): BrokerOrderAck => {
      const existing = this.readOrder(request.clientOrderId);
      if (existing !== undefined) {
        return { order: rowToOrder(existing), brokerOrderId: this.brokerOrderId(existing.seq), duplicate: true };
      }
      const now = this.nowIso();
      let rejection = rejectionReason(request);
      const seq = this.lastSeq + 1;
      if (rejection === undefined) {
        this.ensureAccount(request.accountId, now);
        rejection = this.moneyRejection(request);
      }
      const row: PaperOrderRow = {
        broker_id: this.id,
        client_order_id: request.clientOrderId,
        seq,
        account_id: request.accountId,
        session_id: request.sessionId,
        symbol: request.symbol,
        side: request.side,
        qty: Number.isFinite(request.qty) ? request.qty : 0,
        type: request.type,
        limit_price: request.type === 'limit' && Number.isFinite(request.limitPrice) ? request.limitPrice! : null,
        status: rejection === undefined ? 'accepted' : 'rejected',
        filled_qty: 0,
        avg_fill_price: null,
        reason: rejection ?? null,
        // The order fills on a bar after the last one seen for its symbol in its market: the bar it was decided on never fills it.
        after_bar_time: this.lastBarTime(request.symbol, request.sessionId) ?? null,
        created_at: now,
        updated_at: now,
      };
      this.stmts.insertOrder.run(row);
      const parsed = parseRow(PaperOrderRowSchema, row, `paper order ${row.client_order_id}`);
      // Memory follows only once the row is written.
      this.lastSeq = seq;
      if (OPEN_STATUSES.has(parsed.status)) this.track(parsed);
      return { order: rowToOrder(parsed), brokerOrderId: this.brokerOrderId(seq), duplicate: false };
    });
  }

  async cancel(clientOrderId: string): Promise<Order | undefined> {
    this.assertOpen();
    return this.transact((): Order | undefined => {
      const row = this.readOrder(clientOrderId);
      if (row === undefined) return undefined;
      if (!OPEN_STATUSES.has(row.status)) return rowToOrder(row);
      this.stmts.cancelOrder.run('cancelled by client', this.nowIso(), this.id, clientOrderId);
      this.untrack(row);
      return rowToOrder(this.readOrder(clientOrderId)!);
    });
  }

  async getOrder(clientOrderId: string): Promise<Order | undefined> {
    this.assertOpen();
    const row = this.readOrder(clientOrderId);
    return row === undefined ? undefined : rowToOrder(row);
  }

  async listFills(filter: BrokerFillFilter = {}): Promise<Fill[]> {
    this.assertOpen();
    const where = ['broker_id = ?'];
    const params: string[] = [this.id];
    const columns = { accountId: 'account_id', sessionId: 'session_id', clientOrderId: 'client_order_id' } as const;
    for (const key of Object.keys(columns) as (keyof typeof columns)[]) {
      const value = filter[key];
      if (value === undefined) continue;
      where.push(`${columns[key]} = ?`);
      params.push(value);
    }
    const rows = this.db
      .prepare<string[], PaperFillRow>(`SELECT ${FILL_COLUMNS} FROM paper_fills WHERE ${where.join(' AND ')} ORDER BY at, rowid`)
      .all(...params);
    return rows.map((r) => rowToFill(r));
  }

  async positions(accountId: string): Promise<Position[]> {
    this.assertOpen();
    return this.accountPositions(accountId).filter((p) => p.qty !== 0);
  }

  async account(accountId: string): Promise<BrokerAccount> {
    this.assertOpen();
    // An account nobody has traded in yet is reported as it will open; reading does not create it.
    const cash = this.cashOf(accountId);
    let marketValue = 0;
    let realizedPnl = 0;
    let unrealizedPnl = 0;
    for (const p of this.accountPositions(accountId)) {
      marketValue += p.qty * p.lastPrice;
      realizedPnl += p.realizedPnl;
      unrealizedPnl += p.unrealizedPnl;
    }
    return { accountId, cash, equity: cash + marketValue, marketValue, realizedPnl, unrealizedPnl };
  }

  async onBar(bar: Bar, scope?: string): Promise<BrokerBarEvent[]> {
    this.assertOpen();
    validateBar(bar);
    if (scope !== undefined && (typeof scope !== 'string' || scope.length === 0)) {
      throw new ValidationError('scope must be a non-empty string (a session id) or undefined');
    }
    const candidates: ParsedOrderRow[] = [];
    if (scope === undefined) {
      for (const row of this.open.values()) if (row.symbol === bar.symbol) candidates.push(row);
    } else {
      const own = this.openByScope.get(scopeKey(scope, bar.symbol));
      if (own !== undefined) candidates.push(...own.values());
    }
    const executions: BrokerBarEvent[] = [];
    const due = candidates.filter((row) => (row.after_bar_time === null || bar.time > row.after_bar_time) && this.fillPrice(row, bar) !== undefined);
    // No order to fill (nearly every bar): no SQLite at all, only the mark in memory.
    if (due.length > 0) {
      this.transact(() => {
        for (const row of due) {
          const price = this.fillPrice(row, bar)!;
          const refused = this.fillRejection(row, price);
          if (refused !== undefined) {
            this.stmts.rejectOrder.run(refused, this.nowIso(), this.id, row.client_order_id);
            executions.push({ order: rowToOrder(this.readOrder(row.client_order_id)!) });
          } else {
            executions.push(this.fill(row, price, bar));
          }
          // At once: the next order's checks (open sells) see this one closed, as the database does.
          this.untrack(row);
        }
      });
    }
    // A replayed older bar must not move the marks back.
    this.setMark(scope ?? '', bar.symbol, bar.time, bar.close, true);
    return executions;
  }

  /** Idempotent; writes the marks (last bars seen, positions' last prices); later calls on this broker throw INTERNAL. The database stays open (it is the caller's). */
  close(): Promise<void> {
    if (this.closePromise === undefined) {
      try {
        if (this.db.open) this.persistMarks();
      } catch {
        // A storage fault at shutdown: the marks of the last clean shutdown stay; the next bars move them.
      }
      this.closePromise = Promise.resolve();
    }
    return this.closePromise;
  }

  /** Writes the marks changed since the last write, and the positions' last prices. */
  private persistMarks(): void {
    if (this.dirtyMarks.size === 0) return;
    const keys = [...this.dirtyMarks];
    this.db.transaction(() => {
      const symbols = new Set<string>();
      for (const key of keys) {
        const [scope, symbol] = key.split('\0') as [string, string];
        const m = this.marks.get(symbol)?.get(scope);
        if (m === undefined) continue;
        this.stmts.upsertMark.run(this.id, scope, symbol, m.t, m.price);
        symbols.add(symbol);
      }
      for (const symbol of symbols) {
        const price = this.symbolPrice.get(symbol);
        if (price === undefined) continue;
        this.stmts.markPositions.run(price, this.id, symbol);
        for (const row of this.positionRows.values()) if (row !== null && row.symbol === symbol) row.last_price = price;
      }
    })();
    for (const key of keys) this.dirtyMarks.delete(key);
  }

  /** One transaction of the broker's writes; rolled back, memory goes back to what the database holds. */
  private transact<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      this.reload();
      throw err;
    }
  }

  /** Records a bar as its scope's mark unless an as new or newer one is there. */
  private setMark(scope: string, symbol: string, time: number, price: number, dirty: boolean): void {
    let bySymbol = this.marks.get(symbol);
    if (bySymbol === undefined) this.marks.set(symbol, (bySymbol = new Map()));
    const m = bySymbol.get(scope);
    if (m !== undefined && time < m.t) return;
    if (m === undefined) bySymbol.set(scope, { t: time, price });
    else {
      m.t = time;
      m.price = price;
    }
    if (dirty) {
      this.symbolPrice.set(symbol, price);
      this.dirtyMarks.add(`${scope}\0${symbol}`);
    }
  }

  /** The last bar time seen for a symbol in a market (the shared one and the session's own). */
  private lastBarTime(symbol: string, scope: string): number | undefined {
    const bySymbol = this.marks.get(symbol);
    if (bySymbol === undefined) return undefined;
    const a = bySymbol.get('')?.t;
    const b = bySymbol.get(scope)?.t;
    return a === undefined ? b : b === undefined ? a : Math.max(a, b);
  }

  /** The close of the latest of those two bars. */
  private lastMark(symbol: string, scope: string): number | undefined {
    const bySymbol = this.marks.get(symbol);
    if (bySymbol === undefined) return undefined;
    const a = bySymbol.get('');
    const b = bySymbol.get(scope);
    if (a === undefined) return b?.price;
    if (b === undefined) return a.price;
    return b.t > a.t ? b.price : a.price;
  }

  private track(row: ParsedOrderRow): void {
    this.open.set(row.client_order_id, row);
    const key = scopeKey(row.session_id, row.symbol);
    let own = this.openByScope.get(key);
    if (own === undefined) this.openByScope.set(key, (own = new Map()));
    own.set(row.client_order_id, row);
  }

  private untrack(row: ParsedOrderRow): void {
    this.open.delete(row.client_order_id);
    const key = scopeKey(row.session_id, row.symbol);
    const own = this.openByScope.get(key);
    own?.delete(row.client_order_id);
    if (own?.size === 0) this.openByScope.delete(key);
  }

  /** Commission of a fill: per order + bps of its notional (the price includes slippage). */
  private commission(qty: number, price: number): number {
    return this.options.commissionPerOrder + (qty * price * this.options.commissionBps) / 10_000;
  }

  /** At submit: why the account cannot take this order (INSUFFICIENT_FUNDS / INSUFFICIENT_POSITION), if so. */
  private moneyRejection(o: BrokerOrderRequest): string | undefined {
    if (o.side === 'sell') return this.shortRejection(o.accountId, o.symbol, o.qty, this.openSellQty(o.accountId, o.symbol));
    const price = this.estimatePrice(o.symbol, o.sessionId, o.type === 'limit' ? o.limitPrice! : undefined);
    // No price seen yet (an order before any bar): it is checked at the fill.
    if (price === undefined) return undefined;
    const cost = o.qty * price + this.commission(o.qty, price);
    const cash = this.cashOf(o.accountId);
    let reserved = 0;
    for (const r of this.open.values()) {
      if (r.account_id !== o.accountId || r.side !== 'buy') continue;
      const p = this.estimatePrice(r.symbol, r.session_id, r.limit_price ?? undefined);
      const left = r.qty - r.filled_qty;
      if (p !== undefined) reserved += left * p + this.commission(left, p);
    }
    const available = cash - reserved;
    if (cost <= available) return undefined;
    return `${INSUFFICIENT_FUNDS}: buy ${num(o.qty)} ${o.symbol} costs about ${num(cost)} (qty x ${num(price)} + commission ${num(this.commission(o.qty, price))}) > available cash ${num(available)} (cash ${num(cash)} - open buys ${num(reserved)})`;
  }

  /** At the fill: the actual cost against the cash now, and the position now. */
  private fillRejection(order: ParsedOrderRow, price: number): string | undefined {
    const qty = order.qty - order.filled_qty;
    if (order.side === 'sell') return this.shortRejection(order.account_id, order.symbol, qty, this.openSellQty(order.account_id, order.symbol) - qty);
    const cost = qty * price + this.commission(qty, price);
    const cash = this.cashOf(order.account_id);
    if (cost <= cash) return undefined;
    return `${INSUFFICIENT_FUNDS}: buy ${num(qty)} ${order.symbol} at ${num(price)} costs ${num(cost)} with commission > cash ${num(cash)} at the fill`;
  }

  private shortRejection(accountId: string, symbol: string, qty: number, otherSells: number): string | undefined {
    if (this.options.allowShort) return undefined;
    const held = this.positionRow(accountId, symbol)?.qty ?? 0;
    const sellable = held - otherSells;
    // Float residue of fractional quantities is not a short.
    if (qty <= sellable + 1e-9 * Math.max(1, qty)) return undefined;
    return `${INSUFFICIENT_POSITION}: sell ${num(qty)} ${symbol} > position ${num(held)}${otherSells > 0 ? ` less open sells ${num(otherSells)}` : ''} (shorting is off: paperBroker.allowShort)`;
  }

  private openSellQty(accountId: string, symbol: string): number {
    let q = 0;
    for (const r of this.open.values()) if (r.account_id === accountId && r.symbol === symbol && r.side === 'sell') q += r.qty - r.filled_qty;
    return q;
  }

  private cashOf(accountId: string): number {
    return this.accountRow(accountId)?.cash ?? this.options.initialCash;
  }

  private accountRow(accountId: string): ParsedAccountRow | undefined {
    let row = this.accountRows.get(accountId);
    if (row === undefined) {
      const read = this.stmts.getAccount.get(this.id, accountId);
      row = read === undefined ? null : parseRow(PaperAccountRowSchema, read, `paper account ${accountId}`);
      this.accountRows.set(accountId, row);
    }
    return row ?? undefined;
  }

  private positionRow(accountId: string, symbol: string): PaperPositionRow | undefined {
    const key = scopeKey(accountId, symbol);
    let row = this.positionRows.get(key);
    if (row === undefined) {
      const read = this.stmts.getPosition.get(this.id, accountId, symbol);
      row = read === undefined ? null : parseRow(PaperPositionRowSchema, read, `paper position ${symbol}`);
      this.positionRows.set(key, row);
    }
    return row ?? undefined;
  }

  /** What a buy will likely pay: its limit, else the last close seen in its market, with slippage. */
  private estimatePrice(symbol: string, scope: string, limit: number | undefined): number | undefined {
    const slip = 1 + this.options.slippageBps / 10_000;
    if (limit !== undefined) return limit;
    const mark = this.lastMark(symbol, scope);
    return mark === undefined ? undefined : mark * slip;
  }

  private fillPrice(order: ParsedOrderRow, bar: Bar): number | undefined {
    const slip = this.options.slippageBps / 10_000;
    const buyAt = bar.open * (1 + slip);
    const sellAt = bar.open * (1 - slip);
    if (order.type === 'market') return order.side === 'buy' ? buyAt : sellAt;
    const limit = order.limit_price!;
    if (order.side === 'buy') return bar.low < limit ? Math.min(buyAt, limit) : undefined;
    return bar.high > limit ? Math.max(sellAt, limit) : undefined;
  }

  private fill(order: ParsedOrderRow, price: number, bar: Bar): BrokerExecution {
    const qty = order.qty - order.filled_qty;
    const commission = this.commission(qty, price);
    const n = this.stmts.countFills.get(this.id, order.client_order_id)!.n + 1;
    const at = new Date(bar.time).toISOString();
    const now = this.nowIso();
    const fillRow: PaperFillRow = {
      broker_id: this.id,
      id: `${this.id}:${order.client_order_id}:${n}`,
      client_order_id: order.client_order_id,
      account_id: order.account_id,
      session_id: order.session_id,
      symbol: order.symbol,
      side: order.side,
      qty,
      price,
      commission,
      at,
    };
    this.stmts.insertFill.run(fillRow);

    const filledQty = order.filled_qty + qty;
    const avgFillPrice = ((order.avg_fill_price ?? 0) * order.filled_qty + price * qty) / filledQty;
    this.stmts.fillOrder.run({
      broker_id: this.id,
      client_order_id: order.client_order_id,
      status: 'filled',
      filled_qty: filledQty,
      avg_fill_price: avgFillPrice,
      updated_at: now,
    });

    const account = this.ensureAccount(order.account_id, now);
    const notional = qty * price;
    const cash = order.side === 'buy' ? account.cash - notional - commission : account.cash + notional - commission;
    this.stmts.updateCash.run(cash, now, this.id, order.account_id);
    account.cash = cash;

    const before = this.positionRow(order.account_id, order.symbol);
    const position = applyFill(before === undefined ? undefined : this.toPosition(before), { symbol: order.symbol, side: order.side, qty, price, commission });
    this.stmts.upsertPosition.run(
      this.id,
      order.account_id,
      order.symbol,
      position.qty,
      position.avgPrice,
      position.realizedPnl,
      position.lastPrice,
      now,
    );
    this.positionRows.set(scopeKey(order.account_id, order.symbol), {
      symbol: order.symbol,
      qty: position.qty,
      avg_price: position.avgPrice,
      realized_pnl: position.realizedPnl,
      last_price: position.lastPrice,
    });

    const updated = this.readOrder(order.client_order_id)!;
    return { order: rowToOrder(updated), fill: rowToFill(fillRow) };
  }

  private ensureAccount(accountId: string, now: string): ParsedAccountRow {
    const existing = this.accountRow(accountId);
    if (existing !== undefined) return existing;
    this.stmts.insertAccount.run(this.id, accountId, this.options.initialCash, this.options.initialCash, now, now);
    const created = { account_id: accountId, cash: this.options.initialCash, initial_cash: this.options.initialCash };
    this.accountRows.set(accountId, created);
    return created;
  }

  private accountPositions(accountId: string): Position[] {
    return this.stmts.accountPositions.all(this.id, accountId).map((r) => this.toPosition(r));
  }

  /** A position row marked at the last close seen in memory (the row's last price is written at close). */
  private toPosition(row: PaperPositionRow): Position {
    const price = this.symbolPrice.get(row.symbol);
    return rowToPosition(price === undefined ? row : { ...row, last_price: price });
  }

  private readOrder(clientOrderId: string): ParsedOrderRow | undefined {
    const row = this.stmts.getOrder.get(this.id, clientOrderId);
    return row === undefined ? undefined : parseRow(PaperOrderRowSchema, row, `paper order ${clientOrderId}`);
  }

  private brokerOrderId(seq: number): string {
    return `${this.id}-${seq}`;
  }

  private nowIso(): string {
    return this.options.now().toISOString();
  }

  private assertOpen(): void {
    if (this.closePromise !== undefined) throw new InternalError(`paper broker ${this.id} is closed`);
  }
}

function scopeKey(sessionId: string, symbol: string): string {
  return `${sessionId}\0${symbol}`;
}

/** Why the broker refuses a well-formed request, or undefined when it takes it. */
function rejectionReason(o: BrokerOrderRequest): string | undefined {
  if (!(Number.isFinite(o.qty) && o.qty > 0)) return `qty must be a positive number, got ${o.qty}`;
  if (o.type === 'limit' && !(Number.isFinite(o.limitPrice) && o.limitPrice! > 0)) {
    return `a limit order needs a positive limitPrice, got ${o.limitPrice}`;
  }
  return undefined;
}

function validateBar(bar: Bar): void {
  if (typeof bar.symbol !== 'string' || bar.symbol.length === 0) throw new ValidationError('bar.symbol must be a non-empty string');
  if (!Number.isFinite(bar.time)) throw new ValidationError(`bar.time must be epoch milliseconds, got ${bar.time}`);
  for (const key of ['open', 'high', 'low', 'close'] as const) {
    if (!(Number.isFinite(bar[key]) && bar[key] > 0)) throw new ValidationError(`bar.${key} of ${bar.symbol} must be a positive number, got ${bar[key]}`);
  }
  if (bar.low > bar.high) throw new ValidationError(`bar of ${bar.symbol} at ${bar.time} has low ${bar.low} above high ${bar.high}`);
}

/** Figures in reasons: 12 significant digits at most. */
function num(x: number): string {
  return String(Number(x.toPrecision(12)));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
