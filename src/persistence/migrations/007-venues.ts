import type { Migration } from './types.js';

/**
 * Live venues:
 * - `orders.status` also takes `unknown` (a submit whose outcome was not seen) and `external` (found at the
 *   venue with this daemon's client-id prefix, never recorded here). SQLite cannot alter a CHECK, so its
 *   stored definition is widened in place (whatever columns other migrations added stay as they are).
 * - `venue_orders`: the id each order carries at its venue (Binance allows 36 characters, Alpaca 48) beside
 *   the internal one, and the venue's own order id.
 * - `venue_fill_cursors`: per broker, account and symbol, the newest venue trade already recorded.
 * - `venue_feed_cursors`: per session and symbol, the open time of the last closed bar a venue feed stepped.
 */
export const migration007: Migration = {
  version: 7,
  name: 'venue order ids, unknown and external order statuses, venue cursors',
  up(db) {
    const row = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'orders'").get() as { sql: string } | undefined;
    if (row === undefined) throw new Error('migration 007: table orders does not exist');
    const widened = row.sql.replace(/'expired'\s*\)/, "'expired','unknown','external')");
    if (widened === row.sql) throw new Error('migration 007: cannot find the status CHECK of table orders');
    // The documented procedure for loosening a CHECK in place (sqlite.org/lang_altertable.html, "other kinds
    // of table schema changes"): rewrite the stored definition and bump schema_version. A rebuild would have to
    // DROP the table, and with foreign keys on that cascades to every fill and status change.
    const version = db.pragma('schema_version', { simple: true }) as number;
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    try {
      db.prepare("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'orders'").run(widened);
      db.pragma(`schema_version = ${version + 1}`);
    } finally {
      db.pragma('writable_schema = OFF');
      db.unsafeMode(false);
    }
    db.exec(`
      CREATE TABLE venue_orders (
        client_order_id       TEXT PRIMARY KEY,       -- the internal id (orders.client_order_id)
        broker_id             TEXT NOT NULL,
        venue_client_order_id TEXT NOT NULL,          -- what the venue knows it by (newClientOrderId, client_order_id)
        venue_order_id        TEXT,                   -- the venue's own id, once it answered
        session_id            TEXT NOT NULL,
        symbol                TEXT NOT NULL,
        created_at            TEXT NOT NULL,
        UNIQUE (broker_id, venue_client_order_id)
      );
      CREATE INDEX venue_orders_session ON venue_orders (session_id);

      CREATE TABLE venue_fill_cursors (
        broker_id   TEXT NOT NULL,
        account_id  TEXT NOT NULL,
        symbol      TEXT NOT NULL,
        last_trade  TEXT NOT NULL,                    -- the venue's trade id (or time) of the newest fill recorded
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (broker_id, account_id, symbol)
      );

      CREATE TABLE venue_feed_cursors (
        session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        symbol        TEXT NOT NULL,
        timeframe     TEXT NOT NULL,
        last_bar_time INTEGER NOT NULL,               -- epoch ms open time of the last closed bar stepped
        PRIMARY KEY (session_id, symbol, timeframe)
      );
    `);
  },
};
