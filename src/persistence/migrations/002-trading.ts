import type { Migration } from './types.js';

/**
 * Trading state. Two families of tables:
 * - `orders`, `order_status_history`, `fills`, `positions`: what a session's runner records (the session's book).
 * - `paper_*`: the paper broker's own state, kept apart because the broker stands for an outside venue
 *   (a live broker keeps the same state on its side); every row is namespaced by the broker's id.
 */
export const migration002: Migration = {
  version: 2,
  name: 'orders, fills, positions, paper broker state',
  up(db) {
    db.exec(`
      CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        session_id      TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        broker_id       TEXT NOT NULL,
        account_id      TEXT NOT NULL,
        broker_order_id TEXT,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy','sell')),
        qty             REAL NOT NULL CHECK (qty > 0),
        type            TEXT NOT NULL CHECK (type IN ('market','limit')),
        limit_price     REAL,
        status          TEXT NOT NULL CHECK (status IN ('pending_approval','new','accepted','partially_filled',
                                                        'filled','cancelled','rejected','expired')),
        filled_qty      REAL NOT NULL DEFAULT 0,
        avg_fill_price  REAL,
        reason          TEXT,                     -- e.g. 'RISK_LIMIT: maxOrderQty 10 exceeded by qty 25'
        expires_at      TEXT,                     -- pending_approval only: ISO-8601 UTC
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
      );
      CREATE INDEX orders_session ON orders (session_id, created_at);
      CREATE INDEX orders_session_status ON orders (session_id, status);
      CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'pending_approval';

      CREATE TABLE order_status_history (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id) ON DELETE CASCADE,
        status          TEXT NOT NULL,
        reason          TEXT,
        at              TEXT NOT NULL
      );
      CREATE INDEX order_status_history_order ON order_status_history (client_order_id, id);

      CREATE TABLE fills (
        id              TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id) ON DELETE CASCADE,
        session_id      TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy','sell')),
        qty             REAL NOT NULL CHECK (qty > 0),
        price           REAL NOT NULL,
        commission      REAL NOT NULL DEFAULT 0,
        at              TEXT NOT NULL
      );
      CREATE INDEX fills_session ON fills (session_id, at);
      CREATE INDEX fills_order ON fills (client_order_id);

      -- A session's positions, one row per symbol it has traded (flat ones keep their realized PnL).
      CREATE TABLE positions (
        session_id      TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        symbol          TEXT NOT NULL,
        qty             REAL NOT NULL,            -- signed: > 0 long, < 0 short
        avg_price       REAL NOT NULL,
        realized_pnl    REAL NOT NULL,
        unrealized_pnl  REAL NOT NULL,
        last_price      REAL NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (session_id, symbol)
      );

      CREATE TABLE paper_accounts (
        broker_id       TEXT NOT NULL,
        account_id      TEXT NOT NULL,
        cash            REAL NOT NULL,
        initial_cash    REAL NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (broker_id, account_id)
      );

      CREATE TABLE paper_positions (
        broker_id       TEXT NOT NULL,
        account_id      TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        qty             REAL NOT NULL,
        avg_price       REAL NOT NULL,
        realized_pnl    REAL NOT NULL,
        last_price      REAL NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (broker_id, account_id, symbol),
        FOREIGN KEY (broker_id, account_id) REFERENCES paper_accounts (broker_id, account_id) ON DELETE CASCADE
      );
      CREATE INDEX paper_positions_symbol ON paper_positions (broker_id, symbol);

      CREATE TABLE paper_orders (
        broker_id       TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        seq             INTEGER NOT NULL,         -- the broker's order number: broker order id = '<broker>-<seq>'
        account_id      TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy','sell')),
        qty             REAL NOT NULL,
        type            TEXT NOT NULL CHECK (type IN ('market','limit')),
        limit_price     REAL,
        status          TEXT NOT NULL CHECK (status IN ('accepted','partially_filled','filled','cancelled','rejected')),
        filled_qty      REAL NOT NULL DEFAULT 0,
        avg_fill_price  REAL,
        reason          TEXT,
        after_bar_time  INTEGER,                  -- fills only on a bar opening after this (epoch ms); NULL: the first bar
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (broker_id, client_order_id),
        UNIQUE (broker_id, seq)
      );
      CREATE INDEX paper_orders_open ON paper_orders (broker_id, symbol, seq)
        WHERE status IN ('accepted','partially_filled');
      CREATE INDEX paper_orders_session_open ON paper_orders (broker_id, session_id, symbol, seq)
        WHERE status IN ('accepted','partially_filled');

      CREATE TABLE paper_fills (
        broker_id       TEXT NOT NULL,
        id              TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        account_id      TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy','sell')),
        qty             REAL NOT NULL,
        price           REAL NOT NULL,
        commission      REAL NOT NULL,
        at              TEXT NOT NULL,
        PRIMARY KEY (broker_id, id),
        FOREIGN KEY (broker_id, client_order_id) REFERENCES paper_orders (broker_id, client_order_id) ON DELETE CASCADE
      );
      CREATE INDEX paper_fills_account ON paper_fills (broker_id, account_id);
      CREATE INDEX paper_fills_session ON paper_fills (broker_id, session_id);

      -- The last bar the paper broker saw per market scope ('' = shared, else a session id) and symbol.
      CREATE TABLE paper_marks (
        broker_id       TEXT NOT NULL,
        scope           TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        bar_time        INTEGER NOT NULL,
        price           REAL NOT NULL,
        PRIMARY KEY (broker_id, scope, symbol)
      );
    `);
  },
};
