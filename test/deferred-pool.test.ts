import test from 'ava';
import { DeferredStrategyPool } from '../src/daemon/deferred-pool.js';
import type { Bar } from '../src/domain/market.js';
import { StrategyPoolClosedError } from '../src/runners/strategy-pool.js';

// The daemon's pool: no thread until start() (right after READY) or the first step; closed, it never makes one.
const bar: Bar = { symbol: 'AAA', time: Date.UTC(2024, 0, 2), open: 10, high: 10, low: 10, close: 10, volume: 1 };
const step = { sessionId: 's-deferred', strategyId: 'buy-and-hold', params: { qty: 1 }, state: { bought: {} }, bars: [bar] };

test('no thread before start(); start() makes the pool at its size and steps run in it', async (t) => {
  const pool = new DeferredStrategyPool({ size: 2, loadTimeoutMs: 60_000 });
  t.teardown(() => pool.close());
  // A pool made at construction would have its threads well within this (it can only make the check pass wrongly).
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.like(pool.stats(), { threads: 0, completed: 0 });
  await pool.start();
  await pool.start();
  const r = await pool.evaluate(step);
  t.true(r.signals.length > 0, 'buy-and-hold buys on its first bar');
  t.like(pool.stats(), { threads: 2, completed: 1 });
});

test('the first step makes the pool when start() was not called', async (t) => {
  const pool = new DeferredStrategyPool({ size: 1, loadTimeoutMs: 60_000 });
  t.teardown(() => pool.close());
  const [outcome] = await pool.evaluateBatch([step]);
  t.true(outcome?.ok);
  t.like(pool.stats(), { threads: 1, completed: 1 });
});

test('closed before it started: steps are refused as by a closed StrategyPool, and start() makes no thread', async (t) => {
  const pool = new DeferredStrategyPool({ size: 1 });
  await pool.close();
  await t.throwsAsync(pool.evaluate(step), { instanceOf: StrategyPoolClosedError });
  await pool.start();
  t.is(pool.stats().threads, 0);
});
