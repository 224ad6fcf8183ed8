import type { OrderRouter } from './order-router.js';
import type { RunnerClock } from './runner-clock.js';
import type { ResolvedRunnerOptions, RunnerHost } from './runner-options.js';
import type { SessionRunner } from './session-runner.js';
import type { StateCommits } from './state-commits.js';

/** Counters of RunnerService.stats(). @internal */
export interface RunnerCounters {
  steps: number;
  failedSteps: number;
  batches: number;
  ordersPlaced: number;
}

/** What the parts of RunnerService share: its options, its runners and the services over them. @internal */
export interface RunnerContext {
  readonly o: ResolvedRunnerOptions;
  readonly runners: Map<string, SessionRunner>;
  readonly router: OrderRouter;
  readonly commits: StateCommits;
  readonly clock: RunnerClock;
  readonly counters: RunnerCounters;
  host(): RunnerHost | undefined;
  /** The service is closing (shutdown): nothing new starts. */
  closing(): boolean;
}
