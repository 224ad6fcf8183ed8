import { z } from 'zod';
import { FeedConfigSchema, RiskControlsSchema, StrategyRefSchema, type Session } from '../domain/session.js';
import { InternalError } from '../domain/errors.js';
import { ID_PATTERN } from '../domain/ids.js';
import { isFiniteNumber, isPlainObject } from '../domain/plain-values.js';

/** The `sessions` row as stored. */
export interface SessionRow {
  id: string;
  kind: string;
  status: string;
  strategy_id: string;
  strategy: string;
  broker_id: string;
  account_id: string;
  symbols: string;
  execution_mode: string;
  risk_controls: string;
  feed: string | null;
  flatten_on_stop: number;
  positions: string;
  snapshot: string | null;
  stop_reason: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  stopped_at: string | null;
  updated_at: string;
}

/**
 * The strategy as stored: StrategyRefSchema's shape with its params a JSON object. The params' size and depth
 * limits are the start command's (checked there, before the row was written), and their values are checked
 * against the strategy's own schema whenever a runner is built from the row (StrategyCatalog.resolve), so a
 * read does not walk and serialize them again (that was most of a 10,000-session restart's row validation).
 */
const StoredStrategyRefSchema = StrategyRefSchema.extend({ params: z.record(z.string(), z.unknown()).optional() });

const RowSchema = z.object({
  id: z.string(),
  kind: z.enum(['paper', 'live']),
  status: z.enum(['created', 'running', 'paused', 'stopped']),
  strategy: StoredStrategyRefSchema,
  broker_id: z.string(),
  account_id: z.string(),
  symbols: z.array(z.string()),
  execution_mode: z.enum(['auto', 'confirm', 'signal-only']),
  risk_controls: RiskControlsSchema,
  feed: FeedConfigSchema.nullable(),
  positions: z.record(z.string(), z.unknown()),
});

// ---- RowSchema's fast path ----
// A restart validates 10,000 rows in a row; RowSchema's parse of one took ~15 us cold (most of a restart's row
// validation). isPlainValidRow accepts only rows RowSchema accepts AND returns unchanged (same keys and values),
// checked field by field; everything else (a bad row, a venue feed, a field it does not know) goes to RowSchema,
// which decides and words the error. test/session-mapper.test.ts holds it to that against RowSchema on
// generated rows.

const finitePositive = (v: unknown): boolean => isFiniteNumber(v) && v > 0;
const positiveInt = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);
const only = (o: Record<string, unknown>, keys: ReadonlySet<string>): boolean => {
  for (const k in o) if (!keys.has(k)) return false;
  return true;
};
/** The top-level fields isPlainValidRow checks (RowSchema's). */
const ROW_KEYS = ['id', 'kind', 'status', 'broker_id', 'account_id', 'execution_mode', 'symbols', 'positions', 'strategy', 'risk_controls', 'feed'];
const STRATEGY_KEYS = new Set(['id', 'name', 'params']);
const RISK_KEYS = new Set(['maxOrderQty', 'maxOrderNotional', 'maxPositionQty', 'maxOpenOrders', 'maxDailyLoss']);
const SYNTHETIC_KEYS = new Set(['type', 'seed', 'intervalMs', 'startPrice', 'volatility', 'barsPerStep']);
const REPLAY_KEYS = new Set(['type', 'file', 'speed', 'barsPerStep']);

function plainStrategy(v: unknown): boolean {
  if (!isPlainObject(v) || !only(v, STRATEGY_KEYS) || typeof v.id !== 'string' || !ID_PATTERN.test(v.id)) return false;
  return optional(v.name, (n) => typeof n === 'string' && n.length >= 1 && n.length <= 256) && optional(v.params, isPlainObject);
}

function plainRisk(v: unknown): boolean {
  if (!isPlainObject(v) || !only(v, RISK_KEYS)) return false;
  return (
    optional(v.maxOrderQty, finitePositive) && optional(v.maxOrderNotional, finitePositive) && optional(v.maxPositionQty, finitePositive) &&
    optional(v.maxDailyLoss, finitePositive) && optional(v.maxOpenOrders, positiveInt)
  );
}

function plainFeed(v: unknown): boolean {
  if (v === null) return true;
  if (!isPlainObject(v)) return false;
  if (v.type === 'synthetic') {
    return (
      only(v, SYNTHETIC_KEYS) && optional(v.seed, Number.isSafeInteger) && optional(v.intervalMs, positiveInt) &&
      optional(v.startPrice, finitePositive) && optional(v.volatility, finitePositive) && optional(v.barsPerStep, positiveInt)
    );
  }
  if (v.type === 'replay') {
    return only(v, REPLAY_KEYS) && typeof v.file === 'string' && v.file.length >= 1 && optional(v.speed, finitePositive) && optional(v.barsPerStep, positiveInt);
  }
  return false;
}

function isPlainValidRow(r: ParsedSessionRow): r is ParsedSessionRow & z.output<typeof RowSchema> {
  return (
    typeof r.id === 'string' && (r.kind === 'paper' || r.kind === 'live') &&
    (r.status === 'created' || r.status === 'running' || r.status === 'paused' || r.status === 'stopped') &&
    typeof r.broker_id === 'string' && typeof r.account_id === 'string' &&
    (r.execution_mode === 'auto' || r.execution_mode === 'confirm' || r.execution_mode === 'signal-only') &&
    Array.isArray(r.symbols) && r.symbols.every((x) => typeof x === 'string') && isPlainObject(r.positions) &&
    plainStrategy(r.strategy) && plainRisk(r.risk_controls) && plainFeed(r.feed)
  );
}

/**
 * @internal For the fast path's test: the keys each schema knows and the keys its fast path checks (a field added
 * to a schema and not to the fast path fails that test).
 */
export function fastPathKeys(): [string, string[], string[]][] {
  const [synthetic, replay] = FeedConfigSchema.options;
  return [
    ['row', Object.keys(RowSchema.shape), [...ROW_KEYS]],
    ['strategy', Object.keys(StoredStrategyRefSchema.shape), [...STRATEGY_KEYS]],
    ['risk_controls', Object.keys(RiskControlsSchema.shape), [...RISK_KEYS]],
    ['feed synthetic', Object.keys(synthetic.shape), [...SYNTHETIC_KEYS]],
    ['feed replay', Object.keys(replay.shape), [...REPLAY_KEYS]],
  ];
}

/** @internal For the fast path's test: RowSchema's own verdict. */
export function rowSchemaAccepts(row: ParsedSessionRow): { ok: boolean; data?: unknown } {
  const parsed = RowSchema.safeParse(row);
  return parsed.success ? { ok: true, data: parsed.data } : { ok: false };
}

/** @internal For the fast path's test. */
export { isPlainValidRow };

function parseJson(text: string | null, column: string, id: string): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new InternalError(`sessions.${column} of ${id} is not valid JSON`);
  }
}

/** A `sessions` row with its JSON columns parsed (rowToSession, or SQLite's json() in a bulk read). */
export type ParsedSessionRow = Omit<SessionRow, 'strategy' | 'symbols' | 'risk_controls' | 'feed' | 'positions'> & {
  strategy: unknown;
  symbols: unknown;
  risk_controls: unknown;
  feed: unknown;
  positions: unknown;
};

/** Row -> domain, validated: a corrupt row is an INTERNAL error naming the session, never a silent default. */
export function rowToSession(row: SessionRow): Session {
  return parsedRowToSession({
    ...row,
    strategy: parseJson(row.strategy, 'strategy', row.id),
    symbols: parseJson(row.symbols, 'symbols', row.id),
    risk_controls: parseJson(row.risk_controls, 'risk_controls', row.id),
    feed: parseJson(row.feed, 'feed', row.id),
    positions: parseJson(row.positions, 'positions', row.id),
  });
}

/** The JSON columns already parsed -> domain, validated like rowToSession. */
export function parsedRowToSession(row: ParsedSessionRow): Session {
  let r: z.output<typeof RowSchema>;
  if (isPlainValidRow(row)) r = row;
  else {
    const parsed = RowSchema.safeParse(row);
    if (!parsed.success) {
      throw new InternalError(`session row ${row.id} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    }
    r = parsed.data;
  }
  const s: Session = {
    id: r.id,
    kind: r.kind,
    status: r.status,
    strategy: r.strategy,
    brokerId: r.broker_id,
    accountId: r.account_id,
    symbols: r.symbols,
    executionMode: r.execution_mode,
    riskControls: r.risk_controls,
    flattenOnStop: row.flatten_on_stop === 1,
    positions: r.positions,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (r.feed) s.feed = r.feed;
  if (row.stop_reason !== null) s.stopReason = row.stop_reason;
  if (row.error !== null) s.error = row.error;
  if (row.started_at !== null) s.startedAt = row.started_at;
  if (row.stopped_at !== null) s.stoppedAt = row.stopped_at;
  return s;
}

/** Domain -> row parameters (snapshot passed separately). */
export function sessionToRow(s: Session, snapshot: unknown): SessionRow {
  return {
    id: s.id,
    kind: s.kind,
    status: s.status,
    strategy_id: s.strategy.id,
    strategy: JSON.stringify(s.strategy),
    broker_id: s.brokerId,
    account_id: s.accountId,
    symbols: JSON.stringify(s.symbols),
    execution_mode: s.executionMode,
    risk_controls: JSON.stringify(s.riskControls),
    feed: s.feed ? JSON.stringify(s.feed) : null,
    flatten_on_stop: s.flattenOnStop ? 1 : 0,
    positions: JSON.stringify(s.positions),
    snapshot: snapshot === undefined || snapshot === null ? null : JSON.stringify(snapshot),
    stop_reason: s.stopReason ?? null,
    error: s.error ?? null,
    created_at: s.createdAt,
    started_at: s.startedAt ?? null,
    stopped_at: s.stoppedAt ?? null,
    updated_at: s.updatedAt,
  };
}
