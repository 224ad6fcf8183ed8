import type { BrokerBarEvent, BrokerOrderAck, BrokerOrderUpdate, BrokerSubmitOptions } from '../brokers/broker.js';
import { ErrorCode, RiskLimitError, SessiondError, ValidationError } from '../domain/errors.js';
import type { Signal } from '../domain/market.js';
import type { Fill, Order, OrderStatus, Position } from '../domain/order.js';
import { applyFill, applyFills, markPosition } from '../domain/pnl.js';
import { checkOrderRisk } from '../domain/risk.js';
import { OPEN_ORDER_STATUSES, type OrderRepository, type StoredOrder } from '../persistence/order-repository.js';
import type { RunnerStateRepository } from '../persistence/runner-state-repository.js';
import type { SessionRunner } from './session-runner.js';

/** What the router reports for every order it records or places (metrics, benchmarks). */
export interface OrderEvent {
  sessionId: string;
  clientOrderId: string;
  status: OrderStatus;
  /** Placed orders: ms from the moment the step's last bar was due to the broker's acknowledgement. */
  latencyMs?: number | undefined;
}

export interface OrderRouterDeps {
  orders: OrderRepository;
  signals: Pick<RunnerStateRepository, 'addSignal'>;
  /** Keeps `sessions.positions` current (SessionStore.updatePositions). */
  updateSessionPositions(sessionId: string, positions: Record<string, unknown>, at: string): void;
  approvalTtlMs: number;
  now(): Date;
  onOrder?: ((event: OrderEvent) => void) | undefined;
}

const UNACKED_OR_OPEN = ['new', 'accepted', 'partially_filled', 'unknown'] as const satisfies readonly OrderStatus[];

/** Open at a live venue: what a step asks the venue about. */
export const VENUE_OPEN = ['accepted', 'partially_filled', 'unknown'] as const satisfies readonly OrderStatus[];

/** The reason an `unknown` order ends `rejected` with: the venue had no such order within the time allowed. */
export const NO_SUCH_ORDER = 'venue_no_such_order';

/** `INVALID_TRANSITION: order <id> is <status>; cannot <command>`. */
function orderTransitionError(clientOrderId: string, status: string, command: string): SessiondError {
  return new SessiondError(ErrorCode.INVALID_TRANSITION, `order ${clientOrderId} is ${status}; cannot ${command}`, { clientOrderId, status });
}

/** The client order id of a signal: deterministic, so a step run again never places a second order. */
export function clientOrderIdOf(sessionId: string, signalKey: string): string {
  return `${sessionId}:${signalKey}`;
}

/**
 * Turns a session's signals into orders, by execution mode, through its risk controls and broker, and keeps
 * its book (orders, fills, positions) in SQLite. Every method runs inside the session's lock.
 *
 * Crash safety: an order is written as `new` BEFORE it is submitted; a `new` order found later (a step run
 * again, a restore) is submitted again, which brokers take idempotently by clientOrderId. Fills are recorded
 * once by id and positions move only for a fill recorded the first time.
 * @internal
 */
export class OrderRouter {
  constructor(private readonly d: OrderRouterDeps) {}

  /**
   * What to do with one signal of a step, synchronously (the runner calls it for a whole batch inside one
   * transaction): records a refusal, a pending approval or a signal-only signal; for an order to send, writes
   * it as `new` and returns it. A signal decided before (the step ran again) returns its order only while
   * it is still unacknowledged (`new`).
   */
  decide(r: SessionRunner, signal: Signal): StoredOrder | undefined {
    const clientOrderId = clientOrderIdOf(r.id, signal.key);
    const existing = this.d.orders.getByClientId(clientOrderId);
    if (existing !== undefined) return existing.status === 'new' ? existing : undefined;
    const at = this.iso();
    const refused = this.refusal(r, signal);
    if (r.session.executionMode === 'signal-only') {
      this.d.signals.addSignal({
        sessionId: r.id,
        key: signal.key,
        symbol: signal.symbol,
        side: signal.side,
        qty: signal.qty,
        type: signal.type,
        limitPrice: signal.limitPrice,
        refPrice: r.record.lastPrices[signal.symbol],
        reason: signal.reason,
        risk: refused,
        barTime: r.record.lastBarTime,
        createdAt: at,
      });
      return undefined;
    }
    const order: StoredOrder = {
      clientOrderId,
      sessionId: r.id,
      brokerId: r.session.brokerId,
      accountId: r.session.accountId,
      symbol: signal.symbol,
      side: signal.side,
      qty: signal.qty,
      type: signal.type,
      status: 'new',
      filledQty: 0,
      createdAt: at,
      updatedAt: at,
    };
    if (signal.type === 'limit' && signal.limitPrice !== undefined) order.limitPrice = signal.limitPrice;
    if (refused !== undefined) {
      this.record({ ...order, status: 'rejected', reason: refused });
      return undefined;
    }
    if (r.session.executionMode === 'confirm') {
      const expiresAt = new Date(this.d.now().getTime() + this.d.approvalTtlMs).toISOString();
      this.record({ ...order, status: 'pending_approval', expiresAt });
      return undefined;
    }
    this.d.orders.save(order);
    return order;
  }

  /**
   * Why the session's controls refuse the signal (`RISK_LIMIT: ...`, or `VALIDATION_ERROR: ...` when it
   * names a symbol the session does not trade), or undefined when it passes.
   */
  refusal(r: SessionRunner, signal: Pick<Signal, 'symbol' | 'side' | 'qty' | 'type' | 'limitPrice'>, excludeOpen = 0): string | undefined {
    if (!r.session.symbols.includes(signal.symbol)) {
      return `VALIDATION_ERROR: symbol ${signal.symbol} is not traded by session ${r.id} (${r.session.symbols.join(', ')})`;
    }
    const price = signal.type === 'limit' ? signal.limitPrice : r.record.lastPrices[signal.symbol];
    if (price === undefined || !(price > 0)) return `VALIDATION_ERROR: no price for ${signal.symbol} yet`;
    const result = checkOrderRisk(
      { symbol: signal.symbol, side: signal.side, qty: signal.qty, price },
      r.session.riskControls,
      { positionQty: r.positionQty(signal.symbol), openOrders: this.d.orders.countOpen(r.id) - excludeOpen, dailyPnl: r.dailyPnl() },
    );
    return result.ok ? undefined : `RISK_LIMIT: ${result.reason}`;
  }

  /** Sends a `new` order (again: idempotent by clientOrderId) and records the broker's answer. */
  async submit(r: SessionRunner, order: StoredOrder, dueAt?: number, options?: BrokerSubmitOptions): Promise<StoredOrder> {
    const ack = await r.broker.submit({ ...order, refPrice: r.record.lastPrices[order.symbol] }, options);
    const updated = this.acknowledge(r, order, ack, dueAt);
    if (ack.duplicate && ack.order.filledQty > 0) await this.syncFills(r, order.clientOrderId);
    return this.d.orders.getByClientId(order.clientOrderId) ?? updated;
  }

  /**
   * Records the broker's answer to a submit (synchronous). When the broker already had the order with
   * fills (a resubmit after a crash), the caller follows up with `syncFills`.
   */
  acknowledge(r: SessionRunner, order: StoredOrder, ack: BrokerOrderAck, dueAt?: number): StoredOrder {
    const updated = this.merge(order, ack.order, ack.brokerOrderId);
    this.d.orders.save(updated);
    if (ack.fills !== undefined && ack.fills.length > 0) this.recordFills(r, ack.fills);
    this.d.onOrder?.({
      sessionId: r.id,
      clientOrderId: order.clientOrderId,
      status: updated.status,
      latencyMs: dueAt === undefined ? undefined : Date.now() - dueAt,
    });
    return updated;
  }

  /**
   * Records what the broker reported for a bar (fills, and orders that ended without one): orders, fills and
   * positions in one transaction.
   */
  applyExecutions(r: SessionRunner, executions: readonly BrokerBarEvent[]): void {
    if (executions.length === 0) return;
    const at = this.iso();
    let moved = false;
    const changed: StoredOrder[] = [];
    this.d.orders.transaction(() => {
      for (const { order, fill } of executions) {
        const stored = this.d.orders.getByClientId(order.clientOrderId);
        if (stored === undefined || stored.sessionId !== r.id) continue;
        if (fill !== undefined && this.addFill(r, fill)) moved = true;
        const merged = this.merge(stored, order, stored.brokerOrderId, at);
        this.d.orders.save(merged);
        if (merged.status !== stored.status || merged.filledQty !== stored.filledQty) changed.push(merged);
      }
      if (moved) this.d.orders.updatePositions(r.id, [...r.positions.values()], at);
    });
    // Fills move orders too (partially_filled, filled): reported once committed, like every other change.
    for (const o of changed) this.d.onOrder?.({ sessionId: r.id, clientOrderId: o.clientOrderId, status: o.status });
    // Equity is marked once per step at the closes (RunnerService), never here at a fill price.
    if (moved) this.publishPositions(r, at);
  }

  /** Cancels every open order of the session (pending approvals included); returns them as they end up. */
  async cancelOpen(r: SessionRunner, reason: string): Promise<StoredOrder[]> {
    const out: StoredOrder[] = [];
    for (const o of this.d.orders.listBySession(r.id, { status: OPEN_ORDER_STATUSES })) {
      if (o.status === 'pending_approval') {
        out.push(this.record({ ...o, status: 'cancelled', reason, updatedAt: this.iso() }));
        continue;
      }
      const atBroker = await r.broker.cancel(o.clientOrderId);
      if (atBroker === undefined) {
        // A `new` order that never reached the broker.
        out.push(this.record({ ...o, status: 'cancelled', reason, updatedAt: this.iso() }));
        continue;
      }
      if (atBroker.filledQty > o.filledQty) await this.syncFills(r, o.clientOrderId);
      const current = this.d.orders.getByClientId(o.clientOrderId) ?? o;
      const merged = this.merge(current, atBroker, current.brokerOrderId);
      if (merged.status === 'cancelled') merged.reason = reason;
      out.push(this.record(merged));
    }
    return out;
  }

  /**
   * Market orders that bring every open position of the session to flat (flattenOnStop). They bypass the
   * risk controls: an operator asked to get out. Ids are `${sessionId}:flatten:${symbol}`.
   */
  async flatten(r: SessionRunner): Promise<StoredOrder[]> {
    const placed: StoredOrder[] = [];
    for (const p of [...r.positions.values()]) {
      if (p.qty === 0) continue;
      const clientOrderId = clientOrderIdOf(r.id, `flatten:${p.symbol}`);
      const existing = this.d.orders.getByClientId(clientOrderId);
      if (existing !== undefined && existing.status !== 'new') continue;
      const at = this.iso();
      const order: StoredOrder = existing ?? {
        clientOrderId,
        sessionId: r.id,
        brokerId: r.session.brokerId,
        accountId: r.session.accountId,
        symbol: p.symbol,
        side: p.qty > 0 ? 'sell' : 'buy',
        qty: Math.abs(p.qty),
        type: 'market',
        status: 'new',
        filledQty: 0,
        createdAt: at,
        updatedAt: at,
      };
      this.d.orders.save(order);
      placed.push(await this.submit(r, order));
    }
    return placed;
  }

  /**
   * After a restart: submits unacknowledged (`new`) orders again, brings open ones up to date with the
   * broker (fills recorded by the broker but not by us), then rebuilds positions from the recorded fills.
   */
  async reconcile(r: SessionRunner): Promise<void> {
    for (const o of this.d.orders.listBySession(r.id, { status: UNACKED_OR_OPEN })) {
      if (o.status === 'new') {
        // A live venue may have it (sent before a crash, answer lost): it is looked up before any send.
        await this.submit(r, o, undefined, r.broker.simulated ? undefined : { maybePlaced: true });
        continue;
      }
      if (o.status === 'unknown') {
        await this.resolveUnknown(r, [o], Number.POSITIVE_INFINITY);
        continue;
      }
      const atBroker = await r.broker.getOrder(o.clientOrderId);
      if (atBroker === undefined) continue;
      if (atBroker.filledQty > o.filledQty) await this.syncFills(r, o.clientOrderId);
      if (atBroker.status !== o.status || atBroker.filledQty !== o.filledQty) {
        const current = this.d.orders.getByClientId(o.clientOrderId) ?? o;
        this.d.orders.save(this.merge(current, atBroker, current.brokerOrderId));
      }
    }
    this.rebuildPositions(r);
  }

  /** Positions from the recorded fills, marked at the last prices the session saw. */
  rebuildPositions(r: SessionRunner): void {
    const positions = applyFills(this.d.orders.listFills(r.id)).map((p) => {
      const last = r.record.lastPrices[p.symbol];
      return last !== undefined && last > 0 ? markPosition(p, last) : p;
    });
    r.setPositions(positions);
    const at = this.iso();
    // A restart rebuilds 10,000 sessions' positions: most are as written, and a read costs less than a write.
    if (!samePositions(this.d.orders.positions(r.id), positions)) this.d.orders.savePositions(r.id, positions, at);
    this.publishPositions(r, at);
  }

  /**
   * Confirm mode: sends a `pending_approval` order after checking the risk controls again (exposure may have
   * changed since the signal). Approving an order already approved returns it as it is.
   * @throws VALIDATION_ERROR unknown order; INVALID_TRANSITION not pending (expired, rejected, ...);
   * RISK_LIMIT refused now (the order is recorded as rejected).
   */
  async approve(r: SessionRunner, clientOrderId: string): Promise<StoredOrder> {
    const order = this.ownOrder(r.id, clientOrderId);
    if (order.status !== 'pending_approval') {
      if (order.status !== 'rejected' && order.status !== 'expired' && order.status !== 'cancelled' && this.wasPending(clientOrderId)) return order;
      throw orderTransitionError(clientOrderId, order.status, 'approve-order');
    }
    if (order.expiresAt !== undefined && Date.parse(order.expiresAt) <= this.d.now().getTime()) {
      this.d.orders.expirePendingApprovals(this.d.now());
      throw orderTransitionError(clientOrderId, 'expired', 'approve-order');
    }
    const refused = this.refusal(r, order, 1);
    if (refused !== undefined) {
      this.record({ ...order, status: 'rejected', reason: refused, updatedAt: this.iso() });
      throw new RiskLimitError(refused.replace(/^RISK_LIMIT: /, ''), { clientOrderId });
    }
    const sent: StoredOrder = { ...order, status: 'new', updatedAt: this.iso() };
    delete sent.expiresAt;
    this.d.orders.save(sent);
    return this.submit(r, sent);
  }

  /** Confirm mode: records the operator's refusal. Rejecting an order already rejected by an operator returns it. */
  reject(sessionId: string, clientOrderId: string, reason?: string): StoredOrder {
    const order = this.ownOrder(sessionId, clientOrderId);
    const text = `rejected by operator${reason ? `: ${reason}` : ''}`;
    if (order.status === 'rejected' && order.reason?.startsWith('rejected by operator')) return order;
    if (order.status !== 'pending_approval') throw orderTransitionError(clientOrderId, order.status, 'reject-order');
    return this.record({ ...order, status: 'rejected', reason: text, updatedAt: this.iso() });
  }

  ownOrder(sessionId: string, clientOrderId: string): StoredOrder {
    const order = this.d.orders.getByClientId(clientOrderId);
    if (order === undefined || order.sessionId !== sessionId) {
      throw new ValidationError(`order ${clientOrderId} of session ${sessionId} does not exist`);
    }
    return order;
  }

  /** Fills of one order the broker has and the book may not: recorded once, positions moved for new ones. */
  async syncFills(r: SessionRunner, clientOrderId: string): Promise<void> {
    this.recordFills(r, await r.broker.listFills({ clientOrderId }));
  }

  /** Records fills once by id (venue trade ids); positions move only for the new ones. */
  recordFills(r: SessionRunner, fills: readonly Fill[]): void {
    const at = this.iso();
    let moved = false;
    this.d.orders.transaction(() => {
      for (const f of fills) if (this.addFill(r, f)) moved = true;
      if (moved) this.d.orders.updatePositions(r.id, [...r.positions.values()], at);
    });
    // Equity is marked once per step at the closes (RunnerService), never here at a fill price.
    if (moved) this.publishPositions(r, at);
  }

  /**
   * A live venue's answer about orders (refreshOrders): each order takes the venue's state and its fills are
   * recorded once. An order the book had given up on (`rejected` as no such order) that shows up after all is
   * adopted with the venue's state, never placed again.
   */
  applyUpdates(r: SessionRunner, updates: readonly BrokerOrderUpdate[]): void {
    if (updates.length === 0) return;
    const at = this.iso();
    this.d.orders.transaction(() => {
      for (const u of updates) {
        const stored = this.d.orders.getByClientId(u.order.clientOrderId);
        if (stored === undefined || stored.sessionId !== r.id) continue;
        this.recordFills(r, u.fills);
        const merged = this.merge(stored, u.order, u.brokerOrderId ?? stored.brokerOrderId, at);
        if (stored.status === 'unknown' || stored.reason?.startsWith(NO_SUCH_ORDER)) merged.reason = `adopted from the venue (was ${stored.status}${stored.reason ? `: ${stored.reason}` : ''})`;
        if (merged.status !== stored.status || merged.filledQty !== stored.filledQty || merged.brokerOrderId !== stored.brokerOrderId) this.record(merged);
      }
    });
  }

  /**
   * `unknown` orders: asks the venue by client order id. Found: the venue's state (and fills). Not found and
   * older than `timeoutMs`: `rejected` with reason `venue_no_such_order: ...`. Otherwise left `unknown`.
   */
  async resolveUnknown(r: SessionRunner, orders: readonly StoredOrder[], timeoutMs: number): Promise<void> {
    if (orders.length === 0 || r.broker.refreshOrders === undefined) return;
    const updates = await r.broker.refreshOrders(orders);
    this.applyUpdates(r, updates);
    const found = new Set(updates.map((u) => u.order.clientOrderId));
    const now = this.d.now().getTime();
    for (const o of orders) {
      if (found.has(o.clientOrderId) || o.status !== 'unknown') continue;
      const age = now - Date.parse(o.createdAt);
      if (age <= timeoutMs) continue;
      this.record({ ...o, status: 'rejected', reason: `${NO_SUCH_ORDER}: the venue has no order ${o.clientOrderId} ${Math.round(age)} ms after the submit (${o.reason ?? 'outcome unknown'})`, updatedAt: this.iso() });
    }
  }

  /**
   * Keeps `sessions.positions` current; only writes when it differs from `r.session.positions` (the write
   * moves the session's updatedAt). Called with the session a lifecycle command just committed, it also
   * repairs a commit that wrote an older copy of the positions.
   */
  publishPositions(r: SessionRunner, at: string): void {
    const json = r.openPositionsJson();
    if (JSON.stringify(json) === JSON.stringify(r.session.positions)) return;
    this.d.updateSessionPositions(r.id, json, at);
    r.session = { ...r.session, positions: json, updatedAt: at };
  }

  private addFill(r: SessionRunner, fill: Fill): boolean {
    if (!this.d.orders.addFill(fill)) return false;
    r.positions.set(fill.symbol, applyFill(r.positions.get(fill.symbol), fill));
    return true;
  }

  private wasPending(clientOrderId: string): boolean {
    return this.d.orders.history(clientOrderId).some((h) => h.status === 'pending_approval');
  }

  private merge(stored: StoredOrder, atBroker: Order, brokerOrderId: string | undefined, at = this.iso()): StoredOrder {
    const o: StoredOrder = { ...stored, status: atBroker.status, filledQty: atBroker.filledQty, updatedAt: at };
    if (atBroker.avgFillPrice !== undefined) o.avgFillPrice = atBroker.avgFillPrice;
    if (atBroker.reason !== undefined) o.reason = atBroker.reason;
    if (brokerOrderId !== undefined && brokerOrderId !== '') o.brokerOrderId = brokerOrderId;
    return o;
  }

  private record(order: StoredOrder): StoredOrder {
    this.d.orders.save(order);
    this.d.onOrder?.({ sessionId: order.sessionId, clientOrderId: order.clientOrderId, status: order.status });
    return order;
  }

  private iso(): string {
    return this.d.now().toISOString();
  }
}

/** Same symbols with the same quantities, prices and PnL (what savePositions would leave unchanged). */
function samePositions(stored: readonly Position[], next: readonly Position[]): boolean {
  if (stored.length !== next.length) return false;
  const bySymbol = new Map(stored.map((p) => [p.symbol, p]));
  return next.every((p) => {
    const q = bySymbol.get(p.symbol);
    return q !== undefined && q.qty === p.qty && q.avgPrice === p.avgPrice && q.realizedPnl === p.realizedPnl && q.unrealizedPnl === p.unrealizedPnl && q.lastPrice === p.lastPrice;
  });
}
