import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { Bar, Signal } from '../domain/market.js';
import { StrategyNotFoundError, ValidationError } from '../domain/errors.js';
import { resolveModulePaths } from '../strategies/catalog.js';
import { EMPTY_BOOK, describeNonJson, type JsonValue, type StrategyBook, type StrategyParams } from '../strategies/strategy-api.js';
import {
  BATCH_CONTROL,
  BATCH_PHASE,
  isTaskProgressMessage,
  type EvaluateBatchResult,
  type EvaluateBatchTask,
  type EvaluateResult,
  type EvaluateTask,
  type StrategyWorkerData,
  type TaskProgressMessage,
} from '../../workers/protocol.js';

/** Stable code of a failed strategy step; crosses process boundaries as `STRATEGY_FAILED: message`. */
export const STRATEGY_FAILED = 'STRATEGY_FAILED';

/** How a step failed: the strategy threw (or returned garbage), its thread died, or it ran too long. */
export type StrategyStepFailureKind = 'threw' | 'exited' | 'timeout';

/** A step of one session failed; other sessions' steps are unaffected. */
export class StrategyStepError extends Error {
  readonly code = STRATEGY_FAILED;

  constructor(
    readonly kind: StrategyStepFailureKind,
    readonly sessionId: string,
    readonly strategyId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = this.constructor.name;
  }

  toJSON(): { code: typeof STRATEGY_FAILED; kind: StrategyStepFailureKind; sessionId: string; strategyId: string; message: string } {
    return { code: this.code, kind: this.kind, sessionId: this.sessionId, strategyId: this.strategyId, message: this.message };
  }

  /** `STRATEGY_FAILED: message`, the form that crosses the queue. */
  toWire(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** The pool's failure to run a task at all (it is closed). */
export class StrategyPoolClosedError extends Error {
  readonly code = 'STRATEGY_POOL_CLOSED';

  constructor() {
    super('the strategy pool is closed');
    this.name = this.constructor.name;
  }
}

/** One step for one session. */
export interface EvaluateRequest {
  sessionId: string;
  strategyId: string;
  /** Validated params (StrategyCatalog.resolve); the worker validates them again. */
  params: StrategyParams;
  state: JsonValue;
  bars: Bar[];
  /** The session's book the step sees beside the bars. @defaultValue EMPTY_BOOK */
  book?: StrategyBook | undefined;
}

export interface EvaluateResponse {
  state: JsonValue;
  signals: Signal[];
}

/** One step's outcome in a batch: the step's result, or why that step (only) failed. */
export type BatchStepOutcome = ({ ok: true } & EvaluateResponse) | { ok: false; error: Error };

export interface StrategyPoolOptions {
  /**
   * Worker threads; fixed (min = max) so a replaced thread keeps the pool at size.
   * @defaultValue 2
   */
  size?: number;
  /**
   * Longest a step may run once a thread has started it; past it the thread is terminated and
   * replaced. Time queued for a thread does not count.
   * @defaultValue 1000
   */
  stepTimeoutMs?: number;
  /**
   * Longest a thread may take to import the strategy modules before its first step.
   * @defaultValue 10000
   */
  loadTimeoutMs?: number;
  /**
   * User strategy modules, loaded in every worker next to the built-ins.
   * @defaultValue `[]`
   */
  modulePaths?: string[];
  /**
   * Called with errors of threads that have no task running (e.g. a strategy's stray timer
   * throwing after its step returned). Without it they are only counted.
   */
  onWorkerError?: (error: Error) => void;
}

export const DEFAULT_STRATEGY_POOL_OPTIONS = Object.freeze({
  size: 2,
  stepTimeoutMs: 1000,
  loadTimeoutMs: 10_000,
  modulePaths: [] as string[],
});

export interface StrategyPoolStats {
  /** Live worker threads. */
  threads: number;
  /** Tasks waiting for a thread. */
  queueSize: number;
  /** Piscina's utilization: busy time / capacity since start, 0..1. */
  utilization: number;
  /** Steps that returned a result. */
  completed: number;
  /** Steps that failed (StrategyStepError, not found, bad params). */
  failed: number;
  /** Failures by kind. */
  failedByKind: Record<StrategyStepFailureKind, number>;
  /** Thread errors outside any task. */
  workerErrors: number;
}

interface Pending {
  controller: AbortController;
  timer: NodeJS.Timeout | undefined;
  timedOut: { phase: TaskProgressMessage['phase']; ms: number } | undefined;
}

interface PendingBatch {
  controller: AbortController;
  control: Int32Array;
  base: number;
  timedOut: { phase: 'load' | 'step'; index: number; ms: number } | undefined;
}

/**
 * The compiled worker when it exists (dist), else the TypeScript source (dev, under tsx).
 * @internal
 */
export function strategyWorkerFile(): { filename: string; typescript: boolean } {
  const js = fileURLToPath(new URL('../../workers/strategy-worker.js', import.meta.url));
  if (existsSync(js)) return { filename: js, typescript: false };
  return { filename: fileURLToPath(new URL('../../workers/strategy-worker.ts', import.meta.url)), typescript: true };
}

/**
 * The daemon's strategy worker pool: a few threads serving every session's steps. Strategy
 * state travels with each task, so any thread serves any session, and a strategy that throws,
 * kills its thread or hangs fails only its own step.
 *
 * @example
 * const pool = new StrategyPool({ size: 2, stepTimeoutMs: 1000 });
 * const { state, signals } = await pool.evaluate({ sessionId, strategyId: 'sma-crossover', params, state, bars });
 * await pool.close();
 */
export class StrategyPool {
  readonly size: number;
  readonly stepTimeoutMs: number;
  readonly loadTimeoutMs: number;
  readonly #piscina: Piscina<EvaluateTask, EvaluateResult>;
  readonly #pending = new Map<number, Pending>();
  readonly #onWorkerError: ((error: Error) => void) | undefined;
  #nextTaskId = 1;
  #completed = 0;
  #failedByKind: Record<StrategyStepFailureKind, number> = { threw: 0, exited: 0, timeout: 0 };
  #otherFailures = 0;
  #workerErrors = 0;
  #closing: Promise<void> | undefined;
  readonly #batches = new Set<PendingBatch>();
  #sweeper: NodeJS.Timeout | undefined;
  readonly #sweepMs: number;

  constructor(options: StrategyPoolOptions = {}) {
    const opts = { ...DEFAULT_STRATEGY_POOL_OPTIONS, ...stripUndefined(options) };
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new ValidationError('options.size must be a positive integer');
    if (!Number.isInteger(opts.stepTimeoutMs) || opts.stepTimeoutMs < 1) {
      throw new ValidationError('options.stepTimeoutMs must be a positive integer');
    }
    if (!Number.isInteger(opts.loadTimeoutMs) || opts.loadTimeoutMs < 1) {
      throw new ValidationError('options.loadTimeoutMs must be a positive integer');
    }
    if (!Array.isArray(opts.modulePaths) || opts.modulePaths.some((p) => typeof p !== 'string' || p.length === 0)) {
      throw new ValidationError('options.modulePaths must be an array of non-empty strings');
    }
    this.size = opts.size;
    this.stepTimeoutMs = opts.stepTimeoutMs;
    this.loadTimeoutMs = opts.loadTimeoutMs;
    this.#onWorkerError = options.onWorkerError;
    // Batches are timed by polling their control slots: a tenth of the timeout keeps detection within 10% late.
    this.#sweepMs = Math.min(100, Math.max(5, Math.floor(Math.min(opts.stepTimeoutMs, opts.loadTimeoutMs) / 10)));

    const worker = strategyWorkerFile();
    const workerData: StrategyWorkerData = {
      modulePaths: resolveModulePaths(opts.modulePaths),
      // A query keeps the probe's cached failure off the module's plain URL.
      tsxProbeUrl: worker.typescript ? `${pathToFileURL(join(dirname(worker.filename), 'protocol.ts')).href}?tsx-probe` : null,
    };
    this.#piscina = new Piscina<EvaluateTask, EvaluateResult>({
      filename: worker.filename,
      name: 'evaluate',
      minThreads: opts.size,
      maxThreads: opts.size,
      idleTimeout: Infinity,
      workerData,
      // A .ts worker needs tsx's loader; a worker inherits the parent's execArgv, so add it only when absent.
      ...(worker.typescript && !hasTsxLoader(process.execArgv) ? { execArgv: [...process.execArgv, '--import', 'tsx'] } : {}),
    });
    this.#piscina.on('message', (message: unknown) => {
      if (isTaskProgressMessage(message)) this.#onProgress(message);
    });
    // Without a listener, Piscina's 'error' event (a thread dying with no task) would crash the daemon.
    this.#piscina.on('error', (error: Error) => {
      this.#workerErrors++;
      this.#onWorkerError?.(error);
    });
  }

  /**
   * Runs one step of one session on a worker thread.
   * @throws StrategyStepError (`kind` threw | exited | timeout); StrategyNotFoundError when the
   * workers do not know the strategy; ValidationError for bad params; StrategyPoolClosedError.
   */
  async evaluate(request: EvaluateRequest): Promise<EvaluateResponse> {
    if (this.#closing !== undefined) throw new StrategyPoolClosedError();
    // Checked here: a value that cannot be cloned would otherwise surface as a failure of the thread.
    const problem =
      describeNonJson(request.state, 'state') ??
      describeNonJson(request.params, 'params') ??
      (request.book === undefined ? null : describeNonJson(request.book, 'book')) ??
      (Array.isArray(request.bars) ? null : 'bars must be an array');
    if (problem !== null) {
      throw this.#fail(new ValidationError(`step of session ${request.sessionId} rejected: ${problem}`));
    }
    const taskId = this.#nextTaskId++;
    const pending: Pending = { controller: new AbortController(), timer: undefined, timedOut: undefined };
    this.#pending.set(taskId, pending);
    const task: EvaluateTask = {
      taskId,
      sessionId: request.sessionId,
      strategyId: request.strategyId,
      params: request.params,
      state: request.state,
      bars: request.bars,
      book: request.book ?? EMPTY_BOOK,
    };
    let result: EvaluateResult;
    try {
      result = await this.#piscina.run(task, { signal: pending.controller.signal });
    } catch (err) {
      throw this.#fail(this.#runError(request, pending, err));
    } finally {
      if (pending.timer !== undefined) clearTimeout(pending.timer);
      this.#pending.delete(taskId);
    }
    if (result.ok) {
      this.#completed++;
      return { state: result.state, signals: result.signals };
    }
    throw this.#fail(resultError(request, result));
  }

  /**
   * Runs the steps of several sessions as ONE pool task (per-task overhead is paid once per batch) and
   * returns one outcome per request, in order. Isolation is per step, as with `evaluate`:
   * - a strategy that throws (or returns garbage) fails only its own step, inside the worker;
   * - each step is timed on its own (`stepTimeoutMs`, run time only): the worker records which step it is
   *   on in shared memory, so a hung step is named and failed as `timeout`, and its thread is replaced;
   * - when the task fails as a whole (a thread exit, a hang, a value that cannot be cloned), every other
   *   step of the batch is run again one per task, so only the culprit fails. Steps are pure functions of
   *   (state, bars, params, book), so running one again is safe.
   * Never rejects except with StrategyPoolClosedError.
   */
  async evaluateBatch(requests: readonly EvaluateRequest[]): Promise<BatchStepOutcome[]> {
    if (this.#closing !== undefined) throw new StrategyPoolClosedError();
    if (requests.length === 0) return [];
    if (requests.length === 1) return [await this.#single(requests[0]!)];
    const taskId = this.#nextTaskId++;
    const control = new SharedArrayBuffer(BATCH_CONTROL.length * Int32Array.BYTES_PER_ELEMENT);
    const pending: PendingBatch = { controller: new AbortController(), control: new Int32Array(control), base: Date.now(), timedOut: undefined };
    const task: EvaluateBatchTask = {
      taskId,
      control,
      base: pending.base,
      steps: requests.map((r) => ({ sessionId: r.sessionId, strategyId: r.strategyId, params: r.params, state: r.state, bars: r.bars, book: r.book ?? EMPTY_BOOK })),
    };
    this.#batches.add(pending);
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepMs);
    let result: EvaluateBatchResult;
    try {
      // One pool, two task shapes: `name` picks the worker's export.
      const piscina = this.#piscina as unknown as Piscina<EvaluateBatchTask, EvaluateBatchResult>;
      result = await piscina.run(task, { name: 'evaluateBatch', signal: pending.controller.signal });
    } catch (err) {
      if (this.#closing !== undefined) return requests.map(() => ({ ok: false, error: new StrategyPoolClosedError() }));
      return this.#retrySingly(requests, pending);
    } finally {
      this.#batches.delete(pending);
      if (this.#batches.size === 0 && this.#sweeper !== undefined) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }
    return result.results.map((r, i): BatchStepOutcome => {
      if (r.ok) {
        this.#completed++;
        return { ok: true, state: r.state, signals: r.signals };
      }
      return { ok: false, error: this.#fail(resultError(requests[i]!, r)) };
    });
  }

  /** Counters and gauges for /metrics. */
  stats(): StrategyPoolStats {
    const failedSteps = this.#failedByKind.threw + this.#failedByKind.exited + this.#failedByKind.timeout;
    return {
      threads: this.#piscina.threads.length,
      queueSize: this.#piscina.queueSize,
      utilization: this.#piscina.utilization,
      completed: this.#completed,
      failed: failedSteps + this.#otherFailures,
      failedByKind: { ...this.#failedByKind },
      workerErrors: this.#workerErrors,
    };
  }

  /** Terminates the threads; pending steps reject. Idempotent: a second call waits on the first. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const pending of this.#pending.values()) if (pending.timer !== undefined) clearTimeout(pending.timer);
      if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
      this.#sweeper = undefined;
      await this.#piscina.destroy();
    })();
    return this.#closing;
  }

  async #single(request: EvaluateRequest): Promise<BatchStepOutcome> {
    try {
      const r = await this.evaluate(request);
      return { ok: true, state: r.state, signals: r.signals };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
    }
  }

  async #retrySingly(requests: readonly EvaluateRequest[], pending: PendingBatch): Promise<BatchStepOutcome[]> {
    const hung = pending.timedOut?.phase === 'step' ? pending.timedOut : undefined;
    return Promise.all(
      requests.map((request, i): Promise<BatchStepOutcome> => {
        if (hung !== undefined && hung.index === i) {
          // The culprit is known: running it again would only hang another thread for as long.
          const error = new StrategyStepError(
            'timeout',
            request.sessionId,
            request.strategyId,
            `strategy ${request.strategyId} (session ${request.sessionId}): step ran longer than ${hung.ms} ms; its thread was terminated`,
          );
          return Promise.resolve({ ok: false, error: this.#fail(error) });
        }
        return this.#single(request);
      }),
    );
  }

  #sweep(): void {
    const now = Date.now();
    for (const b of this.#batches) {
      if (b.timedOut !== undefined) continue;
      const phase = Atomics.load(b.control, BATCH_CONTROL.phase);
      if (phase !== BATCH_PHASE.load && phase !== BATCH_PHASE.step) continue;
      const index = Atomics.load(b.control, BATCH_CONTROL.index);
      const elapsed = now - b.base - Atomics.load(b.control, BATCH_CONTROL.startedAt);
      const ms = phase === BATCH_PHASE.load ? this.loadTimeoutMs : this.stepTimeoutMs;
      if (elapsed <= ms) continue;
      b.timedOut = { phase: phase === BATCH_PHASE.load ? 'load' : 'step', index, ms };
      // Piscina terminates the thread running an aborted task and starts a replacement.
      b.controller.abort(new Error(`batch ${b.timedOut.phase} timed out after ${ms} ms`));
    }
  }

  #onProgress(message: TaskProgressMessage): void {
    // Progress and results travel on different ports: a late progress message finds no task.
    const pending = this.#pending.get(message.taskId);
    if (pending === undefined) return;
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    const ms = message.phase === 'load' ? this.loadTimeoutMs : this.stepTimeoutMs;
    pending.timer = setTimeout(() => {
      pending.timedOut = { phase: message.phase, ms };
      // Piscina terminates the thread running an aborted task and starts a replacement.
      pending.controller.abort(new Error(`${message.phase} timed out after ${ms} ms`));
    }, ms);
  }

  #runError(request: EvaluateRequest, pending: Pending, err: unknown): Error {
    const message = err instanceof Error ? err.message : String(err);
    if (pending.timedOut !== undefined) {
      const { phase, ms } = pending.timedOut;
      const what = phase === 'load' ? 'loading strategy modules' : 'step';
      return new StrategyStepError(
        'timeout',
        request.sessionId,
        request.strategyId,
        `strategy ${request.strategyId} (session ${request.sessionId}): ${what} ran longer than ${ms} ms; its thread was terminated`,
        { cause: err },
      );
    }
    if (this.#closing !== undefined) return new StrategyPoolClosedError();
    if (err instanceof Error && err.name === 'DataCloneError') {
      return new ValidationError(`step of session ${request.sessionId} rejected: ${message}`);
    }
    // The worker never throws from a task, so any other rejection is a thread that died under it.
    return new StrategyStepError(
      'exited',
      request.sessionId,
      request.strategyId,
      `strategy ${request.strategyId} (session ${request.sessionId}): worker thread died during the step (${message})`,
      { cause: err },
    );
  }

  #fail(error: Error): Error {
    if (error instanceof StrategyStepError) this.#failedByKind[error.kind]++;
    else if (!(error instanceof StrategyPoolClosedError)) this.#otherFailures++;
    return error;
  }
}

function resultError(request: EvaluateRequest, result: Extract<EvaluateResult, { ok: false }>): Error {
  switch (result.code) {
    case 'STRATEGY_NOT_FOUND':
      return new StrategyNotFoundError(request.strategyId);
    case 'VALIDATION_ERROR':
      return new ValidationError(result.message);
    case 'LOAD_FAILED':
    case 'STRATEGY_THREW':
      return new StrategyStepError(
        'threw',
        request.sessionId,
        request.strategyId,
        `strategy ${request.strategyId} (session ${request.sessionId}) threw: ${result.message}`,
      );
  }
}

function hasTsxLoader(execArgv: readonly string[]): boolean {
  return execArgv.some((arg) => arg.includes('tsx'));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
