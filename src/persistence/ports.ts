import type { BacktestRecord } from '../domain/backtest.js';
import type { Session, SessionKind, SessionStatus } from '../domain/session.js';

/** One row of a session's transition history. */
export interface TransitionRecord {
  sessionId: string;
  seq: number;
  from: string | null;
  to: string;
  event: string;
  commandId?: string | undefined;
  /** Who caused it: `command` (queue/CLI), `runner`, `risk`, ... */
  source: string;
  reason?: string | undefined;
  at: string;
}

/** The stored outcome of a command, so a redelivered command returns its first result. */
export interface CommandRecord {
  id: string;
  name: string;
  sessionId?: string | undefined;
  outcome: 'ok' | 'error';
  result?: unknown;
  errorCode?: string | undefined;
  errorMessage?: string | undefined;
  errorDetails?: unknown;
  appliedAt: string;
}

export interface StoredSession {
  session: Session;
  /** The persisted XState snapshot (JSON-ready). */
  snapshot: unknown;
}

export interface SessionWrite {
  /** True for a new session (full insert); otherwise only the lifecycle columns are updated. */
  create?: boolean | undefined;
  session: Session;
  snapshot: unknown;
  transition: Omit<TransitionRecord, 'seq'>;
  command?: CommandRecord | undefined;
}

export interface SessionFilter {
  status?: SessionStatus | readonly SessionStatus[] | undefined;
  kind?: SessionKind | undefined;
  strategyId?: string | undefined;
}

/**
 * The manager's write-ahead store. Synchronous on purpose: the whole command is one SQLite transaction
 * and nothing else runs between its read and its write.
 */
export interface SessionStore {
  get(id: string): StoredSession | undefined;
  list(filter?: SessionFilter): Session[];
  /** Non-stopped sessions with their snapshots, for recovery. */
  listRecoverable(): StoredSession[];
  /** Session row + snapshot + history row (+ command record) in ONE transaction. */
  commit(write: SessionWrite): TransitionRecord;
  /** Several writes in ONE transaction (group commit): all of them or none. */
  commitBatch(writes: readonly SessionWrite[]): TransitionRecord[];
  /** Updates fields a runner owns (positions) without a transition. */
  updatePositions(id: string, positions: Record<string, unknown>, at: string): void;
  history(id: string): TransitionRecord[];
  /** Ids of sessions that a command moved (e.g. every session a kill-switch stopped). */
  sessionIdsByCommand(commandId: string): string[];
}

export interface CommandLog {
  get(id: string): CommandRecord | undefined;
  record(cmd: CommandRecord): void;
}

export interface BacktestRepository {
  save(record: BacktestRecord): Promise<void>;
  getById(id: string): Promise<BacktestRecord | null>;
  listByStrategy(strategyId: string): Promise<BacktestRecord[]>;
}

/** The seed's repository: paper-trading sessions, async as the seed asks. */
export interface PaperTradingSessionRepository {
  save(session: Session): Promise<void>;
  getById(id: string): Promise<Session | null>;
  getAll(): Promise<Session[]>;
  /** Running and paused sessions; never stopped or created ones. */
  getActive(): Promise<Session[]>;
  delete(id: string): Promise<boolean>;
}

/** The same contract for live sessions. */
export type LiveTradingSessionRepository = PaperTradingSessionRepository;
