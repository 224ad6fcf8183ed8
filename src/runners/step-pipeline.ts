import type { BrokerBarEvent, BrokerOrderAck } from '../brokers/broker.js';
import type { Bar } from '../domain/market.js';
import type { StoredOrder } from '../persistence/order-repository.js';
import type { JsonValue } from '../strategies/strategy-api.js';
import type { FailurePolicy } from './failure-policy.js';
import { kindOf, message } from './runner-errors.js';
import type { RunnerContext } from './runner-context.js';
import { sessionBook } from './session-book.js';
import type { SessionRunner } from './session-runner.js';
import type { BatchStepOutcome, EvaluateRequest } from './strategy-pool.js';
import type { VenuePoller } from './venue-poller.js';

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
 * The steps of every session due together, in batches. A step: read the bars -> broker.onBar for each
 * (fills of earlier orders, marks) -> pool step -> signals through the risk controls and the execution
 * mode -> orders -> commit (strategy state + cursor). Every session due at the same moment goes to the pool
 * in batches (up to `maxBatchSize` sessions per task, spread over the pool's threads). A session has at
 * most one step in flight.
 *
 * Crash safety: orders are written (`new`) before they are sent and keyed by `${sessionId}:${signal.key}`;
 * the strategy state and cursor are committed only after the step's orders, so a step caught by a crash
 * runs again after the restart with the same input, finds its orders and places none twice.
 * @internal
 */
export class StepPipeline {
  /** Groups in flight (close waits for them). */
  readonly active = new Set<Promise<void>>();
  readonly #applyQueue: { prepared: Prepared[]; outcomes: BatchStepOutcome[]; resolve: () => void }[] = [];
  #applyScheduled = false;

  constructor(
    private readonly c: RunnerContext,
    private readonly failures: FailurePolicy,
    private readonly venues: VenuePoller,
    private readonly holdStorage: (sessionId: string | undefined, err: unknown) => boolean,
  ) {}

  /** The scheduler's due runners, in groups per broker of up to 4 pool tasks each. */
  dispatch(due: SessionRunner[]): void {
    const ready = due.filter((r) => r.status === 'running' && !r.inFlight);
    const group = this.c.o.maxBatchSize * 4;
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
          if (!this.holdStorage(undefined, err)) this.c.o.logger?.error({ err: message(err) }, 'runner loop failed');
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
    const { o } = this.c;
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
    const tasks = Math.max(Math.ceil(healthy.length / o.maxBatchSize), Math.min(healthy.length, o.pool.size));
    const size = Math.ceil(healthy.length / Math.max(1, tasks));
    const chunks: Prepared[][] = suspects.map((p) => [p]);
    for (let i = 0; i < healthy.length; i += size) chunks.push(healthy.slice(i, i + size));
    await Promise.all(
      chunks.map(async (chunk) => {
        this.c.counters.batches++;
        const t0 = performance.now();
        let outcomes: BatchStepOutcome[];
        try {
          outcomes = await o.pool.evaluateBatch(chunk.map((p) => p.request));
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
    for (const r of group) this.c.clock.schedule(r);
  }

  /** Results that come back in the same turn of the event loop are committed together. */
  private enqueueApply(prepared: Prepared[], outcomes: BatchStepOutcome[]): Promise<void> {
    return new Promise((resolve) => {
      this.#applyQueue.push({ prepared, outcomes, resolve });
      if (!this.#applyScheduled) {
        this.#applyScheduled = true;
        setImmediate(() => void this.drainApply());
      }
    });
  }

  private async drainApply(): Promise<void> {
    this.#applyScheduled = false;
    const items = this.#applyQueue.splice(0);
    const prepared = items.flatMap((i) => i.prepared);
    const outcomes = items.flatMap((i) => i.outcomes);
    // A session paused and resumed while a step was in the pool has two results here (the older one is
    // discarded by its epoch): take each lock once, or this would wait on itself.
    const releases = await Promise.all([...new Set(prepared.map((p) => p.runner))].map((r) => r.acquire()));
    let followUps: (() => Promise<void>)[] = [];
    try {
      followUps = await this.applyBatch(prepared, outcomes);
    } catch (err) {
      this.c.o.logger?.error({ err: message(err) }, 'committing steps failed');
      for (const p of prepared) if (p.runner.epoch === p.epoch) this.failures.fail(p.runner, err);
    } finally {
      for (const release of releases) release();
    }
    for (const job of followUps) await job().catch((err: unknown) => this.c.o.logger?.error({ err: message(err) }, 'runner follow-up failed'));
    for (const i of items) i.resolve();
  }

  /** Reads each session's bars and shows them to the broker (fills of earlier orders, marks). */
  private async prepareBatch(batch: SessionRunner[]): Promise<Prepared[]> {
    const { commits, router, clock } = this.c;
    const ready: SessionRunner[] = [];
    const idle: SessionRunner[] = [];
    for (const r of batch) {
      if (r.status !== 'running' || r.inFlight || r.definition === undefined) continue;
      const taken = clock.takeBars(r);
      if (taken === 'exhausted') this.failures.exhausted(r);
      if (taken === 'idle') idle.push(r);
      if (taken !== 'ready') continue;
      ready.push(r);
    }
    // A simulated broker does its work when called: calling it for the whole batch inside one transaction
    // makes that one commit. Orders decided on these bars are sent after, so they fill on later bars.
    const calls: { r: SessionRunner; bar: Bar; executions: Promise<BrokerBarEvent[]> }[] = [];
    commits.transact(() => {
      for (const r of ready) {
        if (r.pending!.shown) continue;
        for (const bar of r.pending!.bars) calls.push({ r, bar, executions: r.broker.onBar?.(bar, r.id) ?? Promise.resolve([]) });
      }
    });
    const settled = await Promise.allSettled(calls.map((c) => c.executions));
    const failed = new Set<SessionRunner>();
    commits.transact(() => {
      calls.forEach((c, i) => {
        const s = settled[i]!;
        // Held (storage fault) or closed meanwhile: the rebuilt runner's reconcile takes these fills from the broker.
        if (failed.has(c.r) || c.r.status === 'closed') return;
        if (s.status === 'rejected') {
          failed.add(c.r);
          this.failures.fail(c.r, s.reason);
          return;
        }
        router.applyExecutions(c.r, s.value);
        c.r.observeBar(c.bar);
      });
    });
    // Live venues: fills and states of open orders, asked before the strategy sees its book.
    // Also between a venue feed's bars (idle): a 1m feed must not leave fills unseen for a minute.
    await Promise.all([...ready.filter((r) => !failed.has(r)), ...idle].filter((r) => !r.broker.simulated).map((r) => this.venues.poll(r)));
    const prepared: Prepared[] = [];
    for (const r of ready) {
      if (failed.has(r) || r.status !== 'running') continue;
      const pending = r.pending!;
      if (!pending.shown) {
        pending.shown = true;
        r.updateEquity();
        // Changed in memory only (observeBar marked it dirty): the step's commit writes it once. Queuing it
        // here let another group's flush write it while the step was in the pool: two writes a step.
      }
      r.replayFirst = false;
      r.inFlight = true;
      prepared.push({
        runner: r,
        epoch: r.epoch,
        dueAt: pending.dueAt,
        request: { sessionId: r.id, strategyId: r.definition!.id, params: r.params, state: r.state, bars: pending.bars, book: sessionBook(r, this.c.o.orders) },
        poolMs: 0,
        batchSize: 0,
      });
    }
    return prepared;
  }

  /** Decides and sends the steps' orders, then commits each step (state, cursor) after its orders. */
  private async applyBatch(prepared: Prepared[], outcomes: BatchStepOutcome[]): Promise<(() => Promise<void>)[]> {
    const { o, commits, router } = this.c;
    const report = (p: Prepared, ok: boolean, failure: string | undefined, signals: number) =>
      o.onStep?.({ sessionId: p.runner.id, ok, failure, signals, poolMs: p.poolMs, batchSize: p.batchSize });
    const live: { p: Prepared; state: JsonValue; signals: number }[] = [];
    const sends: { p: Prepared; order: StoredOrder; ack?: Promise<BrokerOrderAck> }[] = [];
    commits.transact(() => {
      prepared.forEach((p, i) => {
        const r = p.runner;
        const outcome = outcomes[i]!;
        if (r.epoch !== p.epoch) return; // paused, stopped or closed while the step ran: nothing of it is used
        r.inFlight = false;
        if (r.status !== 'running') return;
        if (!outcome.ok) {
          this.failures.fail(r, outcome.error);
          report(p, false, kindOf(outcome.error), 0);
          return;
        }
        try {
          for (const signal of outcome.signals) {
            const order = router.decide(r, signal);
            if (order !== undefined) sends.push({ p, order });
          }
          live.push({ p, state: outcome.state, signals: outcome.signals.length });
        } catch (err) {
          this.failures.fail(r, err);
          report(p, false, kindOf(err), 0);
        }
      });
    });
    // The `new` rows are committed: now the orders may reach the broker.
    commits.transact(() => {
      for (const s of sends) s.ack = s.p.runner.broker.submit({ ...s.order, refPrice: s.p.runner.record.lastPrices[s.order.symbol] });
    });
    const acks = await Promise.allSettled(sends.map((s) => s.ack!));
    const followUps: (() => Promise<void>)[] = [];
    const failed = new Set<SessionRunner>();
    commits.transact(() => {
      sends.forEach((s, i) => {
        const r = s.p.runner;
        const ack = acks[i]!;
        if (failed.has(r)) return;
        if (ack.status === 'rejected') {
          // The order stays `new`: the retried step finds it and sends it again.
          failed.add(r);
          this.failures.fail(r, ack.reason);
          report(s.p, false, kindOf(ack.reason), 0);
          return;
        }
        router.acknowledge(r, s.order, ack.value, s.p.dueAt);
        if (ack.value.duplicate && ack.value.order.filledQty > 0) {
          followUps.push(() => r.lock(() => router.syncFills(r, s.order.clientOrderId)));
        }
      });
      for (const { p, state, signals } of live) {
        const r = p.runner;
        if (failed.has(r) || r.epoch !== p.epoch || r.status !== 'running') continue;
        this.commitStep(r, state);
        report(p, true, undefined, signals);
        const followUp = this.failures.checkRisk(r);
        if (followUp !== undefined) followUps.push(followUp);
      }
      commits.flush();
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
    this.c.commits.markDirty(r);
    this.c.counters.steps++;
    const lastBar = r.record.lastBarTime;
    if (lastBar !== undefined && lastBar - r.lastEquitySampleAt >= this.c.o.equitySampleMs) {
      r.lastEquitySampleAt = lastBar;
      this.c.commits.addEquity(r.id, { at: lastBar, equity: r.record.equity });
    }
  }
}
