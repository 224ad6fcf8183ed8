import type { Statement } from 'better-sqlite3';
import type { Session } from '../domain/session.js';
import { InternalError } from '../domain/errors.js';
import type { Db } from './database.js';
import type {
  CommandLog,
  CommandRecord,
  SessionFilter,
  SessionStore,
  SessionWrite,
  StoredSession,
  TransitionRecord,
} from './ports.js';
import { parsedRowToSession, rowToSession, sessionToRow, type ParsedSessionRow, type SessionRow } from './session-mapper.js';

const UPSERT_SESSION = `
  INSERT INTO sessions (id, kind, status, strategy_id, strategy, broker_id, account_id, symbols, execution_mode,
    risk_controls, feed, flatten_on_stop, positions, snapshot, stop_reason, error, created_at, started_at, stopped_at, updated_at)
  VALUES (@id, @kind, @status, @strategy_id, @strategy, @broker_id, @account_id, @symbols, @execution_mode,
    @risk_controls, @feed, @flatten_on_stop, @positions, @snapshot, @stop_reason, @error, @created_at, @started_at, @stopped_at, @updated_at)
  ON CONFLICT (id) DO UPDATE SET
    kind = excluded.kind, status = excluded.status, strategy_id = excluded.strategy_id, strategy = excluded.strategy,
    broker_id = excluded.broker_id, account_id = excluded.account_id, symbols = excluded.symbols,
    execution_mode = excluded.execution_mode, risk_controls = excluded.risk_controls, feed = excluded.feed,
    flatten_on_stop = excluded.flatten_on_stop, positions = excluded.positions,
    snapshot = COALESCE(excluded.snapshot, sessions.snapshot), stop_reason = excluded.stop_reason,
    error = excluded.error, created_at = excluded.created_at, started_at = excluded.started_at,
    stopped_at = excluded.stopped_at, updated_at = excluded.updated_at`;

/**
 * Recovery's read: each non-stopped row as ONE JSON text, its JSON columns embedded by SQLite's json(), which
 * JS parses in one JSON.parse. Reading 10,000 rows of 20 columns as 200,000 JS strings (then parsing five of
 * them each) cost about twice as much, most of it allocation and GC. The columns are checked to be strict
 * JSON first (json_valid flag 1, what JSON.parse accepts); a row that is not gets NULL and is read and
 * reported alone (rowToSession: an INTERNAL error naming the session and the column).
 */
const JSON_COLUMNS_VALID = `json_valid(strategy, 1) AND json_valid(symbols, 1) AND json_valid(risk_controls, 1)
  AND (feed IS NULL OR json_valid(feed, 1)) AND json_valid(positions, 1) AND (snapshot IS NULL OR json_valid(snapshot, 1))`;
const RECOVERABLE_JSON = `
  SELECT id, CASE WHEN ${JSON_COLUMNS_VALID} THEN json_object('id', id, 'kind', kind, 'status', status, 'strategy_id', strategy_id,
    'strategy', json(strategy), 'broker_id', broker_id, 'account_id', account_id, 'symbols', json(symbols),
    'execution_mode', execution_mode, 'risk_controls', json(risk_controls), 'feed', json(feed), 'flatten_on_stop', flatten_on_stop,
    'positions', json(positions), 'snapshot', json(snapshot), 'stop_reason', stop_reason, 'error', error, 'created_at', created_at,
    'started_at', started_at, 'stopped_at', stopped_at, 'updated_at', updated_at) END AS row
  FROM sessions WHERE status != 'stopped' ORDER BY created_at, id`;

interface TransitionRow {
  session_id: string;
  seq: number;
  from_state: string | null;
  to_state: string;
  event: string;
  command_id: string | null;
  source: string;
  reason: string | null;
  at: string;
}

interface CommandRow {
  id: string;
  name: string;
  session_id: string | null;
  outcome: 'ok' | 'error';
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  error_details: string | null;
  applied_at: string;
}

function toTransition(r: TransitionRow): TransitionRecord {
  const t: TransitionRecord = {
    sessionId: r.session_id,
    seq: r.seq,
    from: r.from_state,
    to: r.to_state,
    event: r.event,
    source: r.source,
    at: r.at,
  };
  if (r.command_id !== null) t.commandId = r.command_id;
  if (r.reason !== null) t.reason = r.reason;
  return t;
}

function parseSnapshot(row: SessionRow): unknown {
  if (row.snapshot === null) return null;
  try {
    return JSON.parse(row.snapshot);
  } catch {
    throw new InternalError(`sessions.snapshot of ${row.id} is not valid JSON`);
  }
}

/** What a transition changes: only these columns are serialized and written. */
function lifecycleColumns(s: Session, snapshot: unknown) {
  return {
    id: s.id,
    status: s.status,
    snapshot: snapshot === undefined || snapshot === null ? null : JSON.stringify(snapshot),
    stop_reason: s.stopReason ?? null,
    error: s.error ?? null,
    started_at: s.startedAt ?? null,
    stopped_at: s.stoppedAt ?? null,
    updated_at: s.updatedAt,
  };
}

/** SQLite adapter of the manager's write-ahead store and of the command log. */
export class SqliteSessionStore implements SessionStore {
  private readonly stmts: {
    upsert: Statement;
    update: Statement;
    get: Statement<[string], SessionRow>;
    recoverable: Statement<[], [string, string | null]>;
    lastSeq: Statement<[string], { seq: number | null }>;
    insertTransition: Statement;
    history: Statement<[string], TransitionRow>;
    byCommand: Statement<[string], { session_id: string }>;
    positions: Statement;
    getCommand: Statement<[string], CommandRow>;
    insertCommand: Statement;
    delete: Statement<[string]>;
    deleteHistory: Statement<[string]>;
  };
  private readonly commitTx: (write: SessionWrite) => TransitionRecord;
  private readonly lastSeq = new Map<string, number>();
  private readonly deleteTx: (id: string) => boolean;
  private readonly commitBatchTx: (writes: readonly SessionWrite[]) => TransitionRecord[];

  constructor(readonly db: Db) {
    this.stmts = {
      upsert: db.prepare(UPSERT_SESSION),
      // positions are the runner's (updatePositions): a lifecycle write must not overwrite them with a cached copy.
      update: db.prepare(`UPDATE sessions SET status = @status, snapshot = @snapshot,
        stop_reason = @stop_reason, error = @error, started_at = @started_at, stopped_at = @stopped_at,
        updated_at = @updated_at WHERE id = @id`),
      get: db.prepare('SELECT * FROM sessions WHERE id = ?'),
      recoverable: db.prepare<[], [string, string | null]>(RECOVERABLE_JSON).raw(),
      lastSeq: db.prepare('SELECT MAX(seq) AS seq FROM session_transitions WHERE session_id = ?'),
      insertTransition: db.prepare(`INSERT INTO session_transitions
        (session_id, seq, from_state, to_state, event, command_id, source, reason, at)
        VALUES (@session_id, @seq, @from_state, @to_state, @event, @command_id, @source, @reason, @at)`),
      history: db.prepare('SELECT * FROM session_transitions WHERE session_id = ? ORDER BY seq'),
      byCommand: db.prepare('SELECT session_id FROM session_transitions WHERE command_id = ? GROUP BY session_id ORDER BY MIN(at), session_id'),
      positions: db.prepare('UPDATE sessions SET positions = ?, updated_at = ? WHERE id = ?'),
      getCommand: db.prepare('SELECT * FROM commands WHERE id = ?'),
      insertCommand: db.prepare(`INSERT INTO commands
        (id, name, session_id, outcome, result, error_code, error_message, error_details, applied_at)
        VALUES (@id, @name, @session_id, @outcome, @result, @error_code, @error_message, @error_details, @applied_at)`),
      delete: db.prepare('DELETE FROM sessions WHERE id = ?'),
      deleteHistory: db.prepare('DELETE FROM session_transitions WHERE session_id = ?'),
    };
    const apply = (write: SessionWrite): TransitionRecord => {
      if (write.create) this.stmts.upsert.run(sessionToRow(write.session, write.snapshot));
      else if (this.stmts.update.run(lifecycleColumns(write.session, write.snapshot)).changes !== 1) {
        throw new InternalError(`session ${write.session.id} has no row to update`);
      }
      // Callers serialize writes per session, so the last seq can be cached; it is read once per session.
      const seq = (this.lastSeq.get(write.session.id) ?? this.stmts.lastSeq.get(write.session.id)?.seq ?? 0) + 1;
      const t = write.transition;
      this.stmts.insertTransition.run({
        session_id: t.sessionId,
        seq,
        from_state: t.from,
        to_state: t.to,
        event: t.event,
        command_id: t.commandId ?? null,
        source: t.source,
        reason: t.reason ?? null,
        at: t.at,
      });
      if (write.command) this.insertCommand(write.command);
      pendingSeq.push([write.session.id, seq]);
      return { ...t, seq };
    };
    // Cached seqs become visible only when their transaction commits.
    const pendingSeq: [string, number][] = [];
    const committed = <A extends unknown[], R>(fn: (...a: A) => R) => (...a: A): R => {
      pendingSeq.length = 0;
      try {
        const r = fn(...a);
        for (const [id, seq] of pendingSeq) this.lastSeq.set(id, seq);
        return r;
      } finally {
        pendingSeq.length = 0;
      }
    };
    this.deleteTx = db.transaction((id: string) => {
      this.stmts.deleteHistory.run(id);
      return this.stmts.delete.run(id).changes > 0;
    });
    this.commitTx = committed(db.transaction(apply));
    this.commitBatchTx = committed(db.transaction((writes: readonly SessionWrite[]) => writes.map(apply)));
  }

  get(id: string): StoredSession | undefined {
    const row = this.stmts.get.get(id);
    return row ? { session: rowToSession(row), snapshot: parseSnapshot(row) } : undefined;
  }

  list(filter: SessionFilter = {}): Session[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) {
      const statuses = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
      where.push(`status IN (${statuses.map(() => '?').join(',')})`);
      params.push(...statuses);
    }
    if (filter.kind !== undefined) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    if (filter.strategyId !== undefined) {
      where.push('strategy_id = ?');
      params.push(filter.strategyId);
    }
    const sql = `SELECT * FROM sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return (this.db.prepare(sql).all(...params) as SessionRow[]).map(rowToSession);
  }

  listRecoverable(): StoredSession[] {
    // Iterated, so each row's text is garbage as soon as it is parsed (all() kept 10,000 alive through GCs).
    // A row that is not strict JSON somewhere is kept as its id, read alone after the scan.
    const out: (StoredSession | string)[] = [];
    let alone = false;
    for (const [id, json] of this.stmts.recoverable.iterate()) {
      if (json === null) {
        out.push(id);
        alone = true;
        continue;
      }
      const row = JSON.parse(json) as ParsedSessionRow & { snapshot: unknown };
      out.push({ session: parsedRowToSession(row), snapshot: row.snapshot });
    }
    if (!alone) return out as StoredSession[];
    // The row alone names the bad column (INTERNAL); one that changed since and reads fine is kept.
    return out.flatMap((r) => {
      if (typeof r !== 'string') return [r];
      const found = this.get(r);
      return found === undefined ? [] : [found];
    });
  }

  commit(write: SessionWrite): TransitionRecord {
    return this.commitTx(write);
  }

  commitBatch(writes: readonly SessionWrite[]): TransitionRecord[] {
    return this.commitBatchTx(writes);
  }

  updatePositions(id: string, positions: Record<string, unknown>, at: string): void {
    this.stmts.positions.run(JSON.stringify(positions), at, id);
  }

  history(id: string): TransitionRecord[] {
    return this.stmts.history.all(id).map(toTransition);
  }

  sessionIdsByCommand(commandId: string): string[] {
    return this.stmts.byCommand.all(commandId).map((r) => r.session_id);
  }

  /** Removes a session and its history. */
  delete(id: string): boolean {
    this.lastSeq.delete(id);
    return this.deleteTx(id);
  }

  /** Inserts or replaces a session row outside of a transition (the seed repositories' `save`). */
  upsert(session: Session, snapshot?: unknown): void {
    this.stmts.upsert.run(sessionToRow(session, snapshot ?? null));
  }

  getCommand(id: string): CommandRecord | undefined {
    const r = this.stmts.getCommand.get(id);
    if (!r) return undefined;
    const c: CommandRecord = { id: r.id, name: r.name, outcome: r.outcome, appliedAt: r.applied_at };
    if (r.session_id !== null) c.sessionId = r.session_id;
    if (r.result !== null) c.result = JSON.parse(r.result);
    if (r.error_code !== null) c.errorCode = r.error_code;
    if (r.error_message !== null) c.errorMessage = r.error_message;
    if (r.error_details !== null) c.errorDetails = JSON.parse(r.error_details);
    return c;
  }

  // used by SqliteCommandLog
  record(cmd: CommandRecord): void {
    this.insertCommand(cmd);
  }

  private insertCommand(cmd: CommandRecord): void {
    this.stmts.insertCommand.run({
      id: cmd.id,
      name: cmd.name,
      session_id: cmd.sessionId ?? null,
      outcome: cmd.outcome,
      result: cmd.result === undefined ? null : JSON.stringify(cmd.result),
      error_code: cmd.errorCode ?? null,
      error_message: cmd.errorMessage ?? null,
      error_details: cmd.errorDetails === undefined ? null : JSON.stringify(cmd.errorDetails),
      applied_at: cmd.appliedAt,
    });
  }
}

/** A CommandLog view over the store (the store implements `get` for sessions, so commands need their own object). */
export class SqliteCommandLog implements CommandLog {
  constructor(private readonly store: SqliteSessionStore) {}
  get(id: string): CommandRecord | undefined {
    return this.store.getCommand(id);
  }
  record(cmd: CommandRecord): void {
    this.store.record(cmd);
  }
}
