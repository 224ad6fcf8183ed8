import type { Side } from '../domain/market.js';

/** Plain JSON (a strategy's state). */
export type RunnerJson = null | boolean | number | string | RunnerJson[] | { [key: string]: RunnerJson };

/** What a session's runner persists to continue after a restart (one row per session that ever ran). */
export interface RunnerStateRecord {
  sessionId: string;
  strategyId: string;
  /** The strategy state after the last committed step. */
  state: RunnerJson;
  /** Feed cursor after the last committed step: the next step reads from here. */
  cursor: number;
  /** Epoch ms of the feed's bar 0 (synthetic feeds): fixed for the session, signal keys contain bar times. */
  startTime: number;
  /** Committed steps. */
  steps: number;
  lastBarTime?: number | undefined;
  /** Last close per symbol: the reference price of risk checks and the mark of positions. */
  lastPrices: Record<string, number>;
  /** Start (epoch ms) of the UTC day daily PnL counts from, and the total PnL at that point. */
  dayStart?: number | undefined;
  dayStartPnl: number;
  initialEquity: number;
  equity: number;
  peakEquity: number;
  /** Largest fall from a running equity peak, percent of the peak, over every committed step. */
  maxDrawdownPct: number;
  /** Failed steps, all time (restarts are counted per failure streak in memory). */
  failures: number;
  lastError?: string | undefined;
  /**
   * The feed's restore point at `cursor` (synthetic feeds: each symbol's log close), so a restart seeks in
   * O(1); absent, or for another cursor, the feed replays from the start.
   */
  feedCheckpoint?: RunnerJson | undefined;
  /** Set once the stop of the session (cancel open orders, flatten) completed. */
  finalizedAt?: string | undefined;
  createdAt: string;
  updatedAt: string;
}

/** A signal a `signal-only` session recorded instead of placing an order. */
export interface SignalRecord {
  sessionId: string;
  key: string;
  symbol: string;
  side: Side;
  qty: number;
  type: 'market' | 'limit';
  limitPrice?: number | undefined;
  /** Last close of the symbol when the signal was made. */
  refPrice?: number | undefined;
  /** The strategy's reason. */
  reason?: string | undefined;
  /** Undefined when the session's risk controls would pass it, else `RISK_LIMIT: ...`. */
  risk?: string | undefined;
  barTime?: number | undefined;
  createdAt: string;
}

export interface EquityPoint {
  /** Bar time, epoch ms. */
  at: number;
  equity: number;
}

/** Synchronous (better-sqlite3): the runner writes a batch's rows in one transaction. */
export interface RunnerStateRepository {
  get(sessionId: string): RunnerStateRecord | undefined;
  /**
   * Optional read-ahead (a restart restores sessions in a row): the next `get` of each of these ids is answered
   * from one read of them all, as committed now; a write of a session drops its answer. Replaces the previous
   * read-ahead.
   */
  prefetch?(sessionIds: readonly string[]): void;
  /** Inserts or replaces. */
  save(record: RunnerStateRecord): void;
  /** Every record in one transaction. */
  saveMany(records: readonly RunnerStateRecord[]): void;
  markFinalized(sessionId: string, at: string): void;
  /** Stopped sessions whose runner state is not finalized: a stop interrupted by a crash. */
  listUnfinalizedStopped(): string[];
  /** Records one equity point; a second point at the same time replaces the first. */
  addEquity(sessionId: string, point: EquityPoint): void;
  /** Oldest first; `limit` keeps the newest N. */
  equityHistory(sessionId: string, options?: { limit?: number }): EquityPoint[];
  /** Records a signal once: false (nothing changed) when the session already has one with that key. */
  addSignal(signal: SignalRecord): boolean;
  /** Oldest first. */
  listSignals(sessionId: string): SignalRecord[];
  transaction<T>(fn: () => T): T;
}
