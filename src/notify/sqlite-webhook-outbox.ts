import type { Db } from '../persistence/database.js';
import type { OutboxRow, OutboxStore } from './webhook-notifier.js';

interface Row {
  id: number;
  alert_id: string;
  event: string;
  body: string;
  attempts: number;
  next_at: number;
}

/** The webhook outbox in SQLite (table webhook_outbox, migration 010). */
export class SqliteWebhookOutbox implements OutboxStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      add: db.prepare(`INSERT INTO webhook_outbox (webhook, alert_id, event, body, attempts, next_at, created_at)
        VALUES (@webhook, @alertId, @event, @body, @attempts, @nextAt, @createdAt)`),
      attempted: db.prepare('UPDATE webhook_outbox SET attempts = @attempts, next_at = @nextAt, last_error = @error WHERE id = @id'),
      remove: db.prepare('DELETE FROM webhook_outbox WHERE id = ?'),
      pending: db.prepare('SELECT id, alert_id, event, body, attempts, next_at FROM webhook_outbox WHERE webhook = ? ORDER BY id'),
    };
  }

  add(webhook: string, row: Omit<OutboxRow, 'id'>): number {
    const r = this.stmts.add.run({ webhook, alertId: row.alertId, event: row.event, body: row.body, attempts: row.attempts, nextAt: row.nextAt, createdAt: new Date().toISOString() });
    return Number(r.lastInsertRowid);
  }

  attempted(id: number, attempts: number, nextAt: number, error: string): void {
    this.stmts.attempted.run({ id, attempts, nextAt, error: error.slice(0, 500) });
  }

  remove(id: number): void {
    this.stmts.remove.run(id);
  }

  pending(webhook: string): OutboxRow[] {
    return (this.stmts.pending.all(webhook) as Row[]).map((r) => ({ id: r.id, alertId: r.alert_id, event: r.event, body: r.body, attempts: r.attempts, nextAt: r.next_at }));
  }
}
