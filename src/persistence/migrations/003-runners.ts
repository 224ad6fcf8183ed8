import type { Migration } from './types.js';

/**
 * What a session's runner needs to continue after a restart, and what it records beside the order book:
 * - `runner_state`: one row per session that ever ran: strategy state, feed cursor and start time, the
 *   marks and PnL baselines risk checks need, running equity statistics (peak, max drawdown).
 * - `runner_equity`: sampled equity history per session (performance, charts).
 * - `signals`: what `signal-only` sessions decide (they place nothing, so there is no order to record).
 * - an index the paper broker's fills need under load.
 */
export const migration003: Migration = {
  version: 3,
  name: 'runner state, equity history, signals',
  up(db) {
    db.exec(`
      CREATE TABLE runner_state (
        session_id        TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
        strategy_id       TEXT NOT NULL,
        strategy_state    TEXT NOT NULL,            -- JSON: the state after the last committed step
        cursor            INTEGER NOT NULL,         -- feed cursor after the last committed step
        start_time        INTEGER NOT NULL,         -- epoch ms of the feed's bar 0 (synthetic)
        steps             INTEGER NOT NULL DEFAULT 0,
        last_bar_time     INTEGER,
        last_prices       TEXT NOT NULL DEFAULT '{}', -- JSON { symbol: last close }
        day_start         INTEGER,                  -- epoch ms of the UTC day daily PnL counts from
        day_start_pnl     REAL NOT NULL DEFAULT 0,  -- total PnL at day_start
        initial_equity    REAL NOT NULL,
        equity            REAL NOT NULL,
        peak_equity       REAL NOT NULL,
        max_drawdown_pct  REAL NOT NULL DEFAULT 0,
        failures          INTEGER NOT NULL DEFAULT 0, -- failed steps, all time
        last_error        TEXT,
        finalized_at      TEXT,                     -- set once stop's cancel/flatten completed
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL
      );

      CREATE TABLE runner_equity (
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at          INTEGER NOT NULL,               -- bar time, epoch ms
        equity      REAL NOT NULL,
        PRIMARY KEY (session_id, at)
      ) WITHOUT ROWID;

      CREATE TABLE signals (
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        symbol      TEXT NOT NULL,
        side        TEXT NOT NULL CHECK (side IN ('buy','sell')),
        qty         REAL NOT NULL,
        type        TEXT NOT NULL CHECK (type IN ('market','limit')),
        limit_price REAL,
        ref_price   REAL,                           -- last close when the signal was made
        reason      TEXT,                           -- the strategy's reason
        risk        TEXT,                           -- NULL when risk controls would pass it, else 'RISK_LIMIT: ...'
        bar_time    INTEGER,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (session_id, key)
      );

      -- The paper broker numbers each order's fills with COUNT(*) by client order id: without this index that
      -- is a scan of every fill ever made, on every fill.
      CREATE INDEX IF NOT EXISTS paper_fills_order ON paper_fills (broker_id, client_order_id);
    `);
  },
};
