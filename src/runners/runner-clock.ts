import type { ResolvedRunnerOptions } from './runner-options.js';
import type { SessionRunner } from './session-runner.js';
import { StepScheduler } from './step-scheduler.js';

/** What reading a due step's bars gave: bars pending for the step, or the end of a replay feed. @internal */
export type TakeBars = 'ready' | 'exhausted' | 'idle';

/**
 * When each runner steps, and on which bars. One timer (a min-heap of due times, StepScheduler) for all
 * sessions. A synthetic feed's step is due when its last bar has closed
 * (`startTime + (cursor + barsPerStep) * intervalMs`); a replay feed's every `intervalMs`. Synthetic feeds
 * follow the clock: a runner more than maxCatchUpSteps behind skips to the latest complete bars.
 * @internal
 */
export class RunnerClock {
  readonly #scheduler: StepScheduler<SessionRunner>;
  /** Runners whose feed wakes them when its bars arrive (venue feeds). */
  readonly #woken = new WeakSet<SessionRunner>();
  /** While held (the daemon's recovery), due runners wait here until release(). */
  #held: Set<SessionRunner> | undefined;

  constructor(
    private readonly o: ResolvedRunnerOptions,
    onDue: (due: SessionRunner[]) => void,
    private readonly isClosing: () => boolean,
  ) {
    this.#scheduler = new StepScheduler((due) => {
      if (this.#held === undefined) onDue(due);
      else for (const r of due) this.#held.add(r);
    }, o.batchWindowMs);
  }

  /** No step runs until release(): restoring 10,000 sessions does not compete with their first steps. */
  hold(): void {
    this.#held ??= new Set();
  }

  /**
   * Steps what came due while held, spread over up to a second (a millisecond per runner): 10,000 first steps
   * at once would be one burst of memory and latency. A synthetic feed behind the clock then catches up or
   * skips as usual.
   */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined || held.size === 0 || this.isClosing()) return;
    const due = [...held].filter((r) => r.status === 'running');
    const now = Date.now();
    const spreadMs = Math.min(1000, due.length);
    due.forEach((r, i) => this.#scheduler.schedule(r, now + Math.floor((i * spreadMs) / due.length)));
  }

  /** Schedules the runner's next step (nothing when it is not running, its feed ended or the service closes). */
  schedule(r: SessionRunner): void {
    if (this.isClosing() || r.status !== 'running' || r.feedExhausted) return;
    if (r.feed.onReady !== undefined && !this.#woken.has(r)) {
      this.#woken.add(r);
      r.feed.onReady(() => {
        if (this.isClosing() || r.status !== 'running' || r.inFlight || r.pending !== undefined || r.venueHold) return;
        // A stream's bar reaches every session on it in one turn: they are batched without the window's wait.
        if (r.retryAt > Date.now()) this.#scheduler.schedule(r, r.retryAt);
        else this.#scheduler.scheduleNow(r);
      });
    }
    // A venue feed's bar that arrived while the step ran is due now, not at the next interval.
    const due = r.pending === undefined && r.feed.hasDue?.() === true ? Date.now() : this.dueOf(r);
    this.#scheduler.schedule(r, Math.max(due, r.retryAt));
  }

  /** No more steps until scheduled again; a venue feed stops polling meanwhile (it catches up when next asked). */
  cancel(r: SessionRunner): void {
    this.#scheduler.cancel(r);
    r.feed.close?.();
  }

  close(): void {
    this.#scheduler.close();
  }

  /** A runner that starts or resumes now: its replay feed's next step is due at once. */
  startNow(r: SessionRunner): void {
    r.lastDueAt = Date.now() - r.feed.intervalMs;
  }

  /** When the next step's bars are complete. */
  dueOf(r: SessionRunner): number {
    if (r.pending !== undefined) return r.pending.dueAt;
    if (r.barMs !== undefined) return r.record.startTime + (r.feed.cursor + r.barsPerStep) * r.barMs;
    return r.lastDueAt + r.feed.intervalMs;
  }

  /**
   * The bars of the runner's due step, read from its feed into `r.pending` unless a retried step's are
   * already there. 'exhausted': a replay feed has no more bars. 'idle': a venue feed has no closed bar due yet.
   */
  takeBars(r: SessionRunner): TakeBars {
    if (r.pending !== undefined) return 'ready';
    this.skipAhead(r, false);
    const dueAt = this.dueOf(r);
    const bars = r.feed.next();
    if (bars === null) return 'exhausted';
    // A venue feed with no closed bar due yet: nothing to step, asked again at the next wake or interval.
    if (bars.length === 0) {
      r.lastDueAt = dueAt;
      return 'idle';
    }
    r.pending = { bars, cursorAfter: r.feed.cursor, dueAt, shown: false };
    // A feed that wakes its runner (venue bars) steps when a bar arrives, just after a close; its fallback
    // step (open orders asked between bars) falls half an interval later, so it never runs in the way of the
    // next close's step, where the bar-to-order time is spent.
    r.lastDueAt = r.feed.onReady !== undefined ? Date.now() - r.feed.intervalMs / 2 : dueAt;
    return 'ready';
  }

  /**
   * Synthetic feeds follow the clock: a runner more than maxCatchUpSteps behind (paused, restarted,
   * overloaded) jumps to the latest complete bars instead of trading on stale ones. Replay feeds never skip.
   */
  skipAhead(r: SessionRunner, dropPending: boolean): void {
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
      // Not queued: the next commit (the step's, a pause's) writes it; after a crash the older cursor is
      // simply skipped again.
      r.dirty = true;
    }
  }
}
