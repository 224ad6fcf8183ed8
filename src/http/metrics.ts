import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommandOutcome } from '../commands/command-consumer.js';

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

/** Read at scrape time; set once the daemon exists (metrics are created before it so hooks can count from the start). */
export interface MetricsSources {
  sessionCounts?: () => SessionCountRow[];
  queueDepth?: () => Promise<QueueDepth>;
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
  private readonly runnerFailures: Counter<'kind'>;
  private readonly sqliteWriteSeconds: Histogram;
  private readonly barToOrderSeconds: Histogram;

  constructor(options: MetricsOptions = {}) {
    const o = { ...DEFAULT_METRICS_OPTIONS, ...options };
    const registers = [this.registry];
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'sessiond_' });

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
