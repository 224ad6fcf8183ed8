import type { Broker } from '../brokers/broker.js';
import {
  ErrorCode,
  InvalidTransitionError,
  SessionNotFoundError,
  SessiondError,
  ValidationError,
} from '../domain/errors.js';
import { countTrades, totalPnl } from '../domain/pnl.js';
import { isDailyLossBreached } from '../domain/risk.js';
import type { FeedConfig, Session } from '../domain/session.js';
import { createFeed, type Feed } from '../market-data/feed.js';
import { fnv1a } from '../market-data/synthetic-feed.js';
import type { OrderRepository, StoredOrder } from '../persistence/order-repository.js';
import type { StoredSession } from '../persistence/ports.js';
import type { EquityPoint, RunnerStateRecord, RunnerStateRepository, SignalRecord } from '../persistence/runner-state-repository.js';
import type { PerformanceSource, SessionPerformance, SessionRunnerPort } from '../sessions/ports.js';
import type { AnyStrategyDefinition, JsonValue, StrategyParams } from '../strategies/strategy-api.js';
import { OrderRouter, type OrderEvent } from './order-router.js';
import { SessionRunner } from './session-runner.js';
import { StepScheduler } from './step-scheduler.js';
import type { BatchStepOutcome, EvaluateRequest } from './strategy-pool.js';

/** What the runners report back to: the SessionManager fits. */
export interface RunnerHost {
  handleRunnerFailure(id: string, error: string): Promise<unknown>;
  handleRiskBreach(id: string, reason: string): Promise<unknown>;
  stopSession(id: string, reason?: string, ctx?: { source?: string }): Promise<unknown>;
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
  /** Directory relative replay files resolve against. @defaultValue process.cwd() */
  feedBaseDir?: string;
  /** Clock of order timestamps and approval expiry. @defaultValue () => new Date() */
  now?: () => Date;
  logger?: RunnerLogger | undefined;
  onOrder?: ((event: OrderEvent) => void) | undefined;
  onStep?: ((event: StepEvent) => void) | undefined;
}

export const DEFAULT_RUNNER_SERVICE_OPTIONS = Object.freeze({
  maxRestarts: 3,
  restartBackoffMs: 500,
  approvalTtlMs: 300_000,
  maxBatchSize: 64,
  initialEquity: 100_000,
  maxCatchUpSteps: 3,
  defaultBarIntervalMs: 1000,
  equitySampleMs: 60_000,
  markPersistMs: 1000,
});

export interface RunnerServiceStats {
  running: number;
  paused: number;
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
  private readonly o: Readonly<Required<Omit<RunnerServiceOptions, 'logger' | 'onOrder' | 'onStep' | 'feedBaseDir'>>> &
    Pick<RunnerServiceOptions, 'logger' | 'onOrder' | 'onStep' | 'feedBaseDir'>;
  private readonly runners = new Map<string, SessionRunner>();
  private readonly scheduler: StepScheduler<SessionRunner>;
  private readonly router: OrderRouter;
  private readonly dirty = new Set<SessionRunner>();
  private readonly equityPoints: { sessionId: string; point: EquityPoint }[] = [];
  private readonly active = new Set<Promise<void>>();
  private readonly expiryTimer: NodeJS.Timeout;
  private host: RunnerHost | undefined;
  private closing: Promise<void> | undefined;
  private counters = { steps: 0, failedSteps: 0, batches: 0, ordersPlaced: 0 };

  constructor(options: RunnerServiceOptions) {
    const o = { ...DEFAULT_RUNNER_SERVICE_OPTIONS, now: () => new Date(), ...stripUndefined(options) } as Required<RunnerServiceOptions>;
    for (const key of ['maxRestarts', 'restartBackoffMs', 'maxCatchUpSteps'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 0) throw new ValidationError(`options.${key} must be a non-negative integer`);
    }
    for (const key of ['approvalTtlMs', 'maxBatchSize', 'defaultBarIntervalMs', 'equitySampleMs', 'markPersistMs'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new ValidationError(`options.${key} must be a positive integer`);
    }
    if (!(Number.isFinite(o.initialEquity) && o.initialEquity > 0)) throw new ValidationError('options.initialEquity must be a positive number');
    this.o = Object.freeze(o);
    this.scheduler = new StepScheduler((due) => this.dispatch(due));
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
  }

  /** Where failures and risk breaches go (the SessionManager); also finishes stops a crash interrupted. */
  attach(host: RunnerHost): void {
    this.host = host;
    void this.finishInterruptedStops().catch((err: unknown) => this.o.logger?.error({ err: message(err) }, 'finishing interrupted stops failed'));
  }

  // ---- SessionRunnerPort ----

  async start(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    const existing = this.o.runnerStates.get(session.id);
    const r = this.build(session, existing);
    if (existing === undefined) this.o.runnerStates.save(r.record);
    else r.feed.seek(existing.cursor);
    this.runners.set(session.id, r);
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
    });
  }

  async resume(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    let r = this.runners.get(session.id);
    if (r === undefined || r.status === 'failed' || r.status === 'stopped') {
      r = this.build(session, this.o.runnerStates.get(session.id));
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
      r = this.build(session, record, { lenient: true });
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
    const existing = this.o.runnerStates.get(session.id);
    const r = this.build(session, existing);
    if (existing === undefined) this.o.runnerStates.save(r.record);
    else r.feed.seek(existing.cursor);
    this.runners.set(session.id, r);
    await r.lock(async () => {
      await this.router.reconcile(r);
      if (session.status === 'running') {
        r.status = 'running';
        // The step at the persisted cursor may have been in flight at the crash: run it before skipping ahead.
        r.replayFirst = existing !== undefined;
        r.lastDueAt = Date.now() - r.feed.intervalMs;
        this.schedule(r);
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
      for (const r of this.runners.values()) {
        r.status = 'closed';
        r.epoch++;
      }
      await Promise.allSettled([...this.active]);
      this.flush();
      this.runners.clear();
    })();
    return this.closing;
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
   * From the persisted book: equity = initial equity + realized and unrealized PnL of the persisted
   * positions; max drawdown over every committed step (tracked in runner_state) and the equity history;
   * trades = closed round trips in the persisted fills.
   */
  performanceOf(session: Session): SessionPerformance {
    const record = this.o.runnerStates.get(session.id);
    if (record === undefined) return { returnPct: 0, maxDrawdownPct: 0, trades: 0 };
    const equity = record.initialEquity + totalPnl(this.o.orders.positions(session.id));
    let peak = record.peakEquity;
    let maxDrawdownPct = record.maxDrawdownPct;
    for (const p of [...this.o.runnerStates.equityHistory(session.id), { at: 0, equity }]) {
      if (p.equity > peak) peak = p.equity;
      else if (peak > 0) maxDrawdownPct = Math.max(maxDrawdownPct, ((peak - p.equity) / peak) * 100);
    }
    return {
      returnPct: (equity / record.initialEquity - 1) * 100,
      maxDrawdownPct,
      trades: countTrades(this.o.orders.listFills(session.id)),
    };
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
    return { running, paused, ...this.counters };
  }

  // ---- the loop ----

  private build(session: Session, record: RunnerStateRecord | undefined, opts: { lenient?: boolean } = {}): SessionRunner {
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
    const startTime = record?.startTime ?? (barMs === undefined ? now : Math.floor(now / barMs) * barMs);
    const feed: Feed = createFeed(config, session.symbols, {
      startTime,
      ...(this.o.feedBaseDir !== undefined ? { baseDir: this.o.feedBaseDir } : {}),
    });
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
      r.dirty = true;
      this.dirty.add(r);
    }
  }

  private dispatch(due: SessionRunner[]): void {
    const ready = due.filter((r) => r.status === 'running' && !r.inFlight);
    if (ready.length === 0) return;
    // Enough batches to keep every thread busy, none larger than maxBatchSize.
    const batches = Math.max(Math.ceil(ready.length / this.o.maxBatchSize), Math.min(ready.length, this.o.pool.size));
    const size = Math.ceil(ready.length / batches);
    for (let i = 0; i < ready.length; i += size) {
      const p = this.runBatch(ready.slice(i, i + size));
      this.active.add(p);
      void p.finally(() => this.active.delete(p));
    }
  }

  private async runBatch(batch: SessionRunner[]): Promise<void> {
    const prepared: Prepared[] = [];
    for (const r of batch) {
      try {
        const p = await r.lock(() => this.prepare(r));
        if (p !== undefined) prepared.push(p);
      } catch (err) {
        await r.lock(() => this.fail(r, err));
        this.schedule(r);
      }
    }
    if (prepared.length === 0) return;
    this.counters.batches++;
    const t0 = performance.now();
    let outcomes: BatchStepOutcome[];
    try {
      outcomes = await this.o.pool.evaluateBatch(prepared.map((p) => p.request));
    } catch (err) {
      // The pool is closed (daemon shutdown): nothing was stepped.
      outcomes = prepared.map(() => ({ ok: false, error: err instanceof Error ? err : new Error(String(err)) }));
    }
    const poolMs = performance.now() - t0;
    for (let i = 0; i < prepared.length; i++) {
      const p = prepared[i]!;
      const outcome = outcomes[i]!;
      let failure = outcome.ok ? undefined : kindOf(outcome.error);
      try {
        await p.runner.lock(() => this.apply(p, outcome));
      } catch (err) {
        failure = kindOf(err);
        await p.runner.lock(() => this.fail(p.runner, err));
      }
      this.o.onStep?.({
        sessionId: p.runner.id,
        ok: failure === undefined,
        failure,
        signals: outcome.ok ? outcome.signals.length : 0,
        poolMs,
        batchSize: prepared.length,
      });
    }
    try {
      this.flush();
    } catch (err) {
      this.o.logger?.error({ err: message(err) }, 'writing runner state failed');
    }
    for (const p of prepared) this.schedule(p.runner);
  }

  /** Reads the step's bars and shows them to the broker (fills of earlier orders, marks). */
  private async prepare(r: SessionRunner): Promise<Prepared | undefined> {
    if (r.status !== 'running' || r.inFlight || r.definition === undefined) return undefined;
    if (r.pending === undefined) {
      this.skipAhead(r, false);
      const dueAt = this.dueOf(r);
      const bars = r.feed.next();
      if (bars === null) {
        this.exhausted(r);
        return undefined;
      }
      r.pending = { bars, cursorAfter: r.feed.cursor, dueAt };
      r.lastDueAt = dueAt;
      for (const bar of bars) {
        // Fills of orders decided on earlier bars come first; orders decided on this bar are sent after it.
        if (r.broker.onBar !== undefined) this.router.applyExecutions(r, await r.broker.onBar(bar, r.id));
        r.observeBar(bar);
      }
      r.updateEquity();
      this.dirty.add(r);
    }
    r.replayFirst = false;
    r.inFlight = true;
    return {
      runner: r,
      epoch: r.epoch,
      dueAt: r.pending.dueAt,
      request: { sessionId: r.id, strategyId: r.definition.id, params: r.params, state: r.state, bars: r.pending.bars },
    };
  }

  /** Places the step's orders, then commits its state and cursor. */
  private async apply(p: Prepared, outcome: BatchStepOutcome): Promise<void> {
    const r = p.runner;
    if (r.epoch !== p.epoch) return; // paused, stopped or closed while the step ran: nothing of it is used
    r.inFlight = false;
    if (r.status !== 'running') return;
    if (!outcome.ok) {
      this.fail(r, outcome.error);
      return;
    }
    for (const signal of outcome.signals) await this.router.handleSignal(r, signal, p.dueAt);
    const pending = r.pending!;
    r.record.state = outcome.state;
    r.record.cursor = pending.cursorAfter;
    r.record.steps++;
    r.pending = undefined;
    r.failureStreak = 0;
    r.retryAt = 0;
    r.dirty = true;
    this.dirty.add(r);
    this.counters.steps++;
    const lastBar = r.record.lastBarTime;
    if (lastBar !== undefined && lastBar - r.lastEquitySampleAt >= this.o.equitySampleMs) {
      r.lastEquitySampleAt = lastBar;
      this.equityPoints.push({ sessionId: r.id, point: { at: lastBar, equity: r.record.equity } });
    }
    const daily = r.dailyPnl();
    if (isDailyLossBreached(daily, r.session.riskControls)) await this.breach(r, daily);
  }

  /** maxDailyLoss reached: no more steps or orders, open orders cancelled, the session paused. */
  private async breach(r: SessionRunner, daily: number): Promise<void> {
    this.halt(r, 'paused');
    const reason = `maxDailyLoss ${round(r.session.riskControls.maxDailyLoss!)} reached with daily pnl ${round(daily)}`;
    await this.router.cancelOpen(r, `risk_breach: ${reason}`);
    this.o.logger?.warn({ sessionId: r.id, dailyPnl: daily }, 'daily loss limit reached: pausing the session');
    void this.host?.handleRiskBreach(r.id, reason).catch((err: unknown) => this.o.logger?.error({ sessionId: r.id, err: message(err) }, 'risk breach not applied'));
  }

  private fail(r: SessionRunner, err: unknown): void {
    if (r.status !== 'running') return;
    const text = wire(err);
    r.failureStreak++;
    r.record.failures++;
    r.record.lastError = text;
    r.dirty = true;
    this.dirty.add(r);
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
      this.o.logger?.error({ err: message(err) }, 'expiring approvals failed');
    }
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
