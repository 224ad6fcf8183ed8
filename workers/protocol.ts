// The typed messages between StrategyPool (main thread) and strategy-worker (worker threads).
// Types and constants only: both sides import this file.
import type { Bar, Signal } from '../src/domain/market.js';
import type { JsonValue, StrategyBook, StrategyParams } from '../src/strategies/strategy-api.js';

/** `workerData` every strategy worker starts with. */
export interface StrategyWorkerData {
  /** Absolute paths of user strategy modules, loaded next to the built-ins. */
  modulePaths: string[];
  /**
   * Dev only (the worker is the TypeScript source, run under tsx): URL of a side-effect-free .ts
   * module. When importing it fails, the thread has no tsx ESM hooks (tsx registers them in
   * worker threads only on recent Node versions) and the worker registers them itself.
   */
  tsxProbeUrl: string | null;
}

/** One step of one session: the pool task. */
export interface EvaluateTask {
  /** Pool-assigned, unique per pool: ties progress messages to their task. */
  taskId: number;
  sessionId: string;
  strategyId: string;
  params: StrategyParams;
  state: JsonValue;
  bars: Bar[];
  /** The session's book beside the bars (positions, open orders, cash, equity, buying power). */
  book: StrategyBook;
}

/** Failure codes a worker reports in a result (the thread itself stayed healthy). */
export type EvaluateFailureCode =
  /** The strategy's step or initial checks threw, or it returned an invalid result. */
  | 'STRATEGY_THREW'
  /** The worker has no strategy with this id. */
  | 'STRATEGY_NOT_FOUND'
  /** The params failed the strategy's schema. */
  | 'VALIDATION_ERROR'
  /** The worker could not load the strategy modules. */
  | 'LOAD_FAILED';

export type EvaluateResult =
  | { ok: true; state: JsonValue; signals: Signal[] }
  | { ok: false; code: EvaluateFailureCode; message: string; stack?: string };

/** `type` of the progress message a worker posts on its parentPort. */
export const TASK_PROGRESS = 'sessiond:strategy-task-progress';

/**
 * Posted by a worker when a task enters a phase, so the pool times the phase itself rather than
 * the wait in the queue: `load` (first task on a thread: importing strategy modules), then `step`.
 */
export interface TaskProgressMessage {
  type: typeof TASK_PROGRESS;
  taskId: number;
  phase: 'load' | 'step';
}

/**
 * Several sessions' steps in one pool task: per-task overhead (message round trip, scheduling) is paid once
 * for the batch. Each step runs in its own try/catch, so a throw fails only its session.
 */
export interface EvaluateBatchTask {
  taskId: number;
  /**
   * Shared with the main thread (not copied): the worker writes which step it is on and when that step
   * started, so the pool times each step, not the batch, and names the culprit of a hang. See BATCH_CONTROL.
   */
  control: SharedArrayBuffer;
  /** Epoch ms the control timestamps are relative to (int32 slots). */
  base: number;
  steps: BatchStep[];
}

/** One session's step inside a batch: an EvaluateTask without its own task id. */
export type BatchStep = Omit<EvaluateTask, 'taskId'>;

/** Per-step results, in the order of `steps`. */
export interface EvaluateBatchResult {
  results: EvaluateResult[];
}

/** Int32 slots of EvaluateBatchTask.control. */
export const BATCH_CONTROL = Object.freeze({
  /** One of BATCH_PHASE. */
  phase: 0,
  /** Index into `steps` of the step running now. */
  index: 1,
  /** When the current phase (load) or step started: epoch ms - base. */
  startedAt: 2,
  /** Slots in all. */
  length: 3,
});

export const BATCH_PHASE = Object.freeze({ queued: 0, load: 1, step: 2, done: 3 });

export function isTaskProgressMessage(value: unknown): value is TaskProgressMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { type?: unknown }).type === TASK_PROGRESS &&
    typeof (value as { taskId?: unknown }).taskId === 'number'
  );
}
