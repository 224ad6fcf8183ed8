import { z } from 'zod';
import { FeedConfigSchema, RiskControlsSchema, StrategyRefSchema, type Session } from '../domain/session.js';
import { InternalError } from '../domain/errors.js';

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
  const parsed = RowSchema.safeParse(row);
  if (!parsed.success) {
    throw new InternalError(`session row ${row.id} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  }
  const r = parsed.data;
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
