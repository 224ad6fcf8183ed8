import type { Migration } from './types.js';

/**
 * An order's status history moves into its row (`orders.status_history`, a JSON array of
 * `{status, reason, at}`, oldest first), out of `order_status_history`. A status change was three statements
 * and two row changes (read the old status, upsert the order, insert a history row and its index entry); it is
 * now one upsert that appends to the array only when the status changed: one row change per status change.
 * Existing history is copied in order (by the old table's id), then the table is dropped.
 */
export const migration013: Migration = {
  version: 13,
  name: 'order status history in the order row',
  up(db) {
    db.exec(`
      ALTER TABLE orders ADD COLUMN status_history TEXT NOT NULL DEFAULT '[]';
      UPDATE orders SET status_history = COALESCE((
        SELECT json_group_array(json_object('status', h.status, 'reason', h.reason, 'at', h.at) ORDER BY h.id)
        FROM order_status_history h WHERE h.client_order_id = orders.client_order_id
      ), '[]');
      DROP TABLE order_status_history;
    `);
  },
};
