import { InvalidTransitionError, SessionNotFoundError, type SessiondError } from '../domain/errors.js';
import type { StoredOrder } from '../persistence/order-repository.js';
import { message } from './runner-errors.js';
import type { RunnerContext } from './runner-context.js';

/**
 * Orders of execution mode `confirm`: an operator approves (the risk controls are checked again) or rejects
 * a `pending_approval` order; one that waits longer than approvalTtlMs expires. Expiry is a sweep, not a
 * timer per order: one UPDATE over a partial index finds them all.
 * @internal
 */
export class Approvals {
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly c: RunnerContext,
    private readonly holdStorage: (sessionId: string | undefined, err: unknown) => boolean,
  ) {
    const sweepMs = Math.min(1000, Math.max(20, Math.floor(c.o.approvalTtlMs / 4)));
    this.#timer = setInterval(() => this.expire(), sweepMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /**
   * Sends a `pending_approval` order of a running session after checking its risk controls again.
   * @throws SESSION_NOT_FOUND; INVALID_TRANSITION (session not running, order not pending); VALIDATION_ERROR
   * (unknown order); RISK_LIMIT (refused now: the order is recorded as rejected).
   */
  async approve(sessionId: string, clientOrderId: string): Promise<StoredOrder> {
    const r = this.c.runners.get(sessionId);
    const notRunning = (): SessiondError => {
      const stored = this.c.o.sessions.get(sessionId);
      if (stored === undefined) return new SessionNotFoundError(sessionId);
      return new InvalidTransitionError(sessionId, stored.session.status, 'approve-order');
    };
    if (r === undefined || r.status !== 'running') throw notRunning();
    return r.lock(() => {
      if (r.status !== 'running') throw notRunning();
      return this.c.router.approve(r, clientOrderId);
    });
  }

  /** Records an operator's refusal of a `pending_approval` order. @throws SESSION_NOT_FOUND; INVALID_TRANSITION; VALIDATION_ERROR */
  async reject(sessionId: string, clientOrderId: string, reason?: string): Promise<StoredOrder> {
    if (this.c.o.sessions.get(sessionId) === undefined) throw new SessionNotFoundError(sessionId);
    const r = this.c.runners.get(sessionId);
    if (r === undefined) return this.c.router.reject(sessionId, clientOrderId, reason);
    return r.lock(() => this.c.router.reject(sessionId, clientOrderId, reason));
  }

  private expire(): void {
    const { o } = this.c;
    try {
      for (const x of o.orders.expirePendingApprovals(o.now())) {
        o.onOrder?.({ sessionId: x.sessionId, clientOrderId: x.clientOrderId, status: x.status });
      }
    } catch (err) {
      if (!this.holdStorage(undefined, err)) o.logger?.error({ err: message(err) }, 'expiring approvals failed');
    }
  }
}
