import { isStorageFault } from '../domain/errors.js';
import { tradeCounts } from '../domain/pnl.js';
import type { Session } from '../domain/session.js';
import { loadFeed } from '../market-data/feed.js';
import type { StoredOrder } from '../persistence/order-repository.js';
import type { EquityPoint, RunnerStateRecord, SignalRecord } from '../persistence/runner-state-repository.js';
import type { PerformanceSource, SessionPerformance, SessionRunnerPort } from '../sessions/ports.js';
import { Approvals } from './approvals.js';
import { FailurePolicy } from './failure-policy.js';
import { feedConfigOf } from './feed-config.js';
import { OrderRouter } from './order-router.js';
import { Reconciler, type ReconcileReport } from './reconciler.js';
import { RunnerClock } from './runner-clock.js';
import type { RunnerContext, RunnerCounters } from './runner-context.js';
import { message } from './runner-errors.js';
import { buildRunner } from './runner-factory.js';
import { resolveRunnerOptions, type ResolvedRunnerOptions, type RunnerHost, type RunnerServiceOptions, type RunnerServiceStats } from './runner-options.js';
import type { SessionRunner } from './session-runner.js';
import { StateCommits } from './state-commits.js';
import { StepPipeline } from './step-pipeline.js';
import { StorageHold } from './storage-hold.js';
import { VenuePoller } from './venue-poller.js';

export * from './runner-options.js';
export { feedConfigOf } from './feed-config.js';

/**
 * The runners of every session of the daemon, over one shared StrategyPool: the lifecycle (start, pause,
 * resume, stop, restore, close), approvals and read models. The work is split by responsibility:
 * - RunnerClock (runner-clock.ts): when each runner steps and on which bars (one timer for all sessions);
 * - StepPipeline (step-pipeline.ts): the batched steps (bars -> broker -> pool -> orders -> commit);
 * - StateCommits (state-commits.ts): runner state, marks and equity points, written per batch;
 * - FailurePolicy (failure-policy.ts): restarts with backoff, risk breaches, feed exhaustion;
 * - StorageHold (storage-hold.ts): every runner held on a storage fault, rebuilt once SQLite writes again;
 * - Approvals (approvals.ts): execution mode `confirm`; VenuePoller and Reconciler: live venues;
 * - buildRunner (runner-factory.ts): a runner from its session and persisted record.
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
  private readonly o: ResolvedRunnerOptions;
  private readonly runners = new Map<string, SessionRunner>();
  private readonly router: OrderRouter;
  private readonly commits: StateCommits;
  private readonly clock: RunnerClock;
  private readonly failures: FailurePolicy;
  private readonly storageHold: StorageHold;
  private readonly pipeline: StepPipeline;
  private readonly approvals: Approvals;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private readonly reconciler: Reconciler;
  private host: RunnerHost | undefined;
  private closing: Promise<void> | undefined;
  private readonly counters: RunnerCounters = { steps: 0, failedSteps: 0, batches: 0, ordersPlaced: 0 };

  constructor(options: RunnerServiceOptions) {
    const o = resolveRunnerOptions(options);
    this.o = o;
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
    this.commits = new StateCommits(o);
    const closing = (): boolean => this.closing !== undefined;
    this.clock = new RunnerClock(o, (due) => this.pipeline.dispatch(due), closing);
    const ctx: RunnerContext = {
      o,
      runners: this.runners,
      router: this.router,
      commits: this.commits,
      clock: this.clock,
      counters: this.counters,
      host: () => this.host,
      closing,
    };
    const hold = (sessionId: string | undefined, err: unknown): boolean => this.storageHold.hold(sessionId, err);
    this.storageHold = new StorageHold(ctx, (session) => this.restore(session), () => this.finishInterruptedStops());
    this.failures = new FailurePolicy(ctx, hold);
    this.pipeline = new StepPipeline(ctx, this.failures, new VenuePoller(ctx), hold);
    this.approvals = new Approvals(ctx, hold);
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

  /** Steps wait until releaseSteps() (the daemon holds them while it recovers, until READY). */
  holdSteps(): void {
    this.clock.hold();
  }

  releaseSteps(): void {
    this.clock.release();
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
    const r = await buildRunner(this.o, session, existing);
    if (existing === undefined) this.o.runnerStates.save(r.record);
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
    const venue = config.brokerId !== undefined ? this.o.brokers.get(config.brokerId).bars : undefined;
    await loadFeed(feedConfigOf(config, this.o.defaultBarIntervalMs), config.symbols, { files: this.o.barFiles, startTime: 0, venue });
  }

  async start(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    const { r } = await this.register(session);
    await r.lock(() => {
      r.status = 'running';
      this.clock.startNow(r);
      this.clock.schedule(r);
    });
  }

  async pause(session: Session): Promise<void> {
    const r = this.runners.get(session.id);
    if (r === undefined) return;
    await r.lock(() => {
      this.adopt(r, session);
      if (r.status !== 'running' && r.status !== 'paused') return;
      this.failures.halt(r, 'paused');
      this.commits.flush();
    });
  }

  async resume(session: Session): Promise<void> {
    if (this.closing !== undefined) return;
    let r = this.runners.get(session.id);
    if (r === undefined || r.status === 'failed' || r.status === 'stopped') {
      r = await buildRunner(this.o, session, this.o.runnerStates.get(session.id));
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
      this.clock.startNow(runner);
      // "Continues from the current bar": a synthetic market moved on while paused.
      this.clock.skipAhead(runner, true);
      this.clock.schedule(runner);
    });
  }

  async stop(session: Session): Promise<void> {
    let r = this.runners.get(session.id);
    if (r === undefined) {
      const record = this.o.runnerStates.get(session.id);
      // Never ran here (e.g. started while runners were disabled): only its book, if any, needs settling.
      if (record === undefined && this.o.orders.countOpen(session.id) === 0) return;
      r = await buildRunner(this.o, session, record, { lenient: true });
      await r.lock(() => this.router.reconcile(r!));
    }
    const runner = r;
    await runner.lock(async () => {
      this.adopt(runner, session);
      this.failures.halt(runner, 'stopped');
      await this.router.cancelOpen(runner, `session stopped (${session.stopReason ?? 'stop'})`);
      if (session.flattenOnStop) {
        const placed = await this.router.flatten(runner);
        if (placed.length > 0) await this.fillAfterStop(runner);
      }
      runner.updateEquity();
      const at = this.o.now().toISOString();
      if (runner.record.lastBarTime !== undefined) this.commits.addEquity(runner.id, { at: runner.record.lastBarTime, equity: runner.record.equity });
      runner.record.finalizedAt = at;
      this.commits.force(runner);
      this.commits.flush();
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
        this.clock.startNow(r);
        if (!r.venueHold) this.clock.schedule(r);
      } else {
        r.status = 'paused';
      }
    });
  }

  /** The restores of these sessions follow: their runner states, fills and positions in three reads, not three each. */
  prepareRestore(sessions: readonly Session[]): void {
    const ids = sessions.map((s) => s.id);
    this.o.runnerStates.prefetch?.(ids);
    this.o.orders.prefetchBooks?.(ids);
  }

  /** Stops every loop without changing any session's status; waits for steps in flight; writes what is pending. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.clock.close();
      this.approvals.close();
      clearInterval(this.reconcileTimer);
      for (const r of this.runners.values()) {
        r.status = 'closed';
        r.epoch++;
        r.feed.close?.();
      }
      await Promise.allSettled([...this.pipeline.active]);
      for (const r of this.runners.values()) this.commits.commitHeldBack(r);
      try {
        this.commits.flush();
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
      if (r.status === 'running') this.clock.schedule(r);
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

  // ---- approvals (execution mode `confirm`) ----

  /**
   * Sends a `pending_approval` order of a running session after checking its risk controls again.
   * @throws SESSION_NOT_FOUND; INVALID_TRANSITION (session not running, order not pending); VALIDATION_ERROR
   * (unknown order); RISK_LIMIT (refused now: the order is recorded as rejected).
   */
  approveOrder(sessionId: string, clientOrderId: string): Promise<StoredOrder> {
    return this.approvals.approve(sessionId, clientOrderId);
  }

  /** Records an operator's refusal of a `pending_approval` order. @throws SESSION_NOT_FOUND; INVALID_TRANSITION; VALIDATION_ERROR */
  rejectOrder(sessionId: string, clientOrderId: string, reason?: string): Promise<StoredOrder> {
    return this.approvals.reject(sessionId, clientOrderId, reason);
  }

  // ---- PerformanceSource and read models ----

  /**
   * From what is persisted, with the backtest's definitions: the session's equity curve (one point per step,
   * marked at the closes; see equity-curve.ts) gives returnPct (last point / starting equity) and
   * maxDrawdownPct (over every point, tracked in runner_state); trades = closed round trips + open positions
   * in the persisted fills (tradeCounts).
   */
  performanceOf(session: Session): SessionPerformance {
    const record = this.runnerState(session.id);
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

  /**
   * The runner's state (strategy state, cursor, equity statistics), or undefined: a live runner's from
   * memory (runners.stateCommitMs holds its writes back), else as persisted.
   */
  runnerState(sessionId: string): RunnerStateRecord | undefined {
    const live = this.runners.get(sessionId);
    if (live !== undefined && (live.status === 'running' || live.status === 'paused')) return { ...live.record };
    return this.o.runnerStates.get(sessionId);
  }

  stats(): RunnerServiceStats {
    let running = 0;
    let paused = 0;
    for (const r of this.runners.values()) {
      if (r.status === 'running') running++;
      else if (r.status === 'paused') paused++;
    }
    return { running, paused, held: this.storageHold.size, ...this.counters };
  }

  /**
   * A storage fault (disk full, I/O error): every runner is held as if the daemon had crashed at this point
   * (see StorageHold). The SessionManager calls this when a runner call it made failed (`sessionId`: that
   * session is held too).
   * @returns false (and does nothing) when `err` is not a storage fault
   */
  holdForStorage(sessionId: string | undefined, err: unknown): boolean {
    return this.storageHold.hold(sessionId, err);
  }

  // ---- internals ----

  /** The session as the manager just committed it; the positions stay the runner's. */
  private adopt(r: SessionRunner, session: Session): void {
    r.session = session;
    this.router.publishPositions(r, session.updatedAt);
  }

  /** Paper fills of the flatten orders: the market's next bars after the stop. */
  private async fillAfterStop(r: SessionRunner): Promise<void> {
    if (r.broker.onBar === undefined) return;
    r.replayFirst = false;
    this.clock.skipAhead(r, true);
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
