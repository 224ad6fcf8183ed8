import type { BatchStepOutcome, EvaluateRequest, EvaluateResponse, StrategyPool, StrategyPoolOptions, StrategyPoolStats } from '../runners/strategy-pool.js';

/** What the trading side uses of its StrategyPool (the runners, the backtest command, metrics). */
export type TradingPool = Pick<StrategyPool, 'size' | 'evaluate' | 'evaluateBatch' | 'stats' | 'close'>;

const NO_STATS: StrategyPoolStats = Object.freeze({
  threads: 0,
  queueSize: 0,
  utilization: 0,
  completed: 0,
  failed: 0,
  failedByKind: Object.freeze({ threw: 0, exited: 0, timeout: 0 }),
  workerErrors: 0,
});

/**
 * A StrategyPool made by `start()` or by the first step, whichever comes first. The daemon starts it right
 * after READY: its threads (each a Node isolate importing the strategies) then boot without competing with the
 * daemon's start for the CPU, and piscina is not even loaded before. A step asked for earlier (a session
 * recovered at start) creates it and waits for a thread, as it would have waited for the threads anyway.
 */
export class DeferredStrategyPool implements TradingPool {
  readonly size: number;
  readonly #options: StrategyPoolOptions & { size: number };
  #pool: Promise<StrategyPool> | undefined;
  #created: StrategyPool | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: StrategyPoolOptions & { size: number }) {
    this.#options = options;
    this.size = options.size;
  }

  /** Creates the pool (its threads start); rejects as StrategyPool's constructor throws. Idempotent; nothing after close(). */
  start(): Promise<void> {
    if (this.#closing !== undefined) return Promise.resolve();
    return this.#open().then(() => undefined);
  }

  async evaluate(request: EvaluateRequest): Promise<EvaluateResponse> {
    return (await this.#live()).evaluate(request);
  }

  async evaluateBatch(requests: readonly EvaluateRequest[]): Promise<BatchStepOutcome[]> {
    return (await this.#live()).evaluateBatch(requests);
  }

  /** The pool's stats; zeros (no thread) until it is created. */
  stats(): StrategyPoolStats {
    return this.#created?.stats() ?? { ...NO_STATS, failedByKind: { ...NO_STATS.failedByKind } };
  }

  /** Closes the pool if it was created (waiting for a creation under way). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const pool = await this.#pool?.catch(() => undefined);
      await pool?.close();
    })();
    return this.#closing;
  }

  #open(): Promise<StrategyPool> {
    this.#pool ??= import('../runners/strategy-pool.js').then((m) => {
      this.#created = new m.StrategyPool(this.#options);
      return this.#created;
    });
    return this.#pool;
  }

  /** The pool for a step: StrategyPoolClosedError once closed, as StrategyPool itself answers. */
  async #live(): Promise<StrategyPool> {
    if (this.#closing !== undefined) {
      const { StrategyPoolClosedError } = await import('../runners/strategy-pool.js');
      throw new StrategyPoolClosedError();
    }
    return this.#open();
  }
}
