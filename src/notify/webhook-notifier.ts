import { createHash, createHmac, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { NotifyEventType, NotifyPayload } from './events.js';

export interface WebhookTarget {
  url: string;
  /** Absent: every event. */
  events?: readonly NotifyEventType[] | undefined;
  /** HMAC-SHA256 key: the POST carries `X-Sessiond-Signature: sha256=<hex of HMAC(body)>`. */
  secret?: string | undefined;
}

export interface WebhookNotifierOptions {
  webhooks: readonly WebhookTarget[];
  /** Per attempt. @defaultValue 5000 */
  timeoutMs?: number;
  /** Attempts per alert, the first included. @defaultValue 5 */
  maxAttempts?: number;
  /** Wait before the first retry; doubles each time (with up to 20% jitter). @defaultValue 1000 */
  backoffMs?: number;
  /** Alerts waiting per webhook at most; beyond it the oldest is dropped (counted as failed). @defaultValue 1000 */
  maxPending?: number;
  /** Counts deliveries (metrics). */
  onDelivery?: ((result: 'delivered' | 'retried' | 'failed', target: string) => void) | undefined;
  logger?: { warn(obj: object, msg: string): void } | undefined;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
}

export const DEFAULT_WEBHOOK_NOTIFIER_OPTIONS = { timeoutMs: 5000, maxAttempts: 5, backoffMs: 1000, maxPending: 1000 } as const;

export const SIGNATURE_HEADER = 'x-sessiond-signature';

/** The signature header's value for a body: `sha256=<hex>`. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Only the origin and path of a URL for logs: a token in its query string stays out. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'invalid-url';
  }
}

/** A persisted delivery: one alert for one webhook. */
export interface OutboxRow {
  id: number;
  alertId: string;
  event: string;
  /** The exact JSON body POSTed (and signed). */
  body: string;
  /** Attempts made so far. */
  attempts: number;
  /** Epoch ms before which it is not attempted again (the backoff, kept across a restart). */
  nextAt: number;
}

/** Where undelivered alerts wait (SQLite: src/notify/sqlite-webhook-outbox.ts), per webhook key. */
export interface OutboxStore {
  add(webhook: string, row: Omit<OutboxRow, 'id'>): number;
  attempted(id: number, attempts: number, nextAt: number, error: string): void;
  remove(id: number): void;
  /** Oldest first. */
  pending(webhook: string): OutboxRow[];
}

/** The key a webhook's deliveries are stored under: a hash of its URL (a URL may carry a token). */
export function webhookKey(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 32);
}

interface Item {
  body: string;
  alertId: string;
  event: string;
  attempt: number;
  nextAt: number;
  /** Set once the item is in the store. */
  rowId?: number | undefined;
}

type OutboxOptions = Required<Omit<WebhookNotifierOptions, 'webhooks' | 'onDelivery' | 'logger'>> & Pick<WebhookNotifierOptions, 'onDelivery' | 'logger'>;

/** One webhook's outbox: alerts are sent one at a time, in order, each retried with backoff. */
class Outbox {
  private pending: Item[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private store: OutboxStore | undefined;
  readonly key: string;
  closed = false;

  constructor(
    readonly target: WebhookTarget,
    private readonly o: OutboxOptions,
  ) {
    this.key = webhookKey(target.url);
  }

  push(body: string, alertId: string, event: string): void {
    if (this.pending.length >= this.o.maxPending) {
      const dropped = this.pending.shift()!;
      this.forget(dropped);
      this.o.onDelivery?.('failed', this.target.url);
    }
    const item: Item = { body, alertId, event, attempt: 0, nextAt: Date.now() };
    this.persist(item);
    this.pending.push(item);
    this.kick();
  }

  /**
   * From now on every alert is stored before it is sent, and removed once delivered or given up. What the
   * store already holds for this webhook (left by an earlier run) goes first, at its stored backoff.
   */
  attach(store: OutboxStore): void {
    this.store = store;
    let stored: Item[] = [];
    try {
      stored = store.pending(this.key).map((r) => ({ body: r.body, alertId: r.alertId, event: r.event, attempt: r.attempts, nextAt: r.nextAt, rowId: r.id }));
    } catch (err) {
      this.storeFailed(err);
    }
    for (const item of this.pending) this.persist(item);
    // Items in flight stay first; an item being posted is at index 0 and must remain there.
    this.pending = this.running && this.pending.length > 0 ? [this.pending[0]!, ...stored, ...this.pending.slice(1)] : [...stored, ...this.pending];
    this.kick();
  }

  /** Resolves when everything queued is delivered or given up (closing: waits no longer than `ms`). */
  async flush(ms: number): Promise<void> {
    if (!this.running) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
  }

  /**
   * Stops retrying: a retry wait ends now and nothing else is attempted after the current POST. Stored
   * alerts stay stored for the next start; alerts only in memory are given up.
   */
  stop(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  private kick(): void {
    if (this.pending.length > 0) this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  private persist(item: Item): void {
    if (this.store === undefined || item.rowId !== undefined) return;
    try {
      item.rowId = this.store.add(this.key, { alertId: item.alertId, event: item.event, body: item.body, attempts: item.attempt, nextAt: item.nextAt });
    } catch (err) {
      this.storeFailed(err);
    }
  }

  private forget(item: Item): void {
    if (this.store === undefined || item.rowId === undefined) return;
    try {
      this.store.remove(item.rowId);
    } catch (err) {
      this.storeFailed(err);
    }
  }

  /** The store cannot write (a full disk): alerts carry on in memory; they are lost only if the daemon stops. */
  private storeFailed(err: unknown): void {
    this.o.logger?.warn({ webhook: redact(this.target.url), err: (err as Error).message }, 'webhook outbox not stored; kept in memory');
  }

  private async sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.closed) return;
    await new Promise<void>((r) => {
      this.wake = r;
      this.timer = setTimeout(r, ms);
      this.timer.unref();
    });
    this.wake = undefined;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const item = this.pending[0]!;
      await this.sleep(item.nextAt - Date.now());
      if (this.closed && item.rowId !== undefined) return; // stored: the next start sends it
      item.attempt++;
      const error = await this.post(item.body);
      if (error === undefined) {
        this.pending.shift();
        this.forget(item);
        this.o.onDelivery?.('delivered', this.target.url);
        continue;
      }
      if (item.attempt >= this.o.maxAttempts || error.final || (this.closed && item.rowId === undefined)) {
        this.pending.shift();
        this.forget(item);
        this.o.onDelivery?.('failed', this.target.url);
        this.o.logger?.warn({ webhook: redact(this.target.url), attempts: item.attempt, err: error.message }, 'webhook delivery failed; alert dropped');
        continue;
      }
      this.o.onDelivery?.('retried', this.target.url);
      item.nextAt = Date.now() + this.o.backoffMs * 2 ** (item.attempt - 1) * (1 + Math.random() * 0.2);
      if (this.store !== undefined && item.rowId !== undefined) {
        try {
          this.store.attempted(item.rowId, item.attempt, Math.round(item.nextAt), error.message);
        } catch (err) {
          this.storeFailed(err);
        }
      }
    }
  }

  private async post(body: string): Promise<{ message: string; final: boolean } | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'sessiond-webhook' };
    if (this.target.secret) headers[SIGNATURE_HEADER] = signBody(this.target.secret, body);
    try {
      const res = await this.o.fetch(this.target.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.o.timeoutMs), redirect: 'error' });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return undefined;
      // A 4xx other than 408/429 will not get better by retrying (bad URL, auth): give up at once.
      const final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      return { message: `HTTP ${res.status}`, final };
    } catch (err) {
      return { message: (err as Error).message, final: false };
    }
  }
}

/**
 * Sends alerts to the configured webhooks: a JSON POST per event, each webhook with its own outbox (in order,
 * retried with doubling backoff). `notify()` never blocks and never throws: a command or a strategy step
 * that raises an alert goes on at once; delivery failures are counted through `onDelivery`. With an outbox
 * store attached (`attachOutbox`), each alert is written to it first (one small SQLite insert) and a
 * restart retries what was not delivered, at the backoff it had reached.
 *
 * @example
 * const notifier = new WebhookNotifier({ webhooks: [{ url: 'https://hooks.slack.com/services/...', events: ['risk_breach'] }] });
 * notifier.notify('risk_breach', { sessionId: 'demo', text: 'demo paused: daily loss', data: { reason } });
 */
export class WebhookNotifier {
  private readonly outboxes: Outbox[];
  private readonly source = { service: 'sessiond' as const, host: hostname(), pid: process.pid };
  private closing: Promise<void> | undefined;

  constructor(options: WebhookNotifierOptions) {
    const o = { ...DEFAULT_WEBHOOK_NOTIFIER_OPTIONS, fetch: globalThis.fetch, ...options };
    for (const key of ['timeoutMs', 'maxAttempts', 'backoffMs', 'maxPending'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new TypeError(`options.${key} must be a positive integer`);
    }
    this.outboxes = o.webhooks.map((w) => new Outbox(w, o));
  }

  get enabled(): boolean {
    return this.outboxes.length > 0;
  }

  /** Queues the alert for every webhook that wants this event; returns the payload (undefined when none does). */
  notify(event: NotifyEventType, alert: { sessionId?: string | undefined; text: string; data?: Record<string, unknown> }): NotifyPayload | undefined {
    const targets = this.outboxes.filter((b) => !b.closed && (b.target.events === undefined || b.target.events.includes(event)));
    if (targets.length === 0) return undefined;
    const payload: NotifyPayload = {
      id: randomUUID(),
      event,
      at: new Date().toISOString(),
      ...(alert.sessionId !== undefined ? { sessionId: alert.sessionId } : {}),
      text: `[sessiond] ${alert.text}`,
      data: alert.data ?? {},
      source: this.source,
    };
    const body = JSON.stringify(payload);
    for (const b of targets) b.push(body, payload.id, event);
    return payload;
  }

  /**
   * Alerts are stored before they are sent (webhook outbox), so a restart retries what was not delivered.
   * Also loads what an earlier run left undelivered; call it once the database is open.
   */
  attachOutbox(store: OutboxStore): void {
    for (const b of this.outboxes) b.attach(store);
  }

  /** Gives pending alerts up to `graceMs` to go out (the daemon_stopping alert), then stops retrying. Idempotent. */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.outboxes.map((b) => b.flush(graceMs)));
      for (const b of this.outboxes) b.stop();
      await Promise.all(this.outboxes.map((b) => b.flush(graceMs)));
    })();
    return this.closing;
  }
}
