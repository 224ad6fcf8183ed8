import type { z } from 'zod';
import type { Bar, Signal } from '../domain/market.js';
import { EMPTY_BOOK, type StrategyBook } from '../domain/book.js';
import { ValidationError } from '../domain/errors.js';

export { EMPTY_BOOK, hasOpenOrder, heldQty, type BookOrder, type BookPosition, type StrategyBook } from '../domain/book.js';

/** A value that survives both `JSON.stringify`/`JSON.parse` and structured clone unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Strategy params after validation: a plain object. */
export type StrategyParams = Record<string, unknown>;

/** What one step returns: the next state and the signals the bars produced. */
export interface StepResult<S extends JsonValue = JsonValue> {
  state: S;
  signals: Signal[];
}

/**
 * A trading strategy: pure functions over plain-JSON state, so a step can run in any worker
 * thread and its state can be persisted between steps.
 *
 * A strategy module (built-in or user-supplied) exports it as `strategy`.
 *
 * @example
 * export const strategy = defineStrategy({
 *   id: 'buy-once',
 *   name: 'Buy once',
 *   paramsSchema: z.object({ qty: z.number().positive().default(1) }).strict(),
 *   initialState: () => ({}),
 *   // Buys once per symbol, from the book: never while holding it or while an order for it can still fill.
 *   step: (state, bars, params, book) => ({
 *     state,
 *     signals: bars
 *       .filter((b) => heldQty(book, b.symbol) === 0 && !hasOpenOrder(book, b.symbol) && book.buyingPower >= params.qty * b.close)
 *       .map((b) => ({ key: `${b.symbol}:${b.time}:buy`, symbol: b.symbol, side: 'buy', qty: params.qty, type: 'market' })),
 *   }),
 * });
 */
export interface StrategyDefinition<P extends StrategyParams = StrategyParams, S extends JsonValue = JsonValue> {
  /** Stable id sessions refer to (`strategy.id` in a SessionConfig). */
  readonly id: string;
  /** Human-readable name. */
  readonly name: string;
  /** Validates params and applies their defaults; should be a zod object. */
  readonly paramsSchema: z.ZodType<P, any>;
  /** State before the first bar. */
  initialState(params: P): S;
  /**
   * Consumes one batch of bars (oldest first, possibly several symbols) and returns the next
   * state and the signals. Must be synchronous and deterministic: the same state, bars, params
   * and book give the same result, and each signal's `key` is derived from its input.
   *
   * `book` is the session's book after these bars reached the broker (fills at their opens
   * included): positions (qty, average price, last close), orders that can still fill, cash,
   * equity and buying power (see StrategyBook). It is built from what is persisted, so it is the
   * same after a restart and in a backtest. Trade from it rather than from signals you emitted: an
   * order may be refused by a risk control, rejected by the broker, or not filled yet.
   */
  step(state: S, bars: readonly Bar[], params: P, book: StrategyBook): StepResult<S>;
}

/** A definition with its types erased, as registries hold it. */
// `any` params/state: a registry holds strategies of different types side by side.
export type AnyStrategyDefinition = StrategyDefinition<any, any>;

/** Identity helper that lets TypeScript infer `P` and `S` for a strategy literal. */
export function defineStrategy<P extends StrategyParams, S extends JsonValue>(
  definition: StrategyDefinition<P, S>,
): StrategyDefinition<P, S> {
  return definition;
}

/** True when `value` has the shape of a StrategyDefinition (used on user modules). */
export function isStrategyDefinition(value: unknown): value is AnyStrategyDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const schema = v.paramsSchema as { safeParse?: unknown } | undefined;
  return (
    typeof v.id === 'string' &&
    v.id.length > 0 &&
    typeof v.name === 'string' &&
    typeof schema === 'object' &&
    schema !== null &&
    typeof schema.safeParse === 'function' &&
    typeof v.initialState === 'function' &&
    typeof v.step === 'function'
  );
}

/**
 * Validates `params` with the strategy's schema and returns them with defaults applied.
 * @throws ValidationError naming the first bad param, e.g. `params.fast: expected number, received string`.
 */
export function parseStrategyParams<P extends StrategyParams>(
  definition: StrategyDefinition<P, any>,
  params: unknown,
): P {
  const result = definition.paramsSchema.safeParse(params ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? `params.${issue.path.map(String).join('.')}` : 'params';
    return { path, message: issue.message };
  });
  const text = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new ValidationError(`invalid params for strategy ${definition.id}: ${text}`, { issues });
}

/**
 * Runs one step and checks its output, the same way in a worker thread and in the main thread
 * (backtests, benchmarks). Without `book` the step sees EMPTY_BOOK (flat, no orders, no cash).
 * @throws Error when the strategy throws or returns something that is not a valid StepResult.
 */
export function runStrategyStep(
  definition: AnyStrategyDefinition,
  state: JsonValue,
  bars: readonly Bar[],
  params: StrategyParams,
  book: StrategyBook = EMPTY_BOOK,
): StepResult {
  const result: unknown = definition.step(state, bars, params, book);
  const problem = describeInvalidStepResult(result);
  if (problem !== null) {
    throw new Error(`strategy ${definition.id} returned an invalid step result: ${problem}`);
  }
  return result as StepResult;
}

/** Why `value` is not a valid StepResult, or null when it is. */
export function describeInvalidStepResult(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'expected an object { state, signals }';
  if (typeof (value as { then?: unknown }).then === 'function') return 'step must be synchronous, got a promise';
  const { state, signals } = value as { state?: unknown; signals?: unknown };
  const stateProblem = describeNonJson(state, 'state');
  if (stateProblem !== null) return stateProblem;
  if (!Array.isArray(signals)) return 'signals must be an array';
  for (let i = 0; i < signals.length; i++) {
    const problem = describeInvalidSignal(signals[i]);
    if (problem !== null) return `signals[${i}]: ${problem}`;
  }
  return null;
}

function describeInvalidSignal(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'expected an object';
  const s = value as Partial<Record<keyof Signal, unknown>>;
  if (typeof s.key !== 'string' || s.key.length === 0) return 'key must be a non-empty string';
  if (typeof s.symbol !== 'string' || s.symbol.length === 0) return 'symbol must be a non-empty string';
  if (s.side !== 'buy' && s.side !== 'sell') return "side must be 'buy' or 'sell'";
  if (typeof s.qty !== 'number' || !Number.isFinite(s.qty) || s.qty <= 0) return 'qty must be a positive number';
  if (s.type !== 'market' && s.type !== 'limit') return "type must be 'market' or 'limit'";
  if (s.type === 'limit' && (typeof s.limitPrice !== 'number' || !Number.isFinite(s.limitPrice) || s.limitPrice <= 0)) {
    return 'limitPrice must be a positive number for a limit signal';
  }
  if (s.reason !== undefined && typeof s.reason !== 'string') return 'reason must be a string';
  return null;
}

/** Why `value` would not survive a JSON round trip, or null when it would. */
export function describeNonJson(value: unknown, path = 'value'): string | null {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return null;
  if (typeof value === 'number') return Number.isFinite(value) ? null : `${path} is ${value}, not a finite number`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = describeNonJson(value[i], `${path}[${i}]`);
      if (problem !== null) return problem;
    }
    return null;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    // Class instances (Map, Date, ...) lose their identity through JSON.
    if (proto !== Object.prototype && proto !== null) return `${path} is not a plain object`;
    for (const [key, item] of Object.entries(value)) {
      const problem = describeNonJson(item, `${path}.${key}`);
      if (problem !== null) return problem;
    }
    return null;
  }
  return `${path} is ${typeof value}, not JSON`;
}
