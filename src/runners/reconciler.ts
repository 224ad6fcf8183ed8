import type { Broker } from '../brokers/broker.js';
import type { OrderRepository, StoredOrder } from '../persistence/order-repository.js';
import { sessionTag } from '../brokers/venue/client-order-id.js';
import { NO_SUCH_ORDER, VENUE_OPEN, type OrderRouter } from './order-router.js';
import type { SessionRunner } from './session-runner.js';

export interface ReconcileHost {
  pauseSession(id: string, reason: string, ctx?: { source?: string }): Promise<unknown>;
}

export interface ReconcilerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ReconcilerDeps {
  router: OrderRouter;
  orders: OrderRepository;
  /** How long an `unknown` order may stay unfound at the venue before it is `rejected`. */
  unknownTimeoutMs: number;
  now(): Date;
  logger?: ReconcilerLogger | undefined;
  onMismatch?: ((brokerId: string, symbol: string) => void) | undefined;
  onExternal?: ((brokerId: string, order: StoredOrder) => void) | undefined;
}

/** One pass's findings, for logs, tests and the benchmark. */
export interface ReconcileReport {
  brokers: number;
  sessions: number;
  unreachable: string[];
  mismatches: { sessionId: string; symbol: string; local: number; venue: number }[];
  external: string[];
  ms: number;
}

/** Same position up to the venue's rounding of amounts. */
function same(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-8 * Math.max(1, Math.abs(a), Math.abs(b));
}

/**
 * Brings the book of live sessions to the venue's truth: open, `new` and `unknown` orders resolved by
 * client order id, fills made while the daemon was down recorded (once, by venue trade id), orders with this
 * daemon's prefix that SQLite never had recorded as `external`, then positions compared. A difference that
 * remains pauses the sessions holding the symbol with `reconcile_mismatch: <symbol> local <x> venue <y>`; a
 * venue that cannot be reached pauses its sessions with `venue_unreachable`. Nothing is overwritten.
 *
 * Brokers are reconciled in parallel (one slow venue does not hold the others); the sessions of one broker
 * one after the other (its rate limits). Each session's lock is held while its book is touched.
 */
export class Reconciler {
  constructor(private readonly d: ReconcilerDeps) {}

  async run(runners: readonly SessionRunner[], host: ReconcileHost | undefined): Promise<ReconcileReport> {
    const t0 = performance.now();
    const byBroker = new Map<Broker, SessionRunner[]>();
    for (const r of runners) {
      if (r.broker.simulated || r.session.kind !== 'live') continue;
      const list = byBroker.get(r.broker) ?? [];
      list.push(r);
      byBroker.set(r.broker, list);
    }
    const report: ReconcileReport = { brokers: byBroker.size, sessions: 0, unreachable: [], mismatches: [], external: [], ms: 0 };
    const pauses: { id: string; reason: string }[] = [];
    await Promise.all(
      [...byBroker].map(async ([broker, list]) => {
        report.sessions += list.length;
        try {
          await broker.connect?.();
          await this.reconcileBroker(broker, list, report, pauses);
        } catch (err) {
          this.d.logger?.warn({ brokerId: broker.id, err: message(err), sessions: list.length }, 'venue unreachable: pausing its sessions');
          report.unreachable.push(broker.id);
          for (const r of list) pauses.push({ id: r.id, reason: 'venue_unreachable' });
        }
      }),
    );
    for (const p of pauses) {
      // A session already paused stays paused (INVALID_TRANSITION is expected then).
      await host?.pauseSession(p.id, p.reason, { source: 'reconcile' }).catch(() => undefined);
    }
    report.ms = performance.now() - t0;
    return report;
  }

  private async reconcileBroker(broker: Broker, runners: SessionRunner[], report: ReconcileReport, pauses: { id: string; reason: string }[]): Promise<void> {
    const symbols = [...new Set(runners.flatMap((r) => r.session.symbols))];
    // The venue's open orders, one list per symbol: an order open there as recorded here needs no lookup
    // of its own (1,000 open orders are a few requests, not 2,000, under the venue's rate limits).
    const venueOpen = broker.openOrders !== undefined ? await broker.openOrders(symbols) : undefined;
    const unchanged = new Set<string>();
    for (const o of venueOpen ?? []) {
      if (o.clientOrderId === undefined) continue;
      const stored = this.d.orders.getByClientId(o.clientOrderId);
      if (stored !== undefined && stored.status === o.status && same(stored.filledQty, o.filledQty)) unchanged.add(o.clientOrderId);
    }
    // 1. Every order we know of that may still move: new (resubmitted only after a lookup), unknown, open.
    for (const r of runners) await r.lock(() => this.reconcileOrders(r, unchanged));
    // 2. Open orders at the venue with our prefix: adopted when SQLite gave up on them, `external` when it never had them.
    if (venueOpen !== undefined) {
      const byTag = new Map(runners.map((r) => [sessionTag(r.id), r]));
      for (const o of venueOpen) {
        if (o.clientOrderId !== undefined) {
          const stored = this.d.orders.getByClientId(o.clientOrderId);
          const r = runners.find((x) => x.id === stored?.sessionId);
          if (stored !== undefined && r !== undefined && !VENUE_OPEN.includes(stored.status as (typeof VENUE_OPEN)[number])) {
            await r.lock(async () => this.d.router.applyUpdates(r, (await broker.refreshOrders?.([stored])) ?? []));
          }
          continue;
        }
        const r = byTag.get(o.sessionTag);
        const id = `external:${o.venueClientOrderId}`;
        if (this.d.orders.getByClientId(id) !== undefined) continue;
        report.external.push(o.venueClientOrderId);
        if (r === undefined) {
          this.d.logger?.warn({ brokerId: broker.id, venueClientOrderId: o.venueClientOrderId, symbol: o.symbol }, 'order with this daemon\'s prefix at the venue belongs to no live session here');
          continue;
        }
        const at = this.d.now().toISOString();
        const ext: StoredOrder = {
          clientOrderId: id, sessionId: r.id, brokerId: broker.id, accountId: r.session.accountId, symbol: o.symbol, side: o.side, qty: o.qty, type: o.type,
          status: 'external', filledQty: o.filledQty, brokerOrderId: o.brokerOrderId, reason: `found open at the venue (${o.status}) as ${o.venueClientOrderId}; not placed by this database`,
          createdAt: at, updatedAt: at,
        };
        if (o.limitPrice !== undefined) ext.limitPrice = o.limitPrice;
        this.d.orders.save(ext);
        this.d.onExternal?.(broker.id, ext);
        this.d.logger?.warn({ brokerId: broker.id, sessionId: r.id, venueClientOrderId: o.venueClientOrderId, symbol: o.symbol }, 'external order recorded');
      }
    }
    // 3. Positions: the sum over this broker's live sessions per symbol against the venue's, asked twice
    //    (a fill between the order pass and the position read is not a mismatch).
    if (broker.venuePositions === undefined) return;
    let diffs = await this.diffs(broker, runners, symbols);
    if (diffs.length > 0) {
      for (const r of runners) await r.lock(() => this.reconcileOrders(r));
      diffs = await this.diffs(broker, runners, symbols);
    }
    for (const d of diffs) {
      this.d.onMismatch?.(broker.id, d.symbol);
      for (const r of runners) {
        if (!r.session.symbols.includes(d.symbol)) continue;
        const reason = `reconcile_mismatch: ${d.symbol} local ${fmt(d.local)} venue ${fmt(d.venue)}`;
        report.mismatches.push({ sessionId: r.id, symbol: d.symbol, local: d.local, venue: d.venue });
        this.d.logger?.warn({ brokerId: broker.id, sessionId: r.id, symbol: d.symbol, local: d.local, venue: d.venue }, 'position differs from the venue: pausing the session');
        pauses.push({ id: r.id, reason });
      }
    }
  }

  private async diffs(broker: Broker, runners: SessionRunner[], symbols: string[]): Promise<{ symbol: string; local: number; venue: number }[]> {
    const venue = await broker.venuePositions!(symbols);
    const out: { symbol: string; local: number; venue: number }[] = [];
    for (const s of symbols) {
      const local = runners.reduce((sum, r) => sum + r.positionQty(s), 0);
      const v = venue.get(s) ?? 0;
      if (!same(local, v)) out.push({ symbol: s, local, venue: v });
    }
    return out;
  }

  /** Inside the session's lock: new, unknown and open orders brought to the venue's state. */
  private async reconcileOrders(r: SessionRunner, unchanged: ReadonlySet<string> = new Set()): Promise<void> {
    const router = this.d.router;
    const all = this.d.orders.listBySession(r.id, { status: ['new', 'accepted', 'partially_filled', 'unknown', 'rejected'] });
    const since = this.d.now().getTime() - 24 * 3_600_000;
    for (const o of all) {
      if (o.status === 'new') await router.submit(r, o, undefined, { maybePlaced: true });
    }
    const ask = all.filter((o) => o.status !== 'new' && (o.status !== 'rejected' || (o.reason?.startsWith(NO_SUCH_ORDER) === true && Date.parse(o.updatedAt) > since)));
    const unknown = ask.filter((o) => o.status === 'unknown');
    const rest = ask.filter((o) => o.status !== 'unknown' && !unchanged.has(o.clientOrderId));
    if (rest.length > 0 && r.broker.refreshOrders !== undefined) router.applyUpdates(r, await r.broker.refreshOrders(rest));
    await router.resolveUnknown(r, unknown, this.d.unknownTimeoutMs);
  }
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(12)));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
