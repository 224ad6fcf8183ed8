import type { StoredOrder } from '../persistence/order-repository.js';
import { VENUE_OPEN } from './order-router.js';
import { message } from './runner-errors.js';
import type { RunnerContext } from './runner-context.js';
import type { SessionRunner } from './session-runner.js';

/**
 * A step on a live venue first asks the venue about the session's open and `unknown` orders (states and
 * fills), so the strategy sees its book as the venue has it. `unknown` orders are asked with backoff.
 * @internal
 */
export class VenuePoller {
  /** `unknown` orders: when to ask the venue next, and the wait after that (backoff). */
  readonly #unknownBackoff = new Map<string, { next: number; wait: number }>();

  constructor(private readonly c: RunnerContext) {}

  async poll(r: SessionRunner): Promise<void> {
    if (r.broker.simulated || r.broker.refreshOrders === undefined) return;
    const { o, router } = this.c;
    const open = o.orders.listBySession(r.id, { status: VENUE_OPEN });
    if (open.length === 0) return;
    const now = Date.now();
    const due: StoredOrder[] = [];
    for (const order of open) {
      if (order.status !== 'unknown') continue;
      const b = this.#unknownBackoff.get(order.clientOrderId) ?? { next: 0, wait: 200 };
      if (b.next > now) continue;
      this.#unknownBackoff.set(order.clientOrderId, { next: now + b.wait, wait: Math.min(b.wait * 2, 5000) });
      due.push(order);
    }
    try {
      const known = open.filter((x) => x.status !== 'unknown');
      if (known.length > 0) router.applyUpdates(r, await r.broker.refreshOrders(known));
      await router.resolveUnknown(r, due, o.unknownTimeoutMs);
      for (const x of due) if (o.orders.getByClientId(x.clientOrderId)?.status !== 'unknown') this.#unknownBackoff.delete(x.clientOrderId);
    } catch (err) {
      // Reads only: the step goes on with the book as recorded; the next step or reconciliation asks again.
      o.logger?.warn({ sessionId: r.id, brokerId: r.broker.id, err: message(err) }, 'venue order refresh failed');
    }
  }
}
