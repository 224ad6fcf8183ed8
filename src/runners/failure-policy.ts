import { isDailyLossBreached } from '../domain/risk.js';
import { message, round, wire } from './runner-errors.js';
import type { RunnerContext } from './runner-context.js';
import type { SessionRunner } from './session-runner.js';

/**
 * What happens to a runner whose step failed, whose risk controls tripped or whose feed ended: restarts
 * with exponential backoff up to maxRestarts (then the session is stopped with `runner_failed`), a pause on
 * a risk breach (open orders cancelled), a stop on a replay feed's end. Storage faults are not the
 * strategy's fault: they go to `holdStorage` and count nothing.
 * @internal
 */
export class FailurePolicy {
  constructor(
    private readonly c: RunnerContext,
    private readonly holdStorage: (sessionId: string | undefined, err: unknown) => boolean,
  ) {}

  fail(r: SessionRunner, err: unknown): void {
    if (r.status !== 'running') return;
    // Not the strategy's fault and not counted against maxRestarts: the runners hold instead.
    if (this.holdStorage(undefined, err)) return;
    const { o } = this.c;
    const text = wire(err);
    r.failureStreak++;
    r.record.failures++;
    r.record.lastError = text;
    this.c.commits.markDirty(r, true);
    this.c.counters.failedSteps++;
    if (r.failureStreak > o.maxRestarts) {
      this.halt(r, 'failed');
      const error = `${text} (runner restarted ${o.maxRestarts} times)`;
      o.logger?.error({ sessionId: r.id, err: text, restarts: o.maxRestarts }, 'runner failed: stopping the session');
      void this.c.host()?.handleRunnerFailure(r.id, error).catch((e: unknown) => o.logger?.error({ sessionId: r.id, err: message(e) }, 'runner failure not applied'));
      return;
    }
    const backoff = o.restartBackoffMs * 2 ** (r.failureStreak - 1);
    r.retryAt = Date.now() + backoff;
    o.logger?.warn({ sessionId: r.id, err: text, attempt: r.failureStreak, backoffMs: backoff }, 'step failed: restarting the runner');
  }

  halt(r: SessionRunner, status: 'paused' | 'stopped' | 'failed'): void {
    r.status = status;
    r.epoch++;
    r.inFlight = false;
    this.c.clock.cancel(r);
    // What stateCommitMs held back is written now: a paused session resumes exactly where it stopped.
    this.c.commits.commitHeldBack(r);
  }

  /**
   * After a committed step: maxDailyLoss reached or equity exhausted halts the runner at once and returns
   * the follow-up (cancel open orders, pause the session) to run under the session's lock.
   */
  checkRisk(r: SessionRunner): (() => Promise<void>) | undefined {
    const daily = r.dailyPnl();
    if (isDailyLossBreached(daily, r.session.riskControls)) {
      this.halt(r, 'paused');
      const reason = `maxDailyLoss ${round(r.session.riskControls.maxDailyLoss!)} reached with daily pnl ${round(daily)}`;
      return () => r.lock(() => this.breach(r, reason));
    }
    if (r.record.equity <= 0) {
      // Only shorts (paperBroker.allowShort) or a venue's own margin can get here: never silently.
      this.halt(r, 'paused');
      return () => r.lock(() => this.breach(r, `equity ${round(r.record.equity)} at or below 0`));
    }
    return undefined;
  }

  /** A replay feed has no more bars: the session is stopped with `feed_exhausted`. */
  exhausted(r: SessionRunner): void {
    r.feedExhausted = true;
    this.c.clock.cancel(r);
    this.c.o.logger?.info({ sessionId: r.id, cursor: r.feed.cursor }, 'replay feed exhausted: stopping the session');
    void this.c.host()?.stopSession(r.id, 'feed_exhausted', { source: 'runner' }).catch(() => undefined);
  }

  /** maxDailyLoss reached or equity exhausted (the runner is already halted): open orders cancelled, the session paused. */
  private async breach(r: SessionRunner, reason: string): Promise<void> {
    const { o } = this.c;
    await this.c.router.cancelOpen(r, `risk_breach: ${reason}`);
    o.logger?.warn({ sessionId: r.id, dailyPnl: r.dailyPnl(), equity: r.record.equity, reason }, 'risk breach: pausing the session');
    void this.c.host()?.handleRiskBreach(r.id, reason).catch((err: unknown) => o.logger?.error({ sessionId: r.id, err: message(err) }, 'risk breach not applied'));
  }
}
