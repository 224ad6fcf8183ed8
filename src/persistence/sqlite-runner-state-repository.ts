import type { Statement } from 'better-sqlite3';
import { z } from 'zod';
import { InternalError, ValidationError } from '../domain/errors.js';
import { isFiniteNumber, isPlainObject } from '../domain/plain-values.js';
import type { Db } from './database.js';
import type { EquityPoint, RunnerJson, RunnerStateRecord, RunnerStateRepository, SignalRecord } from './runner-state-repository.js';
import { parseRow } from './parse-row.js';

// ---- rows <-> records, in one place; rows are validated when read ----

interface RunnerStateRow {
  session_id: string;
  strategy_id: string;
  strategy_state: string;
  cursor: number;
  start_time: number;
  steps: number;
  last_bar_time: number | null;
  last_prices: string;
  day_start: number | null;
  day_start_pnl: number;
  initial_equity: number;
  equity: number;
  peak_equity: number;
  max_drawdown_pct: number;
  failures: number;
  last_error: string | null;
  finalized_at: string | null;
  created_at: string;
  updated_at: string;
  feed_checkpoint: string | null;
}

interface SignalRow {
  session_id: string;
  key: string;
  symbol: string;
  side: string;
  qty: number;
  type: string;
  limit_price: number | null;
  ref_price: number | null;
  reason: string | null;
  risk: string | null;
  bar_time: number | null;
  created_at: string;
}

const finite = z.number().finite();
const int = z.number().int();

const RunnerStateRowSchema = z.object({
  session_id: z.string().min(1),
  strategy_id: z.string().min(1),
  strategy_state: z.string(),
  cursor: int.min(0),
  start_time: int,
  steps: int.min(0),
  last_bar_time: int.nullable(),
  last_prices: z.string(),
  day_start: int.nullable(),
  day_start_pnl: finite,
  initial_equity: finite,
  equity: finite,
  peak_equity: finite,
  max_drawdown_pct: finite,
  failures: int.min(0),
  last_error: z.string().nullable(),
  finalized_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

const LastPricesSchema = z.record(z.string(), finite);

/**
 * last_prices as LastPricesSchema checks it (an object of finite numbers), by hand: zod's record parse was a
 * third of a 10,000-session restart's runner-state reads. A value that fails goes through the schema, for its
 * message.
 */
function lastPricesOf(value: unknown, what: string): Record<string, number> {
  if (isPlainObject(value)) {
    let ok = true;
    for (const k in value) {
      if (!isFiniteNumber(value[k])) {
        ok = false;
        break;
      }
    }
    if (ok) return value as Record<string, number>;
  }
  return parseRow(LastPricesSchema, value, what);
}

/** The columns besides the JSON ones (strategy_state, last_prices), which prefetch has SQLite parse. */
const RunnerStateColumnsSchema = RunnerStateRowSchema.omit({ strategy_state: true, last_prices: true });

export type ParsedRunnerStateRow = Omit<RunnerStateRow, 'strategy_state' | 'last_prices' | 'feed_checkpoint'> & {
  strategy_state: unknown;
  last_prices: unknown;
  feed_checkpoint: unknown;
};

const SignalRowSchema = z.object({
  session_id: z.string(),
  key: z.string(),
  symbol: z.string(),
  side: z.enum(['buy', 'sell']),
  qty: finite,
  type: z.enum(['market', 'limit']),
  limit_price: finite.nullable(),
  ref_price: finite.nullable(),
  reason: z.string().nullable(),
  risk: z.string().nullable(),
  bar_time: int.nullable(),
  created_at: z.string(),
});

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new InternalError(`${what} is not valid JSON`);
  }
}

export function rowToRunnerState(row: RunnerStateRow): RunnerStateRecord {
  const r = parseRow(RunnerStateRowSchema, row, `runner state of ${row.session_id}`);
  const lastPrices = parseJson(r.last_prices, `runner_state.last_prices of ${r.session_id}`);
  const state = parseJson(r.strategy_state, `runner_state.strategy_state of ${r.session_id}`);
  // A checkpoint that does not parse is only a slower restore: the feed replays from the start.
  let checkpoint: unknown = null;
  if (row.feed_checkpoint !== null && row.feed_checkpoint !== undefined) {
    try {
      checkpoint = JSON.parse(row.feed_checkpoint);
    } catch {
      // ignored on purpose
    }
  }
  return toRecord(r, state, lastPrices, checkpoint);
}

/** A row with its JSON columns parsed by SQLite (prefetch): validated like rowToRunnerState. */
function parsedRowToRunnerState(row: ParsedRunnerStateRow): RunnerStateRecord {
  const what = `runner state of ${String(row.session_id)}`;
  const r = plainValidColumns(row) ? row : parseRow(RunnerStateColumnsSchema, row, what);
  return toRecord(r, row.strategy_state, row.last_prices, row.feed_checkpoint);
}

const safeInt = (v: unknown, min = -Infinity): boolean => Number.isSafeInteger(v) && (v as number) >= min;
const text = (v: unknown, min = 0): boolean => typeof v === 'string' && v.length >= min;

/**
 * RunnerStateColumnsSchema's fast path (a restart checks 10,000 rows): true only for rows the schema accepts as
 * they are, column by column; anything else goes to the schema, which decides and words the error.
 * @internal exported for its test against the schema
 */
export function plainValidColumns(r: ParsedRunnerStateRow): r is ParsedRunnerStateRow & z.output<typeof RunnerStateColumnsSchema> {
  return (
    text(r.session_id, 1) && text(r.strategy_id, 1) && safeInt(r.cursor, 0) && safeInt(r.start_time) && safeInt(r.steps, 0) &&
    (r.last_bar_time === null || safeInt(r.last_bar_time)) && (r.day_start === null || safeInt(r.day_start)) &&
    isFiniteNumber(r.day_start_pnl) && isFiniteNumber(r.initial_equity) && isFiniteNumber(r.equity) && isFiniteNumber(r.peak_equity) &&
    isFiniteNumber(r.max_drawdown_pct) && safeInt(r.failures, 0) && (r.last_error === null || text(r.last_error)) &&
    (r.finalized_at === null || text(r.finalized_at)) && text(r.created_at) && text(r.updated_at)
  );
}

/** The columns plainValidColumns checks: RunnerStateColumnsSchema's (its test compares the two). @internal */
export const FAST_PATH_COLUMNS = ['session_id', 'strategy_id', 'cursor', 'start_time', 'steps', 'last_bar_time', 'day_start', 'day_start_pnl', 'initial_equity',
  'equity', 'peak_equity', 'max_drawdown_pct', 'failures', 'last_error', 'finalized_at', 'created_at', 'updated_at'];

/** @internal The schema's keys, for the fast path's test. */
export const columnsSchemaKeys = (): string[] => Object.keys(RunnerStateColumnsSchema.shape);

/** @internal RunnerStateColumnsSchema's own verdict, for the fast path's test. */
export function columnsSchemaAccepts(row: unknown): boolean {
  return RunnerStateColumnsSchema.safeParse(row).success;
}

function toRecord(r: z.output<typeof RunnerStateColumnsSchema>, state: unknown, lastPricesJson: unknown, checkpoint: unknown): RunnerStateRecord {
  const lastPrices = lastPricesOf(lastPricesJson, `runner_state.last_prices of ${r.session_id}`);
  const rec: RunnerStateRecord = {
    sessionId: r.session_id,
    strategyId: r.strategy_id,
    state: state as RunnerJson,
    cursor: r.cursor,
    startTime: r.start_time,
    steps: r.steps,
    lastPrices,
    dayStartPnl: r.day_start_pnl,
    initialEquity: r.initial_equity,
    equity: r.equity,
    peakEquity: r.peak_equity,
    maxDrawdownPct: r.max_drawdown_pct,
    failures: r.failures,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  if (r.last_bar_time !== null) rec.lastBarTime = r.last_bar_time;
  if (r.day_start !== null) rec.dayStart = r.day_start;
  if (r.last_error !== null) rec.lastError = r.last_error;
  if (r.finalized_at !== null) rec.finalizedAt = r.finalized_at;
  if (checkpoint !== null && checkpoint !== undefined) rec.feedCheckpoint = checkpoint as RunnerJson;
  return rec;
}

export function runnerStateToRow(s: RunnerStateRecord): RunnerStateRow {
  return {
    session_id: s.sessionId,
    strategy_id: s.strategyId,
    strategy_state: JSON.stringify(s.state),
    cursor: s.cursor,
    start_time: s.startTime,
    steps: s.steps,
    last_bar_time: s.lastBarTime ?? null,
    last_prices: JSON.stringify(s.lastPrices),
    day_start: s.dayStart ?? null,
    day_start_pnl: s.dayStartPnl,
    initial_equity: s.initialEquity,
    equity: s.equity,
    peak_equity: s.peakEquity,
    max_drawdown_pct: s.maxDrawdownPct,
    failures: s.failures,
    last_error: s.lastError ?? null,
    finalized_at: s.finalizedAt ?? null,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    feed_checkpoint: s.feedCheckpoint === undefined ? null : JSON.stringify(s.feedCheckpoint),
  };
}

function rowToSignal(row: SignalRow): SignalRecord {
  const r = parseRow(SignalRowSchema, row, `signal ${row.session_id}/${row.key}`);
  const s: SignalRecord = { sessionId: r.session_id, key: r.key, symbol: r.symbol, side: r.side, qty: r.qty, type: r.type, createdAt: r.created_at };
  if (r.limit_price !== null) s.limitPrice = r.limit_price;
  if (r.ref_price !== null) s.refPrice = r.ref_price;
  if (r.reason !== null) s.reason = r.reason;
  if (r.risk !== null) s.risk = r.risk;
  if (r.bar_time !== null) s.barTime = r.bar_time;
  return s;
}

const STATE_COLUMNS = `session_id, strategy_id, strategy_state, cursor, start_time, steps, last_bar_time, last_prices, day_start,
  day_start_pnl, initial_equity, equity, peak_equity, max_drawdown_pct, failures, last_error, finalized_at, created_at, updated_at, feed_checkpoint`;
/**
 * prefetch's read: each row as ONE JSON text with its JSON columns embedded (json()) once they are strict JSON
 * (json_valid flag 1, what JSON.parse accepts), else NULL: that row is then read and validated alone as get
 * reads it. A feed checkpoint that is not JSON is dropped, as rowToRunnerState drops it. One string a row
 * instead of twenty: on a restart of 10,000 sessions the columns' strings were most of the cost.
 */
const STATE_JSON = `CASE WHEN json_valid(strategy_state, 1) AND json_valid(last_prices, 1) THEN json_object(
  'session_id', session_id, 'strategy_id', strategy_id, 'strategy_state', json(strategy_state), 'cursor', cursor,
  'start_time', start_time, 'steps', steps, 'last_bar_time', last_bar_time, 'last_prices', json(last_prices),
  'day_start', day_start, 'day_start_pnl', day_start_pnl, 'initial_equity', initial_equity, 'equity', equity,
  'peak_equity', peak_equity, 'max_drawdown_pct', max_drawdown_pct, 'failures', failures, 'last_error', last_error,
  'finalized_at', finalized_at, 'created_at', created_at, 'updated_at', updated_at,
  'feed_checkpoint', CASE WHEN json_valid(feed_checkpoint, 1) THEN json(feed_checkpoint) END) END`;
const SIGNAL_COLUMNS = 'session_id, key, symbol, side, qty, type, limit_price, ref_price, reason, risk, bar_time, created_at';

/** SQLite adapter of RunnerStateRepository over migration 003. The database is the caller's. */
export class SqliteRunnerStateRepository implements RunnerStateRepository {
  private readonly stmts: {
    get: Statement<[string], RunnerStateRow>;
    getMany: Statement<[string], [string, string | null]>;
    upsert: Statement<[RunnerStateRow]>;
    finalize: Statement<[string, string, string]>;
    unfinalized: Statement<[], { session_id: string }>;
    addEquity: Statement<[string, number, number]>;
    equity: Statement<[string], EquityPoint>;
    equityNewest: Statement<[string, number], EquityPoint>;
    addSignal: Statement<[SignalRow]>;
    signals: Statement<[string], SignalRow>;
  };
  private readonly saveManyTx: (records: readonly RunnerStateRecord[]) => void;
  /**
   * prefetch(): each id's row as read then, as JSON text (undefined: no row; null: not strict JSON, read it
   * alone), answered once by get(); writes drop theirs.
   */
  readonly #ahead = new Map<string, string | null | undefined>();
  // Built once: better-sqlite3's transaction() wrapper is not free to build per call.
  private readonly tx: (fn: () => unknown) => unknown;

  constructor(private readonly db: Db) {
    this.stmts = {
      get: db.prepare(`SELECT ${STATE_COLUMNS} FROM runner_state WHERE session_id = ?`),
      getMany: db.prepare<[string], [string, string | null]>(`SELECT session_id, ${STATE_JSON} FROM runner_state WHERE session_id IN (SELECT value FROM json_each(?))`).raw(),
      upsert: db.prepare(`
        INSERT INTO runner_state (${STATE_COLUMNS})
        VALUES (@session_id, @strategy_id, @strategy_state, @cursor, @start_time, @steps, @last_bar_time, @last_prices, @day_start,
          @day_start_pnl, @initial_equity, @equity, @peak_equity, @max_drawdown_pct, @failures, @last_error, @finalized_at,
          @created_at, @updated_at, @feed_checkpoint)
        ON CONFLICT (session_id) DO UPDATE SET
          strategy_id = excluded.strategy_id, strategy_state = excluded.strategy_state, cursor = excluded.cursor,
          start_time = excluded.start_time, steps = excluded.steps, last_bar_time = excluded.last_bar_time,
          last_prices = excluded.last_prices, day_start = excluded.day_start, day_start_pnl = excluded.day_start_pnl,
          initial_equity = excluded.initial_equity, equity = excluded.equity, peak_equity = excluded.peak_equity,
          max_drawdown_pct = excluded.max_drawdown_pct, failures = excluded.failures, last_error = excluded.last_error,
          finalized_at = excluded.finalized_at, updated_at = excluded.updated_at, feed_checkpoint = excluded.feed_checkpoint`),
      finalize: db.prepare('UPDATE runner_state SET finalized_at = ?, updated_at = ? WHERE session_id = ?'),
      unfinalized: db.prepare(`
        SELECT r.session_id FROM runner_state r JOIN sessions s ON s.id = r.session_id
        WHERE s.status = 'stopped' AND r.finalized_at IS NULL ORDER BY s.stopped_at, r.session_id`),
      addEquity: db.prepare(`
        INSERT INTO runner_equity (session_id, at, equity) VALUES (?, ?, ?)
        ON CONFLICT (session_id, at) DO UPDATE SET equity = excluded.equity`),
      equity: db.prepare('SELECT at, equity FROM runner_equity WHERE session_id = ? ORDER BY at'),
      equityNewest: db.prepare('SELECT at, equity FROM (SELECT at, equity FROM runner_equity WHERE session_id = ? ORDER BY at DESC LIMIT ?) ORDER BY at'),
      addSignal: db.prepare(`INSERT INTO signals (${SIGNAL_COLUMNS})
        VALUES (@session_id, @key, @symbol, @side, @qty, @type, @limit_price, @ref_price, @reason, @risk, @bar_time, @created_at)
        ON CONFLICT (session_id, key) DO NOTHING`),
      signals: db.prepare(`SELECT ${SIGNAL_COLUMNS} FROM signals WHERE session_id = ? ORDER BY created_at, rowid`),
    };
    this.saveManyTx = db.transaction((records: readonly RunnerStateRecord[]) => {
      for (const r of records) this.stmts.upsert.run(runnerStateToRow(r));
    });
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  get(sessionId: string): RunnerStateRecord | undefined {
    if (this.#ahead.has(sessionId)) {
      const json = this.#ahead.get(sessionId);
      this.#ahead.delete(sessionId);
      // Validated when it is used, like a row read now.
      if (json === undefined) return undefined;
      if (json !== null) return parsedRowToRunnerState(JSON.parse(json) as ParsedRunnerStateRow);
    }
    const row = this.stmts.get.get(sessionId);
    return row === undefined ? undefined : rowToRunnerState(row);
  }

  /** One statement for every id instead of one per id; the rows are parsed and validated by get() as usual. */
  prefetch(sessionIds: readonly string[]): void {
    this.#ahead.clear();
    for (const id of sessionIds) this.#ahead.set(id, undefined);
    for (const [id, json] of this.stmts.getMany.iterate(JSON.stringify(sessionIds))) this.#ahead.set(id, json);
  }

  save(record: RunnerStateRecord): void {
    validate(record);
    this.#ahead.delete(record.sessionId);
    this.stmts.upsert.run(runnerStateToRow(record));
  }

  saveMany(records: readonly RunnerStateRecord[]): void {
    for (const r of records) validate(r);
    if (this.#ahead.size > 0) for (const r of records) this.#ahead.delete(r.sessionId);
    this.saveManyTx(records);
  }

  markFinalized(sessionId: string, at: string): void {
    this.#ahead.delete(sessionId);
    this.stmts.finalize.run(at, at, sessionId);
  }

  listUnfinalizedStopped(): string[] {
    return this.stmts.unfinalized.all().map((r) => r.session_id);
  }

  addEquity(sessionId: string, point: EquityPoint): void {
    if (!Number.isFinite(point.equity) || !Number.isInteger(point.at)) {
      throw new ValidationError(`equity point of ${sessionId} is invalid: at ${point.at}, equity ${point.equity}`);
    }
    this.stmts.addEquity.run(sessionId, point.at, point.equity);
  }

  equityHistory(sessionId: string, options: { limit?: number } = {}): EquityPoint[] {
    if (options.limit === undefined) return this.stmts.equity.all(sessionId);
    if (!(Number.isInteger(options.limit) && options.limit > 0)) throw new ValidationError(`options.limit must be a positive integer, got ${options.limit}`);
    return this.stmts.equityNewest.all(sessionId, options.limit);
  }

  addSignal(s: SignalRecord): boolean {
    return (
      this.stmts.addSignal.run({
        session_id: s.sessionId,
        key: s.key,
        symbol: s.symbol,
        side: s.side,
        qty: s.qty,
        type: s.type,
        limit_price: s.limitPrice ?? null,
        ref_price: s.refPrice ?? null,
        reason: s.reason ?? null,
        risk: s.risk ?? null,
        bar_time: s.barTime ?? null,
        created_at: s.createdAt,
      }).changes === 1
    );
  }

  listSignals(sessionId: string): SignalRecord[] {
    return this.stmts.signals.all(sessionId).map(rowToSignal);
  }

  /** Runs fn in one transaction (a savepoint inside another); any repository on the same database may write in it. */
  transaction<T>(fn: () => T): T {
    return this.tx(fn) as T;
  }
}

// The hot path writes thousands of these a second: cheap checks, not a zod parse.
function validate(r: RunnerStateRecord): void {
  const numbers: [string, number][] = [
    ['cursor', r.cursor],
    ['startTime', r.startTime],
    ['steps', r.steps],
    ['dayStartPnl', r.dayStartPnl],
    ['initialEquity', r.initialEquity],
    ['equity', r.equity],
    ['peakEquity', r.peakEquity],
    ['maxDrawdownPct', r.maxDrawdownPct],
  ];
  for (const [name, value] of numbers) {
    if (!Number.isFinite(value)) throw new ValidationError(`runner state of ${r.sessionId} is invalid: ${name} is ${value}`);
  }
}
