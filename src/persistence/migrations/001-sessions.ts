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
      CREATE INDEX sessions_status ON sessions (status);
      CREATE INDEX sessions_kind_strategy ON sessions (kind, strategy_id);

      CREATE TABLE session_transitions (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        from_state  TEXT,
        to_state    TEXT NOT NULL,
        event       TEXT NOT NULL,
        command_id  TEXT,
        source      TEXT NOT NULL,
        reason      TEXT,
        at          TEXT NOT NULL,
        UNIQUE (session_id, seq)
      );
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
      );
      CREATE INDEX commands_session ON commands (session_id);

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
