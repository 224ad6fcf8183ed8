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
