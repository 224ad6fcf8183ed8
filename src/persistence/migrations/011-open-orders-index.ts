import type { Migration } from './types.js';

/**
 * Every session's open orders in one read (SqliteOrderRepository loads them at its first read: a restart
 * asks 10,000 sessions in a row): a partial index on the open statuses, so that read does not scan every
 * order ever placed. The statuses are OPEN_ORDER_STATUSES as of this migration, written out (a shipped
 * migration never changes).
 */
export const migration011: Migration = {
  version: 11,
  name: 'open orders index',
  up(db) {
    db.exec(`CREATE INDEX IF NOT EXISTS orders_open ON orders (created_at) WHERE status IN ('new','accepted','partially_filled','pending_approval','unknown')`);
  },
};
