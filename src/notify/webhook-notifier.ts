import { createHmac, randomUUID } from 'node:crypto';
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

/** One webhook's outbox: alerts are sent one at a time, in order, each retried with backoff. */
class Outbox {
  private readonly pending: { body: string; attempt: number }[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  closed = false;

  constructor(
    readonly target: WebhookTarget,
    private readonly o: Required<Omit<WebhookNotifierOptions, 'webhooks' | 'onDelivery' | 'logger'>> & Pick<WebhookNotifierOptions, 'onDelivery' | 'logger'>,
  ) {}

  push(body: string): void {
    if (this.pending.length >= this.o.maxPending) {
      this.pending.shift();
      this.o.onDelivery?.('failed', this.target.url);
    }
    this.pending.push({ body, attempt: 0 });
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves when everything queued is delivered or given up (closing: waits no longer than `ms`). */
  async flush(ms: number): Promise<void> {
    if (!this.running) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
  }

  /** Stops retrying: a retry wait ends now and nothing else is attempted after the current POST. */
  stop(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const item = this.pending[0]!;
      item.attempt++;
      const error = await this.post(item.body);
      if (error === undefined) {
        this.pending.shift();
        this.o.onDelivery?.('delivered', this.target.url);
        continue;
      }
      if (item.attempt >= this.o.maxAttempts || this.closed || error.final) {
        this.pending.shift();
        this.o.onDelivery?.('failed', this.target.url);
        this.o.logger?.warn({ webhook: redact(this.target.url), attempts: item.attempt, err: error.message }, 'webhook delivery failed; alert dropped');
        continue;
      }
      this.o.onDelivery?.('retried', this.target.url);
      const wait = this.o.backoffMs * 2 ** (item.attempt - 1) * (1 + Math.random() * 0.2);
      await new Promise<void>((r) => {
        this.wake = r;
        this.timer = setTimeout(r, wait);
        this.timer.unref();
      });
      this.wake = undefined;
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
 * that raises an alert goes on at once; delivery failures are counted through `onDelivery`.
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
    for (const b of targets) b.push(body);
    return payload;
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
