// Piscina worker entry: the only code that runs strategy steps. Kept out of every barrel.
import * as workerThreads from 'node:worker_threads';
import { loadStrategyDefinitions } from '../src/strategies/catalog.js';
import { parseStrategyParams, runStrategyStep, type AnyStrategyDefinition } from '../src/strategies/strategy-api.js';
import {
  TASK_PROGRESS,
  type EvaluateResult,
  type EvaluateTask,
  type StrategyWorkerData,
  type TaskProgressMessage,
} from './protocol.js';

const { parentPort } = workerThreads;
const data = (workerThreads.workerData ?? { modulePaths: [], registerTsx: false }) as StrategyWorkerData;

// Loaded on the first task, not with top-level await: a TS worker under tsx is required as CJS,
// where top-level await is a syntax error.
let strategies: Promise<Map<string, { definition: AnyStrategyDefinition }>> | undefined;
let loaded = false;

async function loadStrategies(): Promise<Map<string, { definition: AnyStrategyDefinition }>> {
  // tsx registers its hooks in worker threads itself where Node has `isInternalThread` (22.14+).
  if (data.registerTsx && !('isInternalThread' in workerThreads)) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  return loadStrategyDefinitions(data.modulePaths);
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
    const { state, signals } = runStrategyStep(entry.definition, task.state, task.bars, params);
    return { ok: true, state, signals };
  } catch (err) {
    return failure('STRATEGY_THREW', err);
  }
}

function failure(code: Extract<EvaluateResult, { ok: false }>['code'], err: unknown): EvaluateResult {
  if (err instanceof Error) {
    return err.stack === undefined
      ? { ok: false, code, message: err.message }
      : { ok: false, code, message: err.message, stack: err.stack };
  }
  return { ok: false, code, message: String(err) };
}
