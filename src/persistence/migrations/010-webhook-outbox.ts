import type { Migration } from './types.js';

/**
 * Webhook alerts not yet delivered, one row per alert and webhook, so a restart retries them (with backoff)
 * instead of losing them. A row leaves when its webhook answers 2xx or its attempts run out. The webhook is
 * named by a hash of its URL (a URL may carry a token); its secret is never stored (read from the config).
 */
export const migration010: Migration = {
  version: 10,
  name: 'webhook outbox',
  up(db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS webhook_outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook     TEXT NOT NULL,          -- sha256(url), hex, first 32 characters
        alert_id    TEXT NOT NULL,
        event       TEXT NOT NULL,
        body        TEXT NOT NULL,          -- the exact JSON POSTed (and signed)
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL,       -- epoch ms of the next attempt
        last_error  TEXT,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS webhook_outbox_by_webhook ON webhook_outbox (webhook, id);
    `);
  },
};
