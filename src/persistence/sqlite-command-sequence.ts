import type { Statement } from 'better-sqlite3';
import type { Db } from './database.js';

export interface SequenceEntry {
  seq: number;
  commandId?: string | undefined;
  outcome: 'settled' | 'skipped';
  reason?: string | undefined;
}

/** Where each session's command sequence stands: what the consumer's sequence gate reads after a restart. */
export interface CommandSequenceLog {
  /** The highest settled or skipped sequence number of the session (0: none). */
  last(sessionId: string): number;
  get(sessionId: string, seq: number): SequenceEntry | undefined;
  record(sessionId: string, entry: SequenceEntry, at: string): void;
}

interface Row {
  seq: number;
  command_id: string | null;
  outcome: 'settled' | 'skipped';
  reason: string | null;
}

/** SQLite adapter of the command sequence log (table `command_sequence`, migration 004). */
export class SqliteCommandSequenceLog implements CommandSequenceLog {
  private readonly stmts: {
    last: Statement<[string], { seq: number | null }>;
    get: Statement<[string, number], Row>;
    insert: Statement;
  };

  constructor(db: Db) {
    this.stmts = {
      last: db.prepare('SELECT MAX(seq) AS seq FROM command_sequence WHERE session_id = ?'),
      get: db.prepare('SELECT seq, command_id, outcome, reason FROM command_sequence WHERE session_id = ? AND seq = ?'),
      insert: db.prepare(`INSERT OR IGNORE INTO command_sequence (session_id, seq, command_id, outcome, reason, at)
        VALUES (@session_id, @seq, @command_id, @outcome, @reason, @at)`),
    };
  }

  last(sessionId: string): number {
    return this.stmts.last.get(sessionId)?.seq ?? 0;
  }

  get(sessionId: string, seq: number): SequenceEntry | undefined {
    const r = this.stmts.get.get(sessionId, seq);
    return r ? { seq: r.seq, commandId: r.command_id ?? undefined, outcome: r.outcome, reason: r.reason ?? undefined } : undefined;
  }

  record(sessionId: string, entry: SequenceEntry, at: string): void {
    this.stmts.insert.run({ session_id: sessionId, seq: entry.seq, command_id: entry.commandId ?? null, outcome: entry.outcome, reason: entry.reason ?? null, at });
  }
}
