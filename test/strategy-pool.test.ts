import test from 'ava';
import { buildBook } from '../src/domain/book.js';
import type { Position } from '../src/domain/order.js';
import { applyFills } from '../src/domain/pnl.js';
import { fileURLToPath } from 'node:url';
import type { Bar } from '../src/domain/market.js';
import { StrategyPool, StrategyStepError } from '../src/runners/strategy-pool.js';
import { StrategyCatalog, runStrategyStep, type JsonValue } from '../src/strategies/index.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/strategies/${name}`, import.meta.url));
const MODULES = ['counter.ts', 'throwing.ts', 'exiting.ts', 'hanging.ts', 'slow.ts'].map(fixture);
const T0 = Date.UTC(2024, 0, 2, 14, 30);

function bars(closes: number[], symbol = 'AAA', from = 0): Bar[] {
  return closes.map((close, i) => ({ symbol, time: T0 + (from + i) * 60_000, open: close, high: close, low: close, close, volume: 1 }));
}

// One pool for the tests that do not break threads.
// Loading the .ts fixtures through tsx in a fresh thread can take seconds on a loaded machine.
const LOAD_TIMEOUT_MS = 60_000;
const shared = new StrategyPool({ size: 2, modulePaths: MODULES, loadTimeoutMs: LOAD_TIMEOUT_MS });
test.after.always(() => shared.close());

test('state round-trips through the pool and the signals match a main-thread run', async (t) => {
  const catalog = new StrategyCatalog();
  const { params } = catalog.resolve('sma-crossover', { fast: 2, slow: 4, qty: 3 });
  const definition = catalog.get('sma-crossover');
  const closes = [10, 10, 10, 10, 10, 12, 14, 12, 8, 6, 6, 10, 14];
  let poolState: JsonValue = definition.initialState(params);
  let localState: JsonValue = poolState;
  const poolKeys: string[] = [];
  const localKeys: string[] = [];
  let positions: Position[] = [];
  for (let i = 0; i < closes.length; i += 2) {
    const batch = bars(closes.slice(i, i + 2), 'AAA', i);
    // The book crosses to the worker with the bars: each step's signals fill before the next step.
    const book = buildBook({ initialEquity: 1000, positions, lastPrices: { AAA: batch.at(-1)!.close }, openOrders: [] });
    const remote = await shared.evaluate({ sessionId: 's-roundtrip', strategyId: 'sma-crossover', params, state: poolState, bars: batch, book });
    const local = runStrategyStep(definition, localState, batch, params, book);
    t.deepEqual(remote.state, local.state);
    t.deepEqual(remote.signals, local.signals);
    positions = applyFills(local.signals.map((s) => ({ symbol: s.symbol, side: s.side, qty: s.qty, price: batch.at(-1)!.close })), positions);
    poolState = remote.state;
    localState = local.state;
    poolKeys.push(...remote.signals.map((s) => s.key));
    localKeys.push(...local.signals.map((s) => s.key));
  }
  t.deepEqual(poolKeys, localKeys);
  t.deepEqual(poolKeys, [`AAA:${T0 + 5 * 60_000}:buy`, `AAA:${T0 + 8 * 60_000}:sell`, `AAA:${T0 + 11 * 60_000}:buy`]);
});

test('a user strategy keeps its state across steps served by any thread', async (t) => {
  let state: JsonValue = { steps: 0, bars: 0, lastClose: null, history: [] };
  let signals = 0;
  for (let i = 0; i < 10; i++) {
    const result = await shared.evaluate({ sessionId: 's-counter', strategyId: 'test-counter', params: { every: 2 }, state, bars: bars([i + 1, i + 2], 'AAA', 2 * i) });
    state = result.state;
    signals += result.signals.length;
  }
  t.like(state, { steps: 10, bars: 20, lastClose: 11 });
  t.is((state as { history: number[] }).history.length, 10);
  t.is(signals, 5);
});

test('an unknown strategy, bad params and non-JSON state are rejected with their codes', async (t) => {
  const base = { sessionId: 's-bad', state: null, bars: bars([1]) };
  const notFound = await t.throwsAsync(shared.evaluate({ ...base, strategyId: 'no-such', params: {} }));
  t.like(notFound, { code: 'STRATEGY_NOT_FOUND', message: 'strategy no-such is not known' });
  const invalid = await t.throwsAsync(shared.evaluate({ ...base, strategyId: 'sma-crossover', params: { fast: 0 } }));
  t.like(invalid, { code: 'VALIDATION_ERROR' });
  t.regex(invalid!.message, /params\.fast/);
  const notJson = await t.throwsAsync(
    shared.evaluate({ ...base, strategyId: 'buy-and-hold', params: {}, state: { bought: {}, at: new Date(0) } as unknown as JsonValue }),
  );
  t.like(notJson, { code: 'VALIDATION_ERROR', message: 'step of session s-bad rejected: state.at is not a plain object' });
  t.like(shared.stats(), { failedByKind: { threw: 0, exited: 0, timeout: 0 } });
});

test('a throwing, an exiting and a hung strategy each fail only their own step', async (t) => {
  const pool = new StrategyPool({ size: 2, modulePaths: MODULES, loadTimeoutMs: LOAD_TIMEOUT_MS });
  t.teardown(() => pool.close());
  const failing = (strategyId: string, sessionId: string) =>
    pool.evaluate({ sessionId, strategyId, params: {}, state: null, bars: bars([1]) }).then(
      () => t.fail(`${strategyId} should have failed`),
      (err: unknown) => err as StrategyStepError,
    );
  // A healthy session steps sequentially, and twenty other sessions step once, all while the others fail.
  const healthy = (async () => {
    let state: JsonValue = { steps: 0, bars: 0, lastClose: null, history: [] };
    for (let i = 0; i < 30; i++) {
      ({ state } = await pool.evaluate({ sessionId: 'healthy', strategyId: 'test-counter', params: {}, state, bars: bars([i], 'AAA', i) }));
    }
    return state;
  })();
  const others = Array.from({ length: 20 }, (_, i) =>
    pool.evaluate({ sessionId: `other-${i}`, strategyId: 'buy-and-hold', params: {}, state: { bought: {} }, bars: bars([i + 1], `S${i}`) }),
  );
  const [threw, exited, timedOut] = await Promise.all([
    failing('test-throwing', 'bad-throw'),
    failing('test-exiting', 'bad-exit'),
    failing('test-hanging', 'bad-hang'),
  ]);

  t.true(threw instanceof StrategyStepError);
  t.like(threw, { code: 'STRATEGY_FAILED', kind: 'threw', sessionId: 'bad-throw', strategyId: 'test-throwing' });
  t.is(threw!.message, 'strategy test-throwing (session bad-throw) threw: boom: strategy bug');
  t.like(exited, { code: 'STRATEGY_FAILED', kind: 'exited', sessionId: 'bad-exit' });
  t.regex(exited!.message, /worker thread died during the step \(worker exited with code: 3\)/);
  t.like(timedOut, { code: 'STRATEGY_FAILED', kind: 'timeout', sessionId: 'bad-hang' });
  t.regex(timedOut!.message, /step ran longer than 1000 ms; its thread was terminated/);
  t.deepEqual(timedOut!.toJSON(), {
    code: 'STRATEGY_FAILED',
    kind: 'timeout',
    sessionId: 'bad-hang',
    strategyId: 'test-hanging',
    message: timedOut!.message,
  });

  t.like(await healthy, { steps: 30, bars: 30 });
  const results = await Promise.all(others);
  t.deepEqual(results.map((r) => r.signals.length), Array(20).fill(1));

  // Replaced threads keep serving.
  const after = await Promise.all(
    Array.from({ length: 4 }, (_, i) => pool.evaluate({ sessionId: `after-${i}`, strategyId: 'buy-and-hold', params: { qty: 2 }, state: { bought: {} }, bars: bars([1]) })),
  );
  t.true(after.every((r) => r.signals[0]?.qty === 2));
  t.like(pool.stats(), { threads: 2, queueSize: 0, completed: 30 + 20 + 4, failed: 3, failedByKind: { threw: 1, exited: 1, timeout: 1 } });
});

test('the step timeout counts run time, not time queued behind other steps', async (t) => {
  // The margins are wide so a loaded machine cannot flip the outcome: each step runs a tenth of the
  // timeout, while the last of them waits in the queue for well over the timeout.
  const pool = new StrategyPool({ size: 1, stepTimeoutMs: 1000, modulePaths: MODULES, loadTimeoutMs: LOAD_TIMEOUT_MS });
  t.teardown(() => pool.close());
  // Fifteen 100 ms steps on one thread: the last waits ~1.4 s in the queue, yet none runs past 1000 ms.
  const results = await Promise.all(
    Array.from({ length: 15 }, (_, i) => pool.evaluate({ sessionId: `q-${i}`, strategyId: 'test-slow', params: { ms: 100 }, state: { steps: i }, bars: [] })),
  );
  t.deepEqual(results.map((r) => r.state), Array.from({ length: 15 }, (_, i) => ({ steps: i + 1 })));
  const late = await t.throwsAsync(pool.evaluate({ sessionId: 'too-slow', strategyId: 'test-slow', params: { ms: 5000 }, state: { steps: 0 }, bars: [] }));
  t.like(late, { code: 'STRATEGY_FAILED', kind: 'timeout', sessionId: 'too-slow' });
});

test('close is idempotent and later steps are rejected', async (t) => {
  const pool = new StrategyPool({ size: 1, loadTimeoutMs: LOAD_TIMEOUT_MS });
  const step = pool.evaluate({ sessionId: 'c', strategyId: 'buy-and-hold', params: {}, state: { bought: {} }, bars: bars([1]) });
  t.is((await step).signals.length, 1);
  const first = pool.close();
  t.is(pool.close(), first);
  await first;
  await t.throwsAsync(pool.evaluate({ sessionId: 'c', strategyId: 'buy-and-hold', params: {}, state: { bought: {} }, bars: [] }), {
    message: 'the strategy pool is closed',
  });
});

test('pool options are checked with messages naming the option', (t) => {
  t.throws(() => new StrategyPool({ size: 0 }), { message: 'options.size must be a positive integer' });
  t.throws(() => new StrategyPool({ stepTimeoutMs: 1.5 }), { message: 'options.stepTimeoutMs must be a positive integer' });
  t.throws(() => new StrategyPool({ modulePaths: [''] }), { message: 'options.modulePaths must be an array of non-empty strings' });
});
