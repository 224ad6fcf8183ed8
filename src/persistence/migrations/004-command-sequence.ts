import type { Migration } from './types.js';

/**
 * Per-session command order: one row per settled sequence number of a session, the command that took it (or
 * none when the daemon skipped a number that never arrived), so the daemon knows after a restart where each
 * session's sequence stands.
 */
export const migration004: Migration = {
  version: 4,
  name: 'command sequence per session',
  up(db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS command_sequence (
        session_id  TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        command_id  TEXT,                 -- NULL when skipped
        outcome     TEXT NOT NULL CHECK (outcome IN ('settled', 'skipped')),
        reason      TEXT,
        at          TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
      ) WITHOUT ROWID;
    `);
  },
};
