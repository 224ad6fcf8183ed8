import type { Broker, BrokerBarEvent, BrokerOrderAck } from '../brokers/broker.js';
import {
  ErrorCode,
  InvalidTransitionError,
  isStorageFault,
  SessionNotFoundError,
  SessiondError,
  ValidationError,
} from '../domain/errors.js';
import { tradeCounts } from '../domain/pnl.js';
import { isDailyLossBreached } from '../domain/risk.js';
import type { Bar } from '../domain/market.js';
import type { FeedConfig, Session } from '../domain/session.js';
import { BarFiles } from '../market-data/bar-files.js';
import { loadFeed, type Feed } from '../market-data/feed.js';
import { fnv1a } from '../market-data/synthetic-feed.js';
import type { OrderRepository, StoredOrder } from '../persistence/order-repository.js';
import type { StoredSession } from '../persistence/ports.js';
import type { EquityPoint, RunnerStateRecord, RunnerStateRepository, SignalRecord } from '../persistence/runner-state-repository.js';
import type { PerformanceSource, SessionPerformance, SessionRunnerPort } from '../sessions/ports.js';
import type { AnyStrategyDefinition, JsonValue, StrategyParams } from '../strategies/strategy-api.js';
import { OrderRouter, VENUE_OPEN, type OrderEvent } from './order-router.js';
import { Reconciler, type ReconcileReport } from './reconciler.js';
import { sessionBook } from './session-book.js';
import { SessionRunner } from './session-runner.js';
import { StepScheduler } from './step-scheduler.js';
import type { BatchStepOutcome, EvaluateRequest } from './strategy-pool.js';

/** What the runners report back to: the SessionManager fits. */
export interface RunnerHost {
  handleRunnerFailure(id: string, error: string): Promise<unknown>;
  handleRiskBreach(id: string, reason: string): Promise<unknown>;
  stopSession(id: string, reason?: string, ctx?: { source?: string }): Promise<unknown>;
  /** Reconciliation pauses live sessions (venue_unreachable, reconcile_mismatch: ...). */
  pauseSession?(id: string, reason?: string, ctx?: { source?: string }): Promise<unknown>;
}

/** The part of StrategyPool the runners use. */
export interface StepPool {
  readonly size: number;
  evaluateBatch(requests: readonly EvaluateRequest[]): Promise<BatchStepOutcome[]>;
}

/** The part of StrategyCatalog the runners use. */
export interface StrategySource {
  get(id: string): AnyStrategyDefinition;
  resolve(id: string, params?: Record<string, unknown>): { id: string; name: string; params: StrategyParams };
}

/** Where the runners report a storage fault, and learn that SQLite writes again (StorageGuard fits). */
export interface StorageFaultSink {
  report(err: unknown): boolean;
  whenWritable(fn: () => void): void;
}

export interface RunnerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** One committed (or failed) step, for metrics and benchmarks. */
export interface StepEvent {
  sessionId: string;
  ok: boolean;
  /** A failed step: the StrategyStepError kind (threw, exited, timeout) or the error code. */
  failure?: string | undefined;
  signals: number;
  /** Pool round trip of the batch the step was in. */
  poolMs: number;
  batchSize: number;
}

export interface RunnerServiceOptions {
  sessions: { get(id: string): StoredSession | undefined; updatePositions(id: string, positions: Record<string, unknown>, at: string): void };
  pool: StepPool;
  strategies: StrategySource;
  brokers: { get(id: string): Broker };
  orders: OrderRepository;
  runnerStates: RunnerStateRepository;
  /** Failed steps in a row before the session is stopped with `runner_failed`. @defaultValue 3 */
  maxRestarts?: number;
  /** Wait before the first restart; doubles with each failure in a row. @defaultValue 500 */
  restartBackoffMs?: number;
  /** How long a `confirm` order waits for approve-order before it expires. @defaultValue 300000 */
  approvalTtlMs?: number;
  /** Most sessions' steps in one pool task. @defaultValue 64 */
  maxBatchSize?: number;
  /**
   * Steps due within this window of the first are run together: bigger batches and fewer SQLite
   * transactions for at most this much bar-to-order latency. @defaultValue 2
   */
  batchWindowMs?: number;
  /** A session's notional starting equity (equity = this + its PnL). @defaultValue 100000 */
  initialEquity?: number;
  /** Synthetic feeds: steps a late runner runs back to back before it skips to the current bar. @defaultValue 3 */
  maxCatchUpSteps?: number;
  /** Bar interval of a synthetic feed that names none (and of sessions without a feed). @defaultValue 1000 */
  defaultBarIntervalMs?: number;
  /** Bar time between two persisted equity points of a session. @defaultValue 60000 */
  equitySampleMs?: number;
  /** Least wall time between two saves of a session's marked positions (fills save at once). @defaultValue 1000 */
  markPersistMs?: number;
  /**
   * Least wall time between two writes of a session's strategy state and cursor while it runs. 0 writes
   * every step: a crash then re-runs at most the step in flight. Above 0, a crash re-runs (replay feeds)
   * or skips (synthetic feeds, past maxCatchUpSteps) up to this much of steps; orders are never placed
   * twice either way (deterministic strategies, keyed orders), and pause, stop and shutdown always write.
   * Writing 10,000 sessions' states every second is most of what the main thread does at that scale.
   * @defaultValue 0
   */
  stateCommitMs?: number;
  /** Where replay feeds' files are read from (data directories, size limit). @defaultValue new BarFiles() */
  barFiles?: BarFiles;
  /**
   * Told about storage faults; calls back once SQLite writes again (StorageGuard fits).
   * @defaultValue none: a held runner retries every second
   */
  storage?: StorageFaultSink | undefined;
  /** Clock of order timestamps and approval expiry. @defaultValue () => new Date() */
  now?: () => Date;
  logger?: RunnerLogger | undefined;
  onOrder?: ((event: OrderEvent) => void) | undefined;
  onStep?: ((event: StepEvent) => void) | undefined;
  /** Live venues: time between two reconciliation passes (0: only at start). @defaultValue 30000 */
  reconcileIntervalMs?: number;
  /** Live venues: how long an `unknown` order may stay unfound at the venue before it is `rejected`. @defaultValue 60000 */
  unknownTimeoutMs?: number;
  onReconcileMismatch?: ((brokerId: string, symbol: string) => void) | undefined;
  onExternalOrder?: ((brokerId: string, order: StoredOrder) => void) | undefined;
}

export const DEFAULT_RUNNER_SERVICE_OPTIONS = Object.freeze({
  maxRestarts: 3,
  restartBackoffMs: 500,
  approvalTtlMs: 300_000,
  maxBatchSize: 64,
  batchWindowMs: 2,
  initialEquity: 100_000,
  maxCatchUpSteps: 3,
  defaultBarIntervalMs: 1000,
  equitySampleMs: 60_000,
  markPersistMs: 1000,
  stateCommitMs: 0,
  reconcileIntervalMs: 30_000,
  unknownTimeoutMs: 60_000,
});

export interface RunnerServiceStats {
  running: number;
  paused: number;
  /** Sessions whose runner holds until SQLite writes again (a storage fault). */
  held: number;
  steps: number;
  failedSteps: number;
  batches: number;
  ordersPlaced: number;
}

interface Prepared {
  runner: SessionRunner;
  epoch: number;
  request: EvaluateRequest;
  dueAt: number;
  /** Of the pool task the step went in. */
  poolMs: number;
  batchSize: number;
}

/**
 * The runners of every session of the daemon, over one shared StrategyPool.
 *
 * Scheduling: one timer (a min-heap of due times) for all sessions. A synthetic feed's step is due when its
 * last bar has closed (`startTime + (cursor + barsPerStep) * intervalMs`); a replay feed's every
 * `intervalMs`. Every session due at the same moment goes to the pool in batches (up to `maxBatchSize`
 * sessions per task, spread over the pool's threads). A session has at most one step in flight.
 *
 * A step: read the bars -> broker.onBar for each (fills of earlier orders, marks) -> pool step -> signals
 * through the risk controls and the execution mode -> orders -> commit (strategy state + cursor). The
 * commits of a batch are written in one SQLite transaction, after the batch's orders.
 *
 * Crash safety: orders are written (`new`) before they are sent and keyed by `${sessionId}:${signal.key}`;
 * the strategy state and cursor are committed only after the step's orders, so a step caught by a crash
 * runs again after the restart with the same input, finds its orders and places none twice.
 *
 * @example
 * const runners = new RunnerService({ sessions: store, pool, strategies: catalog, brokers, orders, runnerStates });
 * const manager = new SessionManager({ ..., runner: runners, performance: runners });
 * runners.attach(manager);
 */
export class RunnerService implements SessionRunnerPort, PerformanceSource {
  private readonly o: Readonly<Required<Omit<RunnerServiceOptions, 'logger' | 'onOrder' | 'onStep' | 'storage' | 'onReconcileMismatch' | 'onExternalOrder'>>> &
    Pick<RunnerServiceOptions, 'logger' | 'onOrder' | 'onStep' | 'storage' | 'onReconcileMismatch' | 'onExternalOrder'>;
  /** Sessions whose runner is held because SQLite could not write; rebuilt from SQLite once it can. */
  private readonly held = new Set<string>();
  private releaseScheduled = false;
  private readonly runners = new Map<string, SessionRunner>();
  private readonly scheduler: StepScheduler<SessionRunner>;
  private readonly router: OrderRouter;
  private readonly dirty = new Set<SessionRunner>();
  private readonly equityPoints: { sessionId: string; point: EquityPoint }[] = [];
  private readonly active = new Set<Promise<void>>();
  private readonly applyQueue: { prepared: Prepared[]; outcomes: BatchStepOutcome[]; resolve: () => void }[] = [];
  private applyScheduled = false;
  private readonly expiryTimer: NodeJS.Timeout;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly reconciler: Reconciler;
  /** `unknown` orders: when to ask the venue next, and the wait after that (backoff). */
  private readonly unknownBackoff = new Map<string, { next: number; wait: number }>();
  private host: RunnerHost | undefined;
  private closing: Promise<void> | undefined;
  private counters = { steps: 0, failedSteps: 0, batches: 0, ordersPlaced: 0 };

  constructor(options: RunnerServiceOptions) {
    const o = { ...DEFAULT_RUNNER_SERVICE_OPTIONS, now: () => new Date(), barFiles: new BarFiles(), ...stripUndefined(options) } as Required<RunnerServiceOptions>;
    for (const key of ['maxRestarts', 'restartBackoffMs', 'maxCatchUpSteps', 'batchWindowMs', 'stateCommitMs'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 0) throw new ValidationError(`options.${key} must be a non-negative integer`);
    }
    for (const key of ['approvalTtlMs', 'maxBatchSize', 'defaultBarIntervalMs', 'equitySampleMs', 'markPersistMs'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new ValidationError(`options.${key} must be a positive integer`);
    }
    if (!(Number.isFinite(o.initialEquity) && o.initialEquity > 0)) throw new ValidationError('options.initialEquity must be a positive number');
    this.o = Object.freeze(o);
    this.scheduler = new StepScheduler((due) => this.dispatch(due), o.batchWindowMs);
    this.router = new OrderRouter({
      orders: o.orders,
      signals: o.runnerStates,
      updateSessionPositions: (id, positions, at) => o.sessions.updatePositions(id, positions, at),
      approvalTtlMs: o.approvalTtlMs,
      now: o.now,
      onOrder: (e) => {
        if (e.latencyMs !== undefined) this.counters.ordersPlaced++;
        o.onOrder?.(e);
      },
    });
    // Expiry is a sweep, not a timer per order: one UPDATE over a partial index finds them all.
    const sweepMs = Math.min(1000, Math.max(20, Math.floor(o.approvalTtlMs / 4)));
    this.expiryTimer = setInterval(() => this.expireApprovals(), sweepMs);
    this.expiryTimer.unref();
    this.reconciler = new Reconciler({
      router: this.router,
      orders: o.orders,
      unknownTimeoutMs: o.unknownTimeoutMs,
      now: o.now,
      logger: o.logger,
      onMismatch: o.onReconcileMismatch,
      onExternal: o.onExternalOrder,
    });
  }

  /** Where failures and risk breaches go (the SessionManager); also finishes stops a crash interrupted. */
  attach(host: RunnerHost): void {
    this.host = host;
    void this.finishInterruptedStops().catch((err: unknown) => this.o.logger?.error({ err: message(err) }, 'finishing interrupted stops failed'));
  }

  // ---- SessionRunnerPort ----

  /** A runner for the session, continuing from its persisted state when it has one. */
  private async register(session: Session): Promise<{ r: SessionRunner; resumed: boolean }> {
    const existing = this.o.runnerStates.get(session.id);
    const r = await this.build(session, existing);
    if (existing === undefined) this.o.runnerStates.save(r.record);
    else r.feed.seek(existing.cursor);
    this.runners.set(session.id, r);
    return { r, resumed: existing !== undefined };
  }

  /**
   * Checks a start's market data before the session is created: a replay file the rules refuse (outside the
   * data directories, not a regular file, too large) or a backtest would refuse (a bad row, a duplicate or
   * out-of-order bar, no bars, a missing symbol) rejects the `start` with VALIDATION_ERROR (file and line).
   */
  async checkStart(config: Pick<Session, 'id' | 'feed' | 'symbols'> & { brokerId?: string }): Promise<void> {
    // A live venue's session trades only the venue's markets (VALIDATION_ERROR naming the symbol).
    if (config.brokerId !== undefined) await this.o.brokers.get(config.brokerId).validateSymbols?.(config.symbols);
    await loadFeed(feedConfigOf(config, this.o.defaultBarIntervalMs), config.symbols, { files: this.o.barFiles, startTime: 0 });
  }

  async start(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    const { r } = await this.register(session);
    await r.lock(() => {
      r.status = 'running';
      r.lastDueAt = Date.now() - r.feed.intervalMs;
      this.schedule(r);
    });
  }

  async pause(session: Session): Promise<void> {
    const r = this.runners.get(session.id);
    if (r === undefined) return;
    await r.lock(() => {
      this.adopt(r, session);
      if (r.status !== 'running' && r.status !== 'paused') return;
      this.halt(r, 'paused');
      this.flush();
    });
  }

  async resume(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    let r = this.runners.get(session.id);
    if (r === undefined || r.status === 'failed' || r.status === 'stopped') {
      r = await this.build(session, this.o.runnerStates.get(session.id));
      r.feed.seek(r.record.cursor);
      this.runners.set(session.id, r);
    }
    const runner = r;
    await runner.lock(() => {
      this.adopt(runner, session);
      runner.status = 'running';
      runner.epoch++;
      runner.inFlight = false;
      runner.failureStreak = 0;
      runner.retryAt = 0;
      runner.lastDueAt = Date.now() - runner.feed.intervalMs;
      // "Continues from the current bar": a synthetic market moved on while paused.
      this.skipAhead(runner, true);
      this.schedule(runner);
    });
  }

  async stop(session: Session): Promise<void> {
    let r = this.runners.get(session.id);
    if (r === undefined) {
      const record = this.o.runnerStates.get(session.id);
      // Never ran here (e.g. started while runners were disabled): only its book, if any, needs settling.
      if (record === undefined && this.o.orders.countOpen(session.id) === 0) return;
      r = await this.build(session, record, { lenient: true });
      r.feed.seek(r.record.cursor);
      await r.lock(() => this.router.reconcile(r!));
    }
    const runner = r;
    await runner.lock(async () => {
      this.adopt(runner, session);
      this.halt(runner, 'stopped');
      await this.router.cancelOpen(runner, `session stopped (${session.stopReason ?? 'stop'})`);
      if (session.flattenOnStop) {
        const placed = await this.router.flatten(runner);
        if (placed.length > 0) await this.fillAfterStop(runner);
      }
      runner.updateEquity();
      const at = this.o.now().toISOString();
      if (runner.record.lastBarTime !== undefined) this.equityPoints.push({ sessionId: runner.id, point: { at: runner.record.lastBarTime, equity: runner.record.equity } });
      runner.record.finalizedAt = at;
      this.dirty.add(runner);
      this.flush();
    });
    if (this.runners.get(session.id) === runner) this.runners.delete(session.id);
  }

  async restore(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    const { r, resumed } = await this.register(session);
    await r.lock(async () => {
      if (r.broker.simulated) await this.router.reconcile(r);
      else {
        // A live venue is asked by reconcileVenues (before READY), which may find it unreachable: here only
        // the local book is rebuilt, and the runner waits for that pass before it steps.
        this.router.rebuildPositions(r);
        r.venueHold = true;
      }
      if (session.status === 'running') {
        r.status = 'running';
        // The step at the persisted cursor may have been in flight at the crash: run it before skipping ahead.
        r.replayFirst = resumed;
        r.lastDueAt = Date.now() - r.feed.intervalMs;
        if (!r.venueHold) this.schedule(r);
      } else {
        r.status = 'paused';
      }
    });
  }

  /** Stops every loop without changing any session's status; waits for steps in flight; writes what is pending. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.scheduler.close();
      clearInterval(this.expiryTimer);
      clearInterval(this.reconcileTimer);
      for (const r of this.runners.values()) {
        r.status = 'closed';
        r.epoch++;
      }
      await Promise.allSettled([...this.active]);
      for (const r of this.runners.values()) if (r.dirty) this.dirty.add(r);
      try {
        this.flush();
      } catch (err) {
        // Like a crash at this point: what is persisted is consistent, and a restart re-runs from there.
        if (!isStorageFault(err)) throw err;
        this.o.storage?.report(err);
        this.o.logger?.error({ err: message(err) }, 'the last runner state could not be written (storage fault); the next start continues from the one before');
      }
      this.runners.clear();
    })();
    return this.closing;
  }

  // ---- live venues ----

  /**
   * Reconciles every live session on a venue broker (see Reconciler): at daemon start before READY (runners
   * restored from a live venue wait for it), then every reconcileIntervalMs. Sessions it pauses stay paused
   * until an operator resumes them (no automatic resume: the reason may need a human).
   */
  async reconcileVenues(): Promise<ReconcileReport> {
    const runners = [...this.runners.values()].filter((r) => !r.broker.simulated && (r.status === 'running' || r.status === 'paused'));
    const report = await this.reconciler.run(runners, this.host?.pauseSession === undefined ? undefined : { pauseSession: (id, reason, ctx) => this.host!.pauseSession!(id, reason, ctx) });
    for (const r of runners) {
      if (!r.venueHold) continue;
      r.venueHold = false;
      if (r.status === 'running') this.schedule(r);
    }
    this.o.logger?.info({ ...report, ms: Math.round(report.ms) }, 'venues reconciled');
    if (this.reconcileTimer === undefined && this.o.reconcileIntervalMs > 0 && this.closing === undefined) {
      this.reconcileTimer = setInterval(() => {
        if (this.reconciling) return;
        this.reconciling = true;
        void this.reconcileVenues()
          .catch((err: unknown) => this.o.logger?.error({ err: message(err) }, 'reconciliation failed'))
          .finally(() => (this.reconciling = false));
      }, this.o.reconcileIntervalMs);
      this.reconcileTimer.unref();
    }
    return report;
  }

  private reconciling = false;

  /** A step on a live venue: the venue's state and fills of the session's open and `unknown` orders. */
  private async pollVenue(r: SessionRunner): Promise<void> {
    if (r.broker.simulated || r.broker.refreshOrders === undefined) return;
    const open = this.o.orders.listBySession(r.id, { status: VENUE_OPEN });
    if (open.length === 0) return;
    const now = Date.now();
    const due: StoredOrder[] = [];
    for (const o of open) {
      if (o.status !== 'unknown') continue;
      const b = this.unknownBackoff.get(o.clientOrderId) ?? { next: 0, wait: 200 };
      if (b.next > now) continue;
      this.unknownBackoff.set(o.clientOrderId, { next: now + b.wait, wait: Math.min(b.wait * 2, 5000) });
      due.push(o);
    }
    try {
      const known = open.filter((o) => o.status !== 'unknown');
      if (known.length > 0) this.router.applyUpdates(r, await r.broker.refreshOrders(known));
      await this.router.resolveUnknown(r, due, this.o.unknownTimeoutMs);
      for (const o of due) if (this.o.orders.getByClientId(o.clientOrderId)?.status !== 'unknown') this.unknownBackoff.delete(o.clientOrderId);
    } catch (err) {
      // Reads only: the step goes on with the book as recorded; the next step or reconciliation asks again.
      this.o.logger?.warn({ sessionId: r.id, brokerId: r.broker.id, err: message(err) }, 'venue order refresh failed');
    }
  }

  // ---- approvals (execution mode `confirm`) ----

  /**
   * Sends a `pending_approval` order of a running session after checking its risk controls again.
   * @throws SESSION_NOT_FOUND; INVALID_TRANSITION (session not running, order not pending); VALIDATION_ERROR
   * (unknown order); RISK_LIMIT (refused now: the order is recorded as rejected).
   */
  async approveOrder(sessionId: string, clientOrderId: string): Promise<StoredOrder> {
    const r = this.runners.get(sessionId);
    const notRunning = (): SessiondError => {
      const stored = this.o.sessions.get(sessionId);
      if (stored === undefined) return new SessionNotFoundError(sessionId);
      return new InvalidTransitionError(sessionId, stored.session.status, 'approve-order');
    };
    if (r === undefined || r.status !== 'running') throw notRunning();
    return r.lock(() => {
      if (r.status !== 'running') throw notRunning();
      return this.router.approve(r, clientOrderId);
    });
  }

  /** Records an operator's refusal of a `pending_approval` order. @throws SESSION_NOT_FOUND; INVALID_TRANSITION; VALIDATION_ERROR */
  async rejectOrder(sessionId: string, clientOrderId: string, reason?: string): Promise<StoredOrder> {
    if (this.o.sessions.get(sessionId) === undefined) throw new SessionNotFoundError(sessionId);
    const r = this.runners.get(sessionId);
    if (r === undefined) return this.router.reject(sessionId, clientOrderId, reason);
    return r.lock(() => this.router.reject(sessionId, clientOrderId, reason));
  }

  // ---- PerformanceSource and read models ----

  /**
   * From what is persisted, with the backtest's definitions: the session's equity curve (one point per step,
   * marked at the closes; see equity-curve.ts) gives returnPct (last point / starting equity) and
   * maxDrawdownPct (over every point, tracked in runner_state); trades = closed round trips + open positions
   * in the persisted fills (tradeCounts).
   */
  performanceOf(session: Session): SessionPerformance {
    const record = this.o.runnerStates.get(session.id);
    if (record === undefined) return { returnPct: 0, maxDrawdownPct: 0, trades: 0 };
    const { closed, open } = tradeCounts(this.o.orders.listFills(session.id));
    return { returnPct: (record.equity / record.initialEquity - 1) * 100, maxDrawdownPct: record.maxDrawdownPct, trades: closed + open };
  }

  equityHistory(sessionId: string, options?: { limit?: number }): EquityPoint[] {
    return this.o.runnerStates.equityHistory(sessionId, options);
  }

  signals(sessionId: string): SignalRecord[] {
    return this.o.runnerStates.listSignals(sessionId);
  }

  /** The runner's persisted state (strategy state, cursor, equity statistics), or undefined. */
  runnerState(sessionId: string): RunnerStateRecord | undefined {
    return this.o.runnerStates.get(sessionId);
  }

  stats(): RunnerServiceStats {
    let running = 0;
    let paused = 0;
    for (const r of this.runners.values()) {
      if (r.status === 'running') running++;
      else if (r.status === 'paused') paused++;
    }
    return { running, paused, held: this.held.size, ...this.counters };
  }

  // ---- the loop ----

  private async build(session: Session, record: RunnerStateRecord | undefined, opts: { lenient?: boolean } = {}): Promise<SessionRunner> {
    let definition: AnyStrategyDefinition | undefined;
    let params: StrategyParams = session.strategy.params ?? {};
    try {
      const resolved = this.o.strategies.resolve(session.strategy.id, session.strategy.params);
      definition = this.o.strategies.get(resolved.id);
      params = resolved.params;
    } catch (err) {
      if (!opts.lenient) throw err;
    }
    const broker = this.o.brokers.get(session.brokerId);
    const config = feedConfigOf(session, this.o.defaultBarIntervalMs);
    const barMs = config.type === 'synthetic' ? config.intervalMs! : undefined;
    const now = Date.now();
    // A phase per session (from its id) inside the bar interval: sessions started together do not all
    // become due at the same instant, so load is smooth instead of one burst per interval.
    const startTime = record?.startTime ?? (barMs === undefined ? now : now - (fnv1a(session.id) % barMs));
    const feed: Feed = await loadFeed(config, session.symbols, { startTime, files: this.o.barFiles });
    const at = this.o.now().toISOString();
    const rec: RunnerStateRecord = record ?? {
      sessionId: session.id,
      strategyId: session.strategy.id,
      state: (definition?.initialState(params) ?? null) as JsonValue,
      cursor: 0,
      startTime,
      steps: 0,
      lastPrices: {},
      dayStartPnl: 0,
      initialEquity: this.o.initialEquity,
      equity: this.o.initialEquity,
      peakEquity: this.o.initialEquity,
      maxDrawdownPct: 0,
      failures: 0,
      createdAt: at,
      updatedAt: at,
    };
    if (record === undefined && definition !== undefined) {
      // Checked once here; later states come back from the worker, which checks every step's result.
      const problem = describeState(rec.state);
      if (problem !== null) throw new ValidationError(`strategy ${session.strategy.id}: initial state ${problem}`);
    }
    return new SessionRunner(session, rec, feed, broker, definition, params, barMs, config.barsPerStep ?? 1);
  }

  /** The session as the manager just committed it; the positions stay the runner's. */
  private adopt(r: SessionRunner, session: Session): void {
    r.session = session;
    this.router.publishPositions(r, session.updatedAt);
  }

  private schedule(r: SessionRunner): void {
    if (this.closing !== undefined || r.status !== 'running' || r.feedExhausted) return;
    this.scheduler.schedule(r, Math.max(this.dueOf(r), r.retryAt));
  }

  /** When the next step's bars are complete. */
  private dueOf(r: SessionRunner): number {
    if (r.pending !== undefined) return r.pending.dueAt;
    if (r.barMs !== undefined) return r.record.startTime + (r.feed.cursor + r.barsPerStep) * r.barMs;
    return r.lastDueAt + r.feed.intervalMs;
  }

  /**
   * Synthetic feeds follow the clock: a runner more than maxCatchUpSteps behind (paused, restarted,
   * overloaded) jumps to the latest complete bars instead of trading on stale ones. Replay feeds never skip.
   */
  private skipAhead(r: SessionRunner, dropPending: boolean): void {
    if (r.barMs === undefined || r.replayFirst) return;
    const k = r.barsPerStep;
    const complete = Math.floor((Date.now() - r.record.startTime) / r.barMs);
    if (complete - (r.feed.cursor + k) <= this.o.maxCatchUpSteps * k) return;
    if (r.pending !== undefined) {
      if (!dropPending) return;
      // Those bars reached the broker but not the strategy: they are skipped like the rest.
      r.record.cursor = r.pending.cursorAfter;
      r.pending = undefined;
    }
    const target = complete - k;
    if (target > r.feed.cursor) {
      r.feed.seek(target);
      r.record.cursor = target;
      // Not forced: after a crash the older cursor is simply skipped again.
      this.markDirty(r);
    }
  }

  private dispatch(due: SessionRunner[]): void {
    const ready = due.filter((r) => r.status === 'running' && !r.inFlight);
    const group = this.o.maxBatchSize * 4;
    // One group per broker: a slow or unreachable venue holds only its own sessions' commits.
    const byBroker = new Map<string, SessionRunner[]>();
    for (const r of ready) {
      const list = byBroker.get(r.broker.id);
      if (list === undefined) byBroker.set(r.broker.id, [r]);
      else list.push(r);
    }
    for (const list of byBroker.values()) {
      for (let i = 0; i < list.length; i += group) {
        const p = this.runGroup(list.slice(i, i + group)).catch((err: unknown) => {
          // A commit of the group's phase failed: a storage fault holds every runner; anything else is a bug.
          if (!this.holdForStorage(undefined, err)) this.o.logger?.error({ err: message(err) }, 'runner loop failed');
        });
        this.active.add(p);
        void p.finally(() => this.active.delete(p));
      }
    }
  }

  /**
   * Sessions due together, in phases that each write in ONE SQLite transaction (a commit per bar or per
   * order costs more than the steps): show the bars to the broker and record the fills; step in the pool
   * (tasks of up to maxBatchSize sessions, at least one per thread); then, for every task that came back
   * by the same turn of the event loop, decide the orders (written `new`), send them, record the
   * acknowledgements and commit the steps. The sessions' locks are held around each phase, never while the
   * pool works.
   */
  private async runGroup(due: SessionRunner[]): Promise<void> {
    const group = [...new Set(due)];
    const releases = await Promise.all(group.map((r) => r.acquire()));
    let prepared: Prepared[];
    try {
      prepared = await this.prepareBatch(group);
    } finally {
      for (const release of releases) release();
    }
    // A session whose last step failed runs alone until it succeeds: a strategy that hangs or kills its
    // thread again then costs its neighbours nothing.
    const suspects = prepared.filter((p) => p.runner.failureStreak > 0);
    const healthy = prepared.filter((p) => p.runner.failureStreak === 0);
    const tasks = Math.max(Math.ceil(healthy.length / this.o.maxBatchSize), Math.min(healthy.length, this.o.pool.size));
    const size = Math.ceil(healthy.length / Math.max(1, tasks));
    const chunks: Prepared[][] = suspects.map((p) => [p]);
    for (let i = 0; i < healthy.length; i += size) chunks.push(healthy.slice(i, i + size));
    await Promise.all(
      chunks.map(async (chunk) => {
        this.counters.batches++;
        const t0 = performance.now();
        let outcomes: BatchStepOutcome[];
        try {
          outcomes = await this.o.pool.evaluateBatch(chunk.map((p) => p.request));
        } catch (err) {
          // The pool is closed (daemon shutdown): nothing was stepped.
          outcomes = chunk.map(() => ({ ok: false, error: err instanceof Error ? err : new Error(String(err)) }));
        }
        const poolMs = performance.now() - t0;
        for (const p of chunk) {
          p.poolMs = poolMs;
          p.batchSize = chunk.length;
        }
        await this.enqueueApply(chunk, outcomes);
      }),
    );
    for (const r of group) this.schedule(r);
  }

  /** Results that come back in the same turn of the event loop are committed together. */
  private enqueueApply(prepared: Prepared[], outcomes: BatchStepOutcome[]): Promise<void> {
    return new Promise((resolve) => {
      this.applyQueue.push({ prepared, outcomes, resolve });
      if (!this.applyScheduled) {
        this.applyScheduled = true;
        setImmediate(() => void this.drainApply());
      }
    });
  }

  private async drainApply(): Promise<void> {
    this.applyScheduled = false;
    const items = this.applyQueue.splice(0);
    const prepared = items.flatMap((i) => i.prepared);
    const outcomes = items.flatMap((i) => i.outcomes);
    // A session paused and resumed while a step was in the pool has two results here (the older one is
    // discarded by its epoch): take each lock once, or this would wait on itself.
    const releases = await Promise.all([...new Set(prepared.map((p) => p.runner))].map((r) => r.acquire()));
    let followUps: (() => Promise<void>)[] = [];
    try {
      followUps = await this.applyBatch(prepared, outcomes);
    } catch (err) {
      this.o.logger?.error({ err: message(err) }, 'committing steps failed');
      for (const p of prepared) if (p.runner.epoch === p.epoch) this.fail(p.runner, err);
    } finally {
      for (const release of releases) release();
    }
    for (const job of followUps) await job().catch((err: unknown) => this.o.logger?.error({ err: message(err) }, 'runner follow-up failed'));
    for (const i of items) i.resolve();
  }

  /** Reads each session's bars and shows them to the broker (fills of earlier orders, marks). */
  private async prepareBatch(batch: SessionRunner[]): Promise<Prepared[]> {
    const ready: SessionRunner[] = [];
    for (const r of batch) {
      if (r.status !== 'running' || r.inFlight || r.definition === undefined) continue;
      if (r.pending === undefined) {
        this.skipAhead(r, false);
        const dueAt = this.dueOf(r);
        const bars = r.feed.next();
        if (bars === null) {
          this.exhausted(r);
          continue;
        }
        r.pending = { bars, cursorAfter: r.feed.cursor, dueAt, shown: false };
        r.lastDueAt = dueAt;
      }
      ready.push(r);
    }
    // A simulated broker does its work when called: calling it for the whole batch inside one transaction
    // makes that one commit. Orders decided on these bars are sent after, so they fill on later bars.
    const calls: { r: SessionRunner; bar: Bar; executions: Promise<BrokerBarEvent[]> }[] = [];
    this.transact(() => {
      for (const r of ready) {
        if (r.pending!.shown) continue;
        for (const bar of r.pending!.bars) calls.push({ r, bar, executions: r.broker.onBar?.(bar, r.id) ?? Promise.resolve([]) });
      }
    });
    const settled = await Promise.allSettled(calls.map((c) => c.executions));
    const failed = new Set<SessionRunner>();
    this.transact(() => {
      calls.forEach((c, i) => {
        const s = settled[i]!;
        // Held (storage fault) or closed meanwhile: the rebuilt runner's reconcile takes these fills from the broker.
        if (failed.has(c.r) || c.r.status === 'closed') return;
        if (s.status === 'rejected') {
          failed.add(c.r);
          this.fail(c.r, s.reason);
          return;
        }
        this.router.applyExecutions(c.r, s.value);
        c.r.observeBar(c.bar);
      });
    });
    // Live venues: fills and states of open orders, asked before the strategy sees its book.
    await Promise.all(ready.filter((r) => !r.broker.simulated && !failed.has(r)).map((r) => this.pollVenue(r)));
    const prepared: Prepared[] = [];
    for (const r of ready) {
      if (failed.has(r) || r.status !== 'running') continue;
      const pending = r.pending!;
      if (!pending.shown) {
        pending.shown = true;
        r.updateEquity();
        this.markDirty(r);
      }
      r.replayFirst = false;
      r.inFlight = true;
      prepared.push({
        runner: r,
        epoch: r.epoch,
        dueAt: pending.dueAt,
        request: { sessionId: r.id, strategyId: r.definition!.id, params: r.params, state: r.state, bars: pending.bars, book: sessionBook(r, this.o.orders) },
        poolMs: 0,
        batchSize: 0,
      });
    }
    return prepared;
  }

  /** Decides and sends the steps' orders, then commits each step (state, cursor) after its orders. */
  private async applyBatch(prepared: Prepared[], outcomes: BatchStepOutcome[]): Promise<(() => Promise<void>)[]> {
    const report = (p: Prepared, ok: boolean, failure: string | undefined, signals: number) =>
      this.o.onStep?.({ sessionId: p.runner.id, ok, failure, signals, poolMs: p.poolMs, batchSize: p.batchSize });
    const live: { p: Prepared; state: JsonValue; signals: number }[] = [];
    const sends: { p: Prepared; order: StoredOrder; ack?: Promise<BrokerOrderAck> }[] = [];
    this.transact(() => {
      prepared.forEach((p, i) => {
        const r = p.runner;
        const outcome = outcomes[i]!;
        if (r.epoch !== p.epoch) return; // paused, stopped or closed while the step ran: nothing of it is used
        r.inFlight = false;
        if (r.status !== 'running') return;
        if (!outcome.ok) {
          this.fail(r, outcome.error);
          report(p, false, kindOf(outcome.error), 0);
          return;
        }
        try {
          for (const signal of outcome.signals) {
            const order = this.router.decide(r, signal);
            if (order !== undefined) sends.push({ p, order });
          }
          live.push({ p, state: outcome.state, signals: outcome.signals.length });
        } catch (err) {
          this.fail(r, err);
          report(p, false, kindOf(err), 0);
        }
      });
    });
    // The `new` rows are committed: now the orders may reach the broker.
    this.transact(() => {
      for (const s of sends) s.ack = s.p.runner.broker.submit({ ...s.order, refPrice: s.p.runner.record.lastPrices[s.order.symbol] });
    });
    const acks = await Promise.allSettled(sends.map((s) => s.ack!));
    const followUps: (() => Promise<void>)[] = [];
    const failed = new Set<SessionRunner>();
    this.transact(() => {
      sends.forEach((s, i) => {
        const r = s.p.runner;
        const ack = acks[i]!;
        if (failed.has(r)) return;
        if (ack.status === 'rejected') {
          // The order stays `new`: the retried step finds it and sends it again.
          failed.add(r);
          this.fail(r, ack.reason);
          report(s.p, false, kindOf(ack.reason), 0);
          return;
        }
        this.router.acknowledge(r, s.order, ack.value, s.p.dueAt);
        if (ack.value.duplicate && ack.value.order.filledQty > 0) {
          followUps.push(() => r.lock(() => this.router.syncFills(r, s.order.clientOrderId)));
        }
      });
      for (const { p, state, signals } of live) {
        const r = p.runner;
        if (failed.has(r) || r.epoch !== p.epoch || r.status !== 'running') continue;
        this.commitStep(r, state);
        report(p, true, undefined, signals);
        const daily = r.dailyPnl();
        if (isDailyLossBreached(daily, r.session.riskControls)) {
          this.halt(r, 'paused');
          const reason = `maxDailyLoss ${round(r.session.riskControls.maxDailyLoss!)} reached with daily pnl ${round(daily)}`;
          followUps.push(() => r.lock(() => this.breach(r, reason)));
        } else if (r.record.equity <= 0) {
          // Only shorts (paperBroker.allowShort) or a venue's own margin can get here: never silently.
          this.halt(r, 'paused');
          followUps.push(() => r.lock(() => this.breach(r, `equity ${round(r.record.equity)} at or below 0`)));
        }
      }
      this.flush();
    });
    return followUps;
  }

  private commitStep(r: SessionRunner, state: JsonValue): void {
    const pending = r.pending!;
    r.record.state = state;
    r.record.cursor = pending.cursorAfter;
    r.record.steps++;
    r.pending = undefined;
    r.failureStreak = 0;
    r.retryAt = 0;
    this.markDirty(r);
    this.counters.steps++;
    const lastBar = r.record.lastBarTime;
    if (lastBar !== undefined && lastBar - r.lastEquitySampleAt >= this.o.equitySampleMs) {
      r.lastEquitySampleAt = lastBar;
      this.equityPoints.push({ sessionId: r.id, point: { at: lastBar, equity: r.record.equity } });
    }
  }

  /** The record changed; it is written with the next flush when `force` or stateCommitMs has passed. */
  private markDirty(r: SessionRunner, force = false): void {
    r.dirty = true;
    if (force || Date.now() - r.lastStateSaveAt >= this.o.stateCommitMs) this.dirty.add(r);
  }

  private transact<T>(fn: () => T): T {
    return this.o.runnerStates.transaction(fn);
  }

  /** maxDailyLoss reached or equity exhausted (the runner is already halted): open orders cancelled, the session paused. */
  private async breach(r: SessionRunner, reason: string): Promise<void> {
    await this.router.cancelOpen(r, `risk_breach: ${reason}`);
    this.o.logger?.warn({ sessionId: r.id, dailyPnl: r.dailyPnl(), equity: r.record.equity, reason }, 'risk breach: pausing the session');
    void this.host?.handleRiskBreach(r.id, reason).catch((err: unknown) => this.o.logger?.error({ sessionId: r.id, err: message(err) }, 'risk breach not applied'));
  }

  private fail(r: SessionRunner, err: unknown): void {
    if (r.status !== 'running') return;
    // Not the strategy's fault and not counted against maxRestarts: the runners hold instead.
    if (this.holdForStorage(undefined, err)) return;
    const text = wire(err);
    r.failureStreak++;
    r.record.failures++;
    r.record.lastError = text;
    this.markDirty(r, true);
    this.counters.failedSteps++;
    if (r.failureStreak > this.o.maxRestarts) {
      this.halt(r, 'failed');
      const error = `${text} (runner restarted ${this.o.maxRestarts} times)`;
      this.o.logger?.error({ sessionId: r.id, err: text, restarts: this.o.maxRestarts }, 'runner failed: stopping the session');
      void this.host?.handleRunnerFailure(r.id, error).catch((e: unknown) => this.o.logger?.error({ sessionId: r.id, err: message(e) }, 'runner failure not applied'));
      return;
    }
    const backoff = this.o.restartBackoffMs * 2 ** (r.failureStreak - 1);
    r.retryAt = Date.now() + backoff;
    this.o.logger?.warn({ sessionId: r.id, err: text, attempt: r.failureStreak, backoffMs: backoff }, 'step failed: restarting the runner');
  }

  private halt(r: SessionRunner, status: 'paused' | 'stopped' | 'failed'): void {
    r.status = status;
    r.epoch++;
    r.inFlight = false;
    this.scheduler.cancel(r);
    // What stateCommitMs held back is written now: a paused session resumes exactly where it stopped.
    if (r.dirty) this.dirty.add(r);
  }

  private exhausted(r: SessionRunner): void {
    r.feedExhausted = true;
    this.scheduler.cancel(r);
    this.o.logger?.info({ sessionId: r.id, cursor: r.feed.cursor }, 'replay feed exhausted: stopping the session');
    void this.host?.stopSession(r.id, 'feed_exhausted', { source: 'runner' }).catch(() => undefined);
  }

  /** Paper fills of the flatten orders: the market's next bars after the stop. */
  private async fillAfterStop(r: SessionRunner): Promise<void> {
    if (r.broker.onBar === undefined) return;
    r.replayFirst = false;
    this.skipAhead(r, true);
    if (r.pending !== undefined) {
      r.record.cursor = r.pending.cursorAfter;
      r.pending = undefined;
    }
    const bars = r.feed.next();
    if (bars === null) return;
    for (const bar of bars) {
      this.router.applyExecutions(r, await r.broker.onBar(bar, r.id));
      r.observeBar(bar);
    }
    r.record.cursor = r.feed.cursor;
  }

  /** Writes the batch's commits (runner state, marked positions, equity points) in one transaction. */
  private flush(): void {
    if (this.dirty.size === 0 && this.equityPoints.length === 0) return;
    const at = this.o.now().toISOString();
    const wall = Date.now();
    const records: RunnerStateRecord[] = [];
    const marked: SessionRunner[] = [];
    for (const r of this.dirty) {
      r.record.updatedAt = at;
      records.push(r.record);
      r.dirty = false;
      r.lastStateSaveAt = wall;
      if (r.positionsMarked && (wall - r.lastMarkSaveAt >= this.o.markPersistMs || r.status !== 'running')) {
        r.positionsMarked = false;
        r.lastMarkSaveAt = wall;
        marked.push(r);
      }
    }
    this.dirty.clear();
    const points = this.equityPoints.splice(0);
    this.o.orders.transaction(() => {
      this.o.runnerStates.saveMany(records);
      for (const r of marked) this.o.orders.savePositions(r.id, [...r.positions.values()], at);
      for (const e of points) this.o.runnerStates.addEquity(e.sessionId, e.point);
    });
  }

  private expireApprovals(): void {
    try {
      for (const o of this.o.orders.expirePendingApprovals(this.o.now())) {
        this.o.onOrder?.({ sessionId: o.sessionId, clientOrderId: o.clientOrderId, status: o.status });
      }
    } catch (err) {
      if (!this.holdForStorage(undefined, err)) this.o.logger?.error({ err: message(err) }, 'expiring approvals failed');
    }
  }

  /**
   * A storage fault (disk full, I/O error): every runner is held as if the daemon had crashed at this point.
   * Nothing in memory is trusted or written any more, no session's status changes, no failure is counted.
   * Once SQLite writes again, each held session's runner is rebuilt from what is persisted, exactly as after
   * a restart (the step that was caught runs again; its orders are keyed, so none is placed twice).
   * The SessionManager calls this when a runner call it made failed (`sessionId`: that session is held too).
   * @returns false (and does nothing) when `err` is not a storage fault
   */
  holdForStorage(sessionId: string | undefined, err: unknown): boolean {
    if (!isStorageFault(err)) return false;
    const first = this.held.size === 0;
    for (const r of this.runners.values()) {
      this.held.add(r.id);
      r.status = 'closed';
      r.epoch++;
      r.inFlight = false;
      r.dirty = false;
      this.scheduler.cancel(r);
    }
    if (sessionId !== undefined) this.held.add(sessionId);
    this.runners.clear();
    this.dirty.clear();
    this.equityPoints.length = 0;
    this.o.storage?.report(err);
    if (first) this.o.logger?.error({ err: message(err), held: this.held.size }, 'SQLite cannot write: runners hold, statuses unchanged');
    if (!this.releaseScheduled && this.closing === undefined) {
      this.releaseScheduled = true;
      const release = (): void => void this.releaseHold();
      if (this.o.storage !== undefined) this.o.storage.whenWritable(release);
      else setTimeout(release, 1000).unref();
    }
    return true;
  }

  /** SQLite writes again: held sessions get their runners back from what is persisted. */
  private async releaseHold(): Promise<void> {
    this.releaseScheduled = false;
    if (this.closing !== undefined) return;
    const ids = [...this.held];
    this.held.clear();
    let restored = 0;
    for (const id of ids) {
      if (this.closing !== undefined) return;
      // A resume or start since the hold built it already.
      if (this.runners.has(id)) continue;
      try {
        const stored = this.o.sessions.get(id);
        if (stored === undefined || (stored.session.status !== 'running' && stored.session.status !== 'paused')) continue;
        await this.restore(stored.session);
        restored++;
      } catch (err) {
        if (this.holdForStorage(id, err)) continue;
        this.o.logger?.error({ sessionId: id, err: message(err) }, 'runner could not be rebuilt after a storage fault');
        void this.host?.handleRunnerFailure(id, wire(err)).catch(() => undefined);
      }
    }
    if (this.held.size === 0) this.o.logger?.info({ restored }, 'runners resumed after a storage fault');
    await this.finishInterruptedStops().catch((err: unknown) => this.o.logger?.error({ err: message(err) }, 'finishing interrupted stops failed'));
  }

  private async finishInterruptedStops(): Promise<void> {
    for (const id of this.o.runnerStates.listUnfinalizedStopped()) {
      if (this.closing !== undefined) return;
      const stored = this.o.sessions.get(id);
      if (stored === undefined) continue;
      this.o.logger?.info({ sessionId: id }, 'finishing the stop of a session a restart interrupted');
      await this.stop(stored.session).catch((err: unknown) => this.o.logger?.error({ sessionId: id, err: message(err) }, 'finishing a stop failed'));
    }
  }
}

/** The feed a session trades on: its own config, or a synthetic market seeded from its id. */
export function feedConfigOf(session: Pick<Session, 'id' | 'feed'>, defaultBarIntervalMs: number): FeedConfig {
  const seed = fnv1a(session.id) | 0;
  const f = session.feed;
  if (f === undefined) return { type: 'synthetic', seed, intervalMs: defaultBarIntervalMs, barsPerStep: 1 };
  if (f.type === 'synthetic') return { ...f, seed: f.seed ?? seed, intervalMs: f.intervalMs ?? defaultBarIntervalMs, barsPerStep: f.barsPerStep ?? 1 };
  return f;
}

function describeState(state: unknown): string | null {
  try {
    return JSON.stringify(JSON.parse(JSON.stringify(state))) === JSON.stringify(state) ? null : 'does not survive JSON';
  } catch (err) {
    return `is not JSON (${message(err)})`;
  }
}

/** `CODE: message` when the error has a code (STRATEGY_FAILED, INTERNAL, ...). */
function wire(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && code.length > 0 ? `${code}: ${err.message}` : `${ErrorCode.INTERNAL}: ${err.message}`;
  }
  return `${ErrorCode.INTERNAL}: ${String(err)}`;
}

function kindOf(err: unknown): string {
  const e = err as { kind?: unknown; code?: unknown } | undefined;
  if (typeof e?.kind === 'string') return e.kind;
  if (typeof e?.code === 'string') return e.code;
  return 'error';
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function round(x: number): string {
  return String(Number(x.toPrecision(12)));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
