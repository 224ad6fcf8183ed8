// Piscina worker entry: the only code that runs strategy steps. Kept out of every barrel.
import * as workerThreads from 'node:worker_threads';
import { loadStrategyDefinitions } from '../src/strategies/catalog.js';
import {
  parseStrategyParams,
  runStrategyStep,
  type AnyStrategyDefinition,
  type StrategyParams,
} from '../src/strategies/strategy-api.js';
import {
  BATCH_CONTROL,
  BATCH_PHASE,
  TASK_PROGRESS,
  type EvaluateBatchResult,
  type EvaluateBatchTask,
  type EvaluateResult,
  type EvaluateTask,
  type StrategyWorkerData,
  type TaskProgressMessage,
} from './protocol.js';

const { parentPort } = workerThreads;
const data = (workerThreads.workerData ?? { modulePaths: [], tsxProbeUrl: null }) as StrategyWorkerData;

// Loaded on the first task, not with top-level await: Piscina loads this file with require()
// first (under tsx, compiled to CJS), where top-level await is not allowed.
let strategies: Promise<Map<string, { definition: AnyStrategyDefinition }>> | undefined;
let loaded = false;

async function loadStrategies(): Promise<Map<string, { definition: AnyStrategyDefinition }>> {
  if (data.tsxProbeUrl !== null) await ensureTsxHooks(data.tsxProbeUrl);
  return loadStrategyDefinitions(data.modulePaths);
}

// Probing beats checking Node versions: which versions get tsx's hooks in workers is tsx's business.
async function ensureTsxHooks(probeUrl: string): Promise<void> {
  try {
    await import(probeUrl);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    const { register } = await import('tsx/esm/api');
    register();
  }
}

function progress(taskId: number, phase: TaskProgressMessage['phase']): void {
  const message: TaskProgressMessage = { type: TASK_PROGRESS, taskId, phase };
  parentPort?.postMessage(message);
}

/** Runs one step. Never throws: failures come back as `{ ok: false }`; only a dying thread rejects. */
export async function evaluate(task: EvaluateTask): Promise<EvaluateResult> {
  let registry: Map<string, { definition: AnyStrategyDefinition }>;
  try {
    if (!loaded) progress(task.taskId, 'load');
    strategies ??= loadStrategies();
    registry = await strategies;
    loaded = true;
  } catch (err) {
    return failure('LOAD_FAILED', err);
  }
  const entry = registry.get(task.strategyId);
  if (entry === undefined) {
    return { ok: false, code: 'STRATEGY_NOT_FOUND', message: `strategy ${task.strategyId} is not known` };
  }
  let params;
  try {
    params = parseStrategyParams(entry.definition, task.params);
  } catch (err) {
    return failure('VALIDATION_ERROR', err);
  }
  progress(task.taskId, 'step');
  try {
    const { state, signals } = runStrategyStep(entry.definition, task.state, task.bars, params, task.book);
    return { ok: true, state, signals };
  } catch (err) {
    return failure('STRATEGY_THREW', err);
  }
}

// Parsed params by strategy and params JSON: batches re-send the same params every step, and a zod parse per
// step would cost more than many steps. Bounded: cleared when full.
const PARAMS_CACHE_LIMIT = 10_000;
const paramsCache = new Map<string, { ok: true; params: StrategyParams } | { ok: false; result: EvaluateResult }>();

function cachedParams(definition: AnyStrategyDefinition, strategyId: string, raw: StrategyParams) {
  const key = `${strategyId}\u0000${JSON.stringify(raw)}`;
  let entry = paramsCache.get(key);
  if (entry === undefined) {
    try {
      entry = { ok: true, params: parseStrategyParams(definition, raw) };
    } catch (err) {
      entry = { ok: false, result: failure('VALIDATION_ERROR', err) };
    }
    if (paramsCache.size >= PARAMS_CACHE_LIMIT) paramsCache.clear();
    paramsCache.set(key, entry);
  }
  return entry;
}

/**
 * Runs the steps of several sessions, each in its own try/catch: a throw fails only its step. Before each
 * step it writes the step's index and start time into `task.control`, where the pool reads them to time the
 * step (a hang is caught per step, whatever the batch size) and to name the session that hung or killed the
 * thread. Never throws; only a dying thread rejects.
 */
export async function evaluateBatch(task: EvaluateBatchTask): Promise<EvaluateBatchResult> {
  const control = new Int32Array(task.control);
  const mark = (phase: number, index: number): void => {
    Atomics.store(control, BATCH_CONTROL.index, index);
    Atomics.store(control, BATCH_CONTROL.startedAt, Date.now() - task.base);
    Atomics.store(control, BATCH_CONTROL.phase, phase);
  };
  let registry: Map<string, { definition: AnyStrategyDefinition }>;
  try {
    if (!loaded) mark(BATCH_PHASE.load, 0);
    strategies ??= loadStrategies();
    registry = await strategies;
    loaded = true;
  } catch (err) {
    const result = failure('LOAD_FAILED', err);
    return { results: task.steps.map(() => result) };
  }
  const results: EvaluateResult[] = new Array(task.steps.length);
  for (let i = 0; i < task.steps.length; i++) {
    const step = task.steps[i]!;
    const entry = registry.get(step.strategyId);
    if (entry === undefined) {
      results[i] = { ok: false, code: 'STRATEGY_NOT_FOUND', message: `strategy ${step.strategyId} is not known` };
      continue;
    }
    const params = cachedParams(entry.definition, step.strategyId, step.params);
    if (!params.ok) {
      results[i] = params.result;
      continue;
    }
    mark(BATCH_PHASE.step, i);
    try {
      const { state, signals } = runStrategyStep(entry.definition, step.state, step.bars, params.params, step.book);
      results[i] = { ok: true, state, signals };
    } catch (err) {
      results[i] = failure('STRATEGY_THREW', err);
    }
  }
  Atomics.store(control, BATCH_CONTROL.phase, BATCH_PHASE.done);
  return { results };
}

function failure(code: Extract<EvaluateResult, { ok: false }>['code'], err: unknown): EvaluateResult {
  if (err instanceof Error) {
    return err.stack === undefined
      ? { ok: false, code, message: err.message }
      : { ok: false, code, message: err.message, stack: err.stack };
  }
  return { ok: false, code, message: String(err) };
}
