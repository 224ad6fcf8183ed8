import type { Broker } from '../brokers/broker.js';
import { ValidationError } from '../domain/errors.js';
import { BarFiles } from '../market-data/bar-files.js';
import type { OrderRepository, StoredOrder } from '../persistence/order-repository.js';
import type { StoredSession } from '../persistence/ports.js';
import type { RunnerStateRepository } from '../persistence/runner-state-repository.js';
import type { AnyStrategyDefinition, StrategyParams } from '../strategies/strategy-api.js';
import type { OrderEvent } from './order-router.js';
import type { BatchStepOutcome, EvaluateRequest } from './strategy-pool.js';

/** What the runners report back to: the SessionManager fits. */
export interface RunnerHost {
  handleRunnerFailure(id: string, error: string): Promise<unknown>;
  handleRiskBreach(id: string, reason: string): Promise<unknown>;
  stopSession(id: string, reason?: string, ctx?: { source?: string }): Promise<unknown>;
  /** Reconciliation pauses live sessions (venue_unreachable, reconcile_mismatch: ...). */
  pauseSession?(id: string, reason?: string, ctx?: { source?: string }): Promise<unknown>;
}

/** The part of StrategyPool the runners use. */
export interface StepPool {
  readonly size: number;
  evaluateBatch(requests: readonly EvaluateRequest[]): Promise<BatchStepOutcome[]>;
}

/** The part of StrategyCatalog the runners use. */
export interface StrategySource {
  get(id: string): AnyStrategyDefinition;
  resolve(id: string, params?: Record<string, unknown>): { id: string; name: string; params: StrategyParams };
}

/** Where the runners report a storage fault, and learn that SQLite writes again (StorageGuard fits). */
export interface StorageFaultSink {
  report(err: unknown): boolean;
  whenWritable(fn: () => void): void;
}

export interface RunnerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** One committed (or failed) step, for metrics and benchmarks. */
export interface StepEvent {
  sessionId: string;
  ok: boolean;
  /** A failed step: the StrategyStepError kind (threw, exited, timeout) or the error code. */
  failure?: string | undefined;
  signals: number;
  /** Pool round trip of the batch the step was in. */
  poolMs: number;
  batchSize: number;
}

export interface RunnerServiceOptions {
  sessions: { get(id: string): StoredSession | undefined; updatePositions(id: string, positions: Record<string, unknown>, at: string): void };
  pool: StepPool;
  strategies: StrategySource;
  brokers: { get(id: string): Broker };
  orders: OrderRepository;
  runnerStates: RunnerStateRepository;
  /** Failed steps in a row before the session is stopped with `runner_failed`. @defaultValue 3 */
  maxRestarts?: number;
  /** Wait before the first restart; doubles with each failure in a row. @defaultValue 500 */
  restartBackoffMs?: number;
  /** How long a `confirm` order waits for approve-order before it expires. @defaultValue 300000 */
  approvalTtlMs?: number;
  /** Most sessions' steps in one pool task. @defaultValue 64 */
  maxBatchSize?: number;
  /**
   * Steps due within this window of the first are run together: bigger batches and fewer SQLite
   * transactions for at most this much bar-to-order latency. @defaultValue 2
   */
  batchWindowMs?: number;
  /** A session's notional starting equity (equity = this + its PnL). @defaultValue 100000 */
  initialEquity?: number;
  /** Synthetic feeds: steps a late runner runs back to back before it skips to the current bar. @defaultValue 3 */
  maxCatchUpSteps?: number;
  /** Bar interval of a synthetic feed that names none (and of sessions without a feed). @defaultValue 1000 */
  defaultBarIntervalMs?: number;
  /** Bar time between two persisted equity points of a session. @defaultValue 60000 */
  equitySampleMs?: number;
  /** Least wall time between two saves of a session's marked positions (fills save at once). @defaultValue 1000 */
  markPersistMs?: number;
  /**
   * Least wall time between two writes of a session's runner state (strategy state, cursor, equity
   * statistics) while it runs; each session writes at most once per step, with a phase of its own inside
   * this window. 0 writes every step: a crash then re-runs at most the step in flight. Above 0, after a
   * crash a session continues from its last written state: a replay feed re-runs the steps since (up to
   * this much of them, same bars); a synthetic feed re-runs the written step, then skips to the current bar
   * when it is more than maxCatchUpSteps behind (the skipped bars never reach the strategy, as after a
   * pause). Orders are never placed twice either way: an order is written `new` before it is sent, its
   * client id is `sessionId:signal.key` (deterministic), and a re-run signal finds its order. Fills,
   * orders and positions are written when they happen, never held back. Pause, stop and shutdown always
   * write the latest state. See README "Restart semantics".
   * @defaultValue 5000
   */
  stateCommitMs?: number;
  /** Where replay feeds' files are read from (data directories, size limit). @defaultValue new BarFiles() */
  barFiles?: BarFiles;
  /**
   * Told about storage faults; calls back once SQLite writes again (StorageGuard fits).
   * @defaultValue none: a held runner retries every second
   */
  storage?: StorageFaultSink | undefined;
  /** Clock of order timestamps and approval expiry. @defaultValue () => new Date() */
  now?: () => Date;
  logger?: RunnerLogger | undefined;
  onOrder?: ((event: OrderEvent) => void) | undefined;
  onStep?: ((event: StepEvent) => void) | undefined;
  /** Live venues: time between two reconciliation passes (0: only at start). @defaultValue 30000 */
  reconcileIntervalMs?: number;
  /** Live venues: how long an `unknown` order may stay unfound at the venue before it is `rejected`. @defaultValue 60000 */
  unknownTimeoutMs?: number;
  onReconcileMismatch?: ((brokerId: string, symbol: string) => void) | undefined;
  onExternalOrder?: ((brokerId: string, order: StoredOrder) => void) | undefined;
}

export const DEFAULT_RUNNER_SERVICE_OPTIONS = Object.freeze({
  maxRestarts: 3,
  restartBackoffMs: 500,
  approvalTtlMs: 300_000,
  maxBatchSize: 64,
  batchWindowMs: 2,
  initialEquity: 100_000,
  maxCatchUpSteps: 3,
  defaultBarIntervalMs: 1000,
  equitySampleMs: 60_000,
  markPersistMs: 1000,
  stateCommitMs: 5000,
  reconcileIntervalMs: 30_000,
  unknownTimeoutMs: 60_000,
});

export interface RunnerServiceStats {
  running: number;
  paused: number;
  /** Sessions whose runner holds until SQLite writes again (a storage fault). */
  held: number;
  steps: number;
  failedSteps: number;
  batches: number;
  ordersPlaced: number;
}

type OptionalHooks = 'logger' | 'onOrder' | 'onStep' | 'storage' | 'onReconcileMismatch' | 'onExternalOrder';

/** RunnerServiceOptions with every default applied and checked. @internal */
export type ResolvedRunnerOptions = Readonly<Required<Omit<RunnerServiceOptions, OptionalHooks>>> & Readonly<Pick<RunnerServiceOptions, OptionalHooks>>;

/** Merges the options over DEFAULT_RUNNER_SERVICE_OPTIONS and checks them. @throws VALIDATION_ERROR naming the option @internal */
export function resolveRunnerOptions(options: RunnerServiceOptions): ResolvedRunnerOptions {
  const o = { ...DEFAULT_RUNNER_SERVICE_OPTIONS, now: () => new Date(), barFiles: new BarFiles(), ...stripUndefined(options) } as Required<RunnerServiceOptions>;
  for (const key of ['maxRestarts', 'restartBackoffMs', 'maxCatchUpSteps', 'batchWindowMs', 'stateCommitMs'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0) throw new ValidationError(`options.${key} must be a non-negative integer`);
  }
  for (const key of ['approvalTtlMs', 'maxBatchSize', 'defaultBarIntervalMs', 'equitySampleMs', 'markPersistMs'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new ValidationError(`options.${key} must be a positive integer`);
  }
  if (!(Number.isFinite(o.initialEquity) && o.initialEquity > 0)) throw new ValidationError('options.initialEquity must be a positive number');
  return Object.freeze(o);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
