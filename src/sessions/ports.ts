import type { Session, StrategyRef } from '../domain/session.js';

/**
 * What the manager tells a session's runner. Called after the transition is committed.
 * Failures are reported back through SessionManager.handleRunnerFailure, never thrown from here.
 */
export interface SessionRunnerPort {
  /**
   * Optional: checks a `start`'s config before anything is written (e.g. that its replay file can be read
   * and is valid); a throw rejects the command (VALIDATION_ERROR).
   */
  checkStart?(config: Pick<Session, 'id' | 'feed' | 'symbols'> & { brokerId?: string }): Promise<void>;
  /** The session entered `running` from `created`. */
  start(session: Session): Promise<void>;
  pause(session: Session): Promise<void>;
  resume(session: Session): Promise<void>;
  /** The session entered `stopped`: cancel open orders; flatten positions when the session asks for it. */
  stop(session: Session): Promise<void>;
  /** After a daemon restart: bring the runner to the persisted status (`running` or `paused`). */
  restore(session: Session): Promise<void>;
  /**
   * Optional: the restore() calls of these sessions follow (a daemon restart restores them in a row), so what
   * they read may be read for all of them at once. Changes nothing by itself.
   */
  prepareRestore?(sessions: readonly Session[]): void;
  /**
   * Optional: a call above failed because SQLite cannot write. The runner holds the session (status
   * unchanged) and resumes it by itself once SQLite writes again; returns false when `err` is no storage fault.
   */
  holdForStorage?(sessionId: string, err: unknown): boolean;
  /** Daemon shutdown: stop every loop WITHOUT changing any session's status. */
  close(): Promise<void>;
}

/** Which broker ids exist (the `paper` broker always does). */
export interface BrokerDirectory {
  has(brokerId: string): boolean;
}

/** Resolves a strategy reference: throws STRATEGY_NOT_FOUND / VALIDATION_ERROR; returns it with params defaulted. */
export interface StrategyDirectory {
  resolve(ref: StrategyRef): StrategyRef;
}

/** A paper session's trading performance, computed from its persisted orders and positions. */
export interface SessionPerformance {
  returnPct: number;
  maxDrawdownPct: number;
  trades: number;
}

export interface PerformanceSource {
  performanceOf(session: Session): SessionPerformance;
}
