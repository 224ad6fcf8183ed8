import type { Migration } from './types.js';

export const migration001: Migration = {
  version: 1,
  name: 'sessions, transitions, commands, backtests',
  up(db) {
    db.exec(`
      CREATE TABLE sessions (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('paper','live')),
        status          TEXT NOT NULL CHECK (status IN ('created','running','paused','stopped')),
        strategy_id     TEXT NOT NULL,
        strategy        TEXT NOT NULL,            -- JSON StrategyRef
        broker_id       TEXT NOT NULL,
        account_id      TEXT NOT NULL,
        symbols         TEXT NOT NULL,            -- JSON string[]
        execution_mode  TEXT NOT NULL,
        risk_controls   TEXT NOT NULL,            -- JSON RiskControls
        feed            TEXT,                     -- JSON FeedConfig
        flatten_on_stop INTEGER NOT NULL DEFAULT 0,
        positions       TEXT NOT NULL DEFAULT '{}', -- JSON
        snapshot        TEXT,                     -- JSON persisted XState snapshot
        stop_reason     TEXT,
        error           TEXT,
        created_at      TEXT NOT NULL,
        started_at      TEXT,
        stopped_at      TEXT,
        updated_at      TEXT NOT NULL
      );
      -- No index on status: it changes on every transition (an extra page per commit) and a scan of
      -- even 10,000 rows is a millisecond. kind/strategy never change, so their index costs writes nothing.
      CREATE INDEX sessions_kind_strategy ON sessions (kind, strategy_id);

      -- WITHOUT ROWID, keyed by (session, seq): one b-tree, the history of a session is contiguous.
      CREATE TABLE session_transitions (
        -- No FOREIGN KEY: it costs a parent lookup per insert; the store writes both in one transaction
        -- and deletes the history with the session.
        session_id  TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        from_state  TEXT,
        to_state    TEXT NOT NULL,
        event       TEXT NOT NULL,
        command_id  TEXT,
        source      TEXT NOT NULL,
        reason      TEXT,
        at          TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
      ) WITHOUT ROWID;
      CREATE UNIQUE INDEX session_transitions_command ON session_transitions (session_id, command_id, event)
        WHERE command_id IS NOT NULL;

      CREATE TABLE commands (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        session_id    TEXT,
        outcome       TEXT NOT NULL CHECK (outcome IN ('ok','error')),
        result        TEXT,                        -- JSON
        error_code    TEXT,
        error_message TEXT,
        error_details TEXT,                        -- JSON
        applied_at    TEXT NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE backtests (
        id          TEXT PRIMARY KEY,
        strategy_id TEXT NOT NULL,
        params      TEXT NOT NULL,                 -- JSON
        data_ref    TEXT NOT NULL,
        metrics     TEXT NOT NULL,                 -- JSON BacktestMetrics
        passed      INTEGER NOT NULL,
        checks      TEXT NOT NULL,                 -- JSON PrerequisiteCheck[]
        created_at  TEXT NOT NULL
      );
      CREATE INDEX backtests_strategy ON backtests (strategy_id, created_at);
    `);
  },
};
