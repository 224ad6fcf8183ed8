import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommandOutcome } from '../commands/command-consumer.js';
import { ORDER_STATUSES } from '../domain/order.js';

/** What the strategy pool reports at scrape time. */
export interface PoolStats {
  /** Busy time / capacity, 0..1. */
  utilization: number;
  threads: number;
  queueSize: number;
}

export interface SessionCountRow {
  status: string;
  kind: string;
  n: number;
}

export interface QueueDepth {
  waiting: number;
  active: number;
  delayed: number;
}

/** Orders, fills and money of every session, read from SQLite at scrape time. */
export interface BookStats {
  ordersByStatus: { status: string; n: number }[];
  /** Fills ever recorded. */
  fills: number;
  /** Sums over every session with a runner state. */
  equity: number;
  realizedPnl: number;
  unrealizedPnl: number;
  /** Per session, at most `maxSessionLabels` of them (running and paused first, then the most recently updated). */
  sessions: { sessionId: string; equity: number; pnl: number }[];
}

/** Read at scrape time; set once the daemon exists (metrics are created before it so hooks can count from the start). */
export interface MetricsSources {
  sessionCounts?: () => SessionCountRow[];
  queueDepth?: () => Promise<QueueDepth>;
  book?: () => BookStats;
}

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop lag). @defaultValue true */
  processMetrics?: boolean;
}

export const DEFAULT_METRICS_OPTIONS: Required<MetricsOptions> = { processMetrics: true };

const STATUSES = ['created', 'running', 'paused', 'stopped'] as const;
const KINDS = ['paper', 'live'] as const;

/**
 * sessiond's Prometheus metrics, in a registry of its own. Counters are fed by daemon hooks
 * (`commandOutcome`, `sqliteWrite`, `transition`) and by the runner (`runnerStep`, `runnerFailure`);
 * gauges for sessions, queue and pool are read at scrape time, so they are never stale.
 *
 * @example
 * const metrics = new Metrics();
 * const daemon = await startDaemon(config, logger, { trading: createTradingWiring, onOutcome: (o) => metrics.commandOutcome(o) });
 * metrics.setSources({ sessionCounts: () => countSessions(daemon.db), queueDepth: () => daemon.consumer.depth() });
 * const text = await metrics.render();
 */
export class Metrics {
  readonly registry = new Registry();
  private sources: MetricsSources = {};
  private poolStats: (() => PoolStats) | undefined;

  private readonly commands: Counter<'command' | 'outcome' | 'code'>;
  private readonly commandSeconds: Histogram<'command'>;
  private readonly transitions: Counter<'from' | 'to' | 'event'>;
  private readonly runnerSteps: Counter;
  private readonly reconcileMismatches: Counter<'broker'>;
  private readonly runnerFailures: Counter<'kind'>;
  private readonly sqliteWriteSeconds: Histogram;
  private readonly barToOrderSeconds: Histogram;
  private readonly queueJobs: Counter<'result'>;
  private readonly orderUpdates: Counter<'status'>;
  private readonly webhookDeliveries: Counter<'result'>;
  private lastBook: BookStats | undefined;

  constructor(options: MetricsOptions = {}) {
    const o = { ...DEFAULT_METRICS_OPTIONS, ...options };
    const registers = [this.registry];
    if (o.processMetrics) {
      collectDefaultMetrics({ register: this.registry, prefix: 'sessiond_' });
      // prom-client exports these three totals as gauges named `*_total`, which the exposition format reserves for
      // counters (promtool check metrics flags them). The same numbers stay available, by type, in the
      // `sessiond_nodejs_active_{handles,requests,resources}` gauges.
      for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
        this.registry.removeSingleMetric(`sessiond_nodejs_${name}`);
      }
    }

    const self = this;
    new Gauge({
      name: 'sessiond_sessions',
      help: 'Sessions by status and kind (from SQLite, at scrape time)',
      labelNames: ['status', 'kind'] as const,
      registers,
      collect() {
        const rows = self.sources.sessionCounts?.() ?? [];
        // Every combination is exported, zeros included, so a status that empties shows 0 rather than vanishing.
        for (const status of STATUSES) for (const kind of KINDS) this.set({ status, kind }, 0);
        for (const r of rows) this.set({ status: r.status, kind: r.kind }, r.n);
      },
    });
    new Gauge({
      name: 'sessiond_queue_jobs',
      help: 'Jobs in the command queue by state (waiting, active, delayed)',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        if (!self.sources.queueDepth) return;
        try {
          const d = await withTimeout(self.sources.queueDepth(), 500);
          this.set({ state: 'waiting' }, d.waiting);
          this.set({ state: 'active' }, d.active);
          this.set({ state: 'delayed' }, d.delayed);
        } catch {
          // Redis down: no value rather than a stale one (readyz says why).
          this.reset();
        }
      },
    });
    this.commands = new Counter({
      name: 'sessiond_commands_total',
      help: 'Commands processed, by command name, outcome (ok|error) and error code ("" when ok)',
      labelNames: ['command', 'outcome', 'code'] as const,
      registers,
    });
    this.commandSeconds = new Histogram({
      name: 'sessiond_command_duration_seconds',
      help: 'Time from taking a command off the queue to its reply',
      labelNames: ['command'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.transitions = new Counter({
      name: 'sessiond_transitions_total',
      help: 'Committed session state transitions',
      labelNames: ['from', 'to', 'event'] as const,
      registers,
    });
    this.barToOrderSeconds = new Histogram({
      name: 'sessiond_bar_to_order_seconds',
      help: "From the close of the bar an order was decided on to the broker's acknowledgement",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.runnerSteps = new Counter({ name: 'sessiond_runner_steps_total', help: 'Runner steps evaluated (all sessions)', registers });
    this.reconcileMismatches = new Counter({
      name: 'sessiond_reconcile_mismatches_total',
      help: 'Positions still differing from the venue after reconciliation (each pauses the sessions holding the symbol)',
      labelNames: ['broker'],
      registers,
    });
    this.runnerFailures = new Counter({
      name: 'sessiond_runner_failures_total',
      help: 'Runner failures by kind (threw, exited, timeout, broker, gave_up, ...)',
      labelNames: ['kind'] as const,
      registers,
    });
    new Gauge({
      name: 'sessiond_pool_utilization_ratio',
      help: 'Strategy worker pool utilization, 0..1',
      registers,
      collect() {
        const s = self.readPool();
        if (s) this.set(s.utilization);
      },
    });
    new Gauge({
      name: 'sessiond_pool_threads',
      help: 'Live strategy worker threads',
      registers,
      collect() {
        const s = self.readPool();
        if (s) this.set(s.threads);
      },
    });
    new Gauge({
      name: 'sessiond_pool_queue_size',
      help: 'Strategy steps waiting for a worker thread',
      registers,
      collect() {
        const s = self.readPool();
        if (s) this.set(s.queueSize);
      },
    });
    this.sqliteWriteSeconds = new Histogram({
      name: 'sessiond_sqlite_write_duration_seconds',
      help: 'Write-ahead SQLite transaction time (session row + snapshot + history + command record)',
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
      registers,
    });
    this.queueJobs = new Counter({
      name: 'sessiond_queue_jobs_processed_total',
      help: 'Jobs the daemon took off the command queue, by result (completed: returned a value; failed: rejected with a code)',
      labelNames: ['result'] as const,
      registers,
    });
    this.orderUpdates = new Counter({
      name: 'sessiond_order_updates_total',
      help: 'Order status changes seen by the runners, by the new status',
      labelNames: ['status'] as const,
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'sessiond_webhook_deliveries_total',
      help: 'Webhook POSTs by result: delivered, retried (an attempt failed and will be retried), failed (given up)',
      labelNames: ['result'] as const,
      registers,
    });
    // Book metrics: one SQLite read per scrape, shared by the gauges below (each one's collect() asks).
    let bookReadAt = -Infinity;
    const book = (): BookStats | undefined => {
      if (performance.now() - bookReadAt < 250) return self.lastBook;
      bookReadAt = performance.now();
      try {
        return (self.lastBook = self.sources.book?.());
      } catch {
        return (self.lastBook = undefined);
      }
    };
    new Gauge({
      name: 'sessiond_orders',
      help: 'Orders of every session by status (from SQLite, at scrape time)',
      labelNames: ['status'] as const,
      registers,
      collect() {
        const b = book();
        this.reset();
        for (const st of ORDER_STATUSES) this.set({ status: st }, 0);
        for (const r of b?.ordersByStatus ?? []) this.set({ status: r.status }, r.n);
      },
    });
    let fillsSeen = 0;
    new Counter({
      name: 'sessiond_fills_total',
      help: 'Fills recorded, all sessions (from SQLite, at scrape time)',
      registers,
      collect() {
        const n = book()?.fills ?? 0;
        if (n > fillsSeen) {
          this.inc(n - fillsSeen);
          fillsSeen = n;
        }
      },
    });
    new Gauge({
      name: 'sessiond_equity',
      help: 'Equity summed over every session that traded (initial equity + realized + unrealized PnL)',
      registers,
      collect() {
        const b = book();
        if (b) this.set(b.equity);
      },
    });
    new Gauge({
      name: 'sessiond_pnl',
      help: 'PnL summed over every session, realized and unrealized',
      labelNames: ['kind'] as const,
      registers,
      collect() {
        const b = book();
        if (!b) return;
        this.set({ kind: 'realized' }, b.realizedPnl);
        this.set({ kind: 'unrealized' }, b.unrealizedPnl);
      },
    });
    new Gauge({
      name: 'sessiond_session_equity',
      help: 'Equity per session, for at most metrics.maxSessionLabels sessions (running and paused first)',
      labelNames: ['session'] as const,
      registers,
      collect() {
        this.reset();
        for (const s of book()?.sessions ?? []) this.set({ session: s.sessionId }, s.equity);
      },
    });
    new Gauge({
      name: 'sessiond_session_pnl',
      help: 'Realized + unrealized PnL per session, for at most metrics.maxSessionLabels sessions',
      labelNames: ['session'] as const,
      registers,
      collect() {
        this.reset();
        for (const s of book()?.sessions ?? []) this.set({ session: s.sessionId }, s.pnl);
      },
    });
  }

  /** An order changed status (runner hook). */
  orderUpdate(e: { status: string }): void {
    this.orderUpdates.inc({ status: e.status });
  }

  /** A webhook POST was delivered, will be retried, or was given up. */
  webhookDelivery(result: 'delivered' | 'retried' | 'failed'): void {
    this.webhookDeliveries.inc({ result });
  }

  /** Where scrape-time gauges read from. */
  setSources(sources: MetricsSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** The runner's pool, read at scrape time. */
  setPoolStatsSource(fn: () => PoolStats): void {
    this.poolStats = fn;
  }

  /** A command finished (daemon hook `onOutcome`). */
  commandOutcome(o: CommandOutcome): void {
    this.commands.inc({ command: o.name, outcome: o.outcome, code: o.code ?? '' });
    this.commandSeconds.observe({ command: o.name }, o.ms / 1000);
    this.queueJobs.inc({ result: o.outcome === 'ok' ? 'completed' : 'failed' });
  }

  /** A write-ahead transaction took `ms` (daemon hook `onWrite`). */
  sqliteWrite(ms: number): void {
    this.sqliteWriteSeconds.observe(ms / 1000);
  }

  /** A transition was committed (daemon hook `onTransition`). */
  transition(t: { from: string | null; to: string; event: string }): void {
    this.transitions.inc({ from: t.from ?? '', to: t.to, event: t.event });
  }

  /**
   * A runner step was evaluated. The session id is accepted for the caller's convenience but not used
   * as a label: one series per session would grow without bound.
   */
  /** A placed order's bar-to-acknowledgement latency. */
  barToOrder(ms: number): void {
    this.barToOrderSeconds.observe(ms / 1000);
  }

  reconcileMismatch(brokerId: string): void {
    this.reconcileMismatches.inc({ broker: brokerId });
  }

  runnerStep(_sessionId?: string): void {
    this.runnerSteps.inc();
  }

  runnerFailure(kind: string): void {
    this.runnerFailures.inc({ kind });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  private readPool(): PoolStats | undefined {
    try {
      return this.poolStats?.();
    } catch {
      return undefined;
    }
  }
}

/** Session counts by status and kind: one indexed GROUP BY, cheap enough for every scrape. */
export function sessionCountsFrom(db: { prepare(sql: string): { all(): unknown[] } }): () => SessionCountRow[] {
  const stmt = db.prepare('SELECT status, kind, COUNT(*) AS n FROM sessions GROUP BY status, kind');
  return () => stmt.all() as SessionCountRow[];
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Orders by status, fills and money from SQLite for the book metrics. A handful of aggregate queries per
 * scrape; per-session series only for `maxSessionLabels` sessions, so the label set stays bounded.
 */
export function bookStatsFrom(db: { prepare(sql: string): { all(...params: unknown[]): unknown[]; get(...params: unknown[]): unknown } }, maxSessionLabels: number): () => BookStats {
  const orders = db.prepare('SELECT status, COUNT(*) AS n FROM orders GROUP BY status');
  const fills = db.prepare('SELECT COUNT(*) AS n FROM fills');
  const pnl = db.prepare('SELECT COALESCE(SUM(realized_pnl), 0) AS realized, COALESCE(SUM(unrealized_pnl), 0) AS unrealized FROM positions');
  const initial = db.prepare('SELECT COALESCE(SUM(initial_equity), 0) AS initial FROM runner_state');
  const top = db.prepare(
    `SELECT s.id AS sessionId, r.initial_equity AS initial,
            COALESCE((SELECT SUM(p.realized_pnl + p.unrealized_pnl) FROM positions p WHERE p.session_id = s.id), 0) AS pnl
       FROM sessions s JOIN runner_state r ON r.session_id = s.id
      ORDER BY CASE WHEN s.status IN ('running', 'paused') THEN 0 ELSE 1 END, s.updated_at DESC
      LIMIT ?`,
  );
  return () => {
    const p = pnl.get() as { realized: number; unrealized: number };
    const i = initial.get() as { initial: number };
    const sessions = maxSessionLabels > 0 ? (top.all(maxSessionLabels) as { sessionId: string; initial: number; pnl: number }[]) : [];
    return {
      ordersByStatus: orders.all() as { status: string; n: number }[],
      fills: (fills.get() as { n: number }).n,
      equity: i.initial + p.realized + p.unrealized,
      realizedPnl: p.realized,
      unrealizedPnl: p.unrealized,
      sessions: sessions.map((s) => ({ sessionId: s.sessionId, equity: s.initial + s.pnl, pnl: s.pnl })),
    };
  };
}
