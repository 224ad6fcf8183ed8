// Runner load: strategy steps/s through the pool with 1,000 sessions next to the same steps in the main
// thread, the full runner (feed -> broker -> pool -> risk -> orders -> SQLite) under load, bar-to-order
// latency, and memory per running session.
// Run: node --expose-gc --import=tsx bench/runner-load.ts [--sessions 1000] [--rounds 40] [--seconds 6]
//        [--size 2] [--memory 1000,10000] [--skip-memory]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { Bar } from '../src/domain/market.js';
import { createFeed } from '../src/market-data/index.js';
import { StrategyPool, type EvaluateRequest } from '../src/runners/strategy-pool.js';
import type { RunnerServiceOptions } from '../src/runners/runner-service.js';
import { StrategyCatalog, runStrategyStep, type JsonValue } from '../src/strategies/index.js';
import { tempDir } from '../test/helpers/daemon.js';
import { buildTradingRig, type TradingRig } from '../test/helpers/trading.js';
import { pct } from './percentile.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '40' },
    seconds: { type: 'string', default: '6' },
    size: { type: 'string', default: '2' },
    memory: { type: 'string', default: '1000,10000' },
    'skip-memory': { type: 'boolean', default: false },
    'memory-child': { type: 'string' },
    'state-commit-ms': { type: 'string', default: '0' },
  },
});
const SESSIONS = Number(values.sessions);
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const SIZE = Number(values.size);
const STRATEGY = 'sma-crossover';
// The strategy's defaults (fast 5, slow 20): about one order every 20 steps per session.
const PARAMS = { fast: 5, slow: 20, qty: 1 };
// Order-heavy: a crossover (an order) every ~4 steps.
const BUSY = { fast: 2, slow: 4, qty: 1 };
const gc = (globalThis as { gc?: () => void }).gc;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- 1. the pool alone: steps/s, batched and one task per step, against the main thread ----

async function poolThroughput(): Promise<void> {
  const catalog = new StrategyCatalog();
  const { params } = catalog.resolve(STRATEGY, PARAMS);
  const def = catalog.get(STRATEGY);
  const bars: Bar[][][] = Array.from({ length: SESSIONS }, (_, s) => {
    const feed = createFeed({ type: 'synthetic', seed: s }, [`S${s}`], { accelerated: true });
    return Array.from({ length: ROUNDS }, () => feed.next()!);
  });
  const fresh = () => Array.from({ length: SESSIONS }, () => def.initialState(params) as JsonValue);
  const steps = SESSIONS * ROUNDS;

  let states = fresh();
  let signals = 0;
  let t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (let s = 0; s < SESSIONS; s++) {
      const out = runStrategyStep(def, states[s]!, bars[s]![r]!, params);
      states[s] = out.state;
      signals += out.signals.length;
    }
  }
  const mainMs = performance.now() - t0;
  const mainSignals = signals;

  const pool = new StrategyPool({ size: SIZE });
  const req = (s: number, r: number, state: JsonValue): EvaluateRequest => ({ sessionId: `s-${s}`, strategyId: STRATEGY, params, state, bars: bars[s]![r]! });
  await pool.evaluateBatch(Array.from({ length: 4 * SIZE }, (_, i) => req(i, 0, def.initialState(params) as JsonValue)));

  // Batched, as the runner sends them: every session of a round in flight, 64 per task.
  states = fresh();
  signals = 0;
  t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    const chunks: Promise<void>[] = [];
    for (let from = 0; from < SESSIONS; from += 64) {
      const ids = Array.from({ length: Math.min(64, SESSIONS - from) }, (_, i) => from + i);
      chunks.push(
        pool.evaluateBatch(ids.map((s) => req(s, r, states[s]!))).then((outs) => {
          outs.forEach((o, i) => {
            if (!o.ok) throw o.error;
            states[ids[i]!] = o.state;
            signals += o.signals.length;
          });
        }),
      );
    }
    await Promise.all(chunks);
  }
  const batchMs = performance.now() - t0;
  const batchSignals = signals;

  // One task per step (the pool before batching), fewer rounds: it is slow.
  const singleRounds = Math.max(1, Math.floor(ROUNDS / 4));
  states = fresh();
  t0 = performance.now();
  for (let r = 0; r < singleRounds; r++) {
    const outs = await Promise.all(states.map((state, s) => pool.evaluate(req(s, r, state))));
    states = outs.map((o) => o.state);
  }
  const singleMs = performance.now() - t0;
  await pool.close();

  const rate = (n: number, ms: number) => n / (ms / 1000);
  console.log(`\n## 1. Strategy steps through the pool: ${STRATEGY} ${JSON.stringify(PARAMS)}, ${SESSIONS} sessions x ${ROUNDS} rounds, pool size ${SIZE}`);
  console.log(`main thread:            ${fmt(rate(steps, mainMs))} steps/s (${mainMs.toFixed(0)} ms, ${mainSignals} signals)`);
  console.log(`pool, batched (64/task): ${fmt(rate(steps, batchMs))} steps/s (${batchMs.toFixed(0)} ms, ${batchSignals} signals)`);
  console.log(`pool, 1 task per step:   ${fmt(rate(SESSIONS * singleRounds, singleMs))} steps/s (${singleRounds} rounds)`);
  console.log(`ratio batched pool / main thread: ${(mainMs / batchMs).toFixed(3)}; batched / single: ${(rate(steps, batchMs) / rate(SESSIONS * singleRounds, singleMs)).toFixed(1)}x`);
  if (batchSignals !== mainSignals) {
    console.error(`signal counts differ: batched pool ${batchSignals} vs main ${mainSignals}`);
    process.exitCode = 1;
  }
}

// ---- the full runner: SessionManager + RunnerService over a real SQLite file ----

interface Rig extends TradingRig {
  latencies: number[];
}

async function rig(runnerOptions: Partial<RunnerServiceOptions> = {}): Promise<Rig> {
  const dir = tempDir('sessiond-bench-runner-');
  const latencies: number[] = [];
  const r = await buildTradingRig({
    file: join(dir, 'sessiond.db'),
    // The daemon's defaults (config/default.json), at the pool size under test.
    runners: { poolSize: SIZE, maxRestarts: 3, restartBackoffMs: 500, approvalTtlMs: 300_000 },
    runnerOptions: {
      onOrder: (e) => {
        if (e.latencyMs !== undefined) latencies.push(e.latencyMs);
      },
      ...runnerOptions,
    },
    recover: false,
  });
  return {
    ...r,
    latencies,
    async close() {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startSessions(r: Rig, n: number, intervalMs: number, strategy: { id: string; params?: Record<string, unknown> } = { id: STRATEGY, params: PARAMS }): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      r.manager.startSession({
        id: `b-${i}`,
        kind: 'paper',
        strategy,
        // One symbol per session: each session has its own market.
        symbols: [`S${i}`],
        feed: { type: 'synthetic', intervalMs, volatility: 0.01 },
      }),
    ),
  );
}

function latency(m: { orders: number; p50: number; p99: number }): string {
  return m.orders === 0 ? 'n/a (no orders in the window)' : `p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms (${m.orders} orders)`;
}

async function measure(r: Rig, seconds: number) {
  const s0 = r.services.runners.stats();
  const l0 = r.latencies.length;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const ms = performance.now() - t0;
  const s1 = r.services.runners.stats();
  const lat = r.latencies.slice(l0);
  return { stepsPerSec: (s1.steps - s0.steps) / (ms / 1000), orders: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), failed: s1.failedSteps - s0.failedSteps, util: r.services.pool.stats().utilization };
}

async function runnerLoad(): Promise<void> {
  console.log(`\n## 2. The full runner with ${SESSIONS} running sessions: feed -> paper broker (SQLite) -> pool -> risk -> orders, fills, positions, state (SQLite); ${SECONDS} s windows`);
  // [label, bar interval, strategy, warm-up s]: warm-up covers the strategy's first `slow + 1` bars.
  const cases: [string, number, { id: string; params?: Record<string, unknown> }, number][] = [
    [`${STRATEGY} ${JSON.stringify(BUSY)}`, 1000, { id: STRATEGY, params: BUSY }, 6],
    [`${STRATEGY} ${JSON.stringify(PARAMS)}`, 200, { id: STRATEGY, params: PARAMS }, 5],
    [`${STRATEGY} ${JSON.stringify(PARAMS)}`, 20, { id: STRATEGY, params: PARAMS }, 2],
    [`${STRATEGY} ${JSON.stringify(BUSY)}`, 20, { id: STRATEGY, params: BUSY }, 2],
    ['buy-and-hold (one order per session)', 20, { id: 'buy-and-hold' }, 2],
  ];
  for (const [label, intervalMs, strategy, warmup] of cases) {
    const r = await rig();
    await startSessions(r, SESSIONS, intervalMs, strategy);
    await sleep(warmup * 1000);
    const window = intervalMs >= 1000 ? 2 * SECONDS : SECONDS;
    const m = await measure(r, window);
    const demand = (SESSIONS * 1000) / intervalMs;
    console.log(
      `${label}, bars every ${intervalMs} ms (demand ${fmt(demand)} steps/s): ${fmt(m.stepsPerSec)} steps/s, ` +
        `${fmt(m.orders / window)} orders/s, bar-to-order ${latency(m)}, failed steps ${m.failed}`,
    );
    await r.close();
  }
  console.log('(bar-to-order: from the close of the bar the order was decided on to the broker\'s acknowledgement; past saturation it is queueing)');
}

// ---- 3. memory per running session: one child process per size, so RSS starts clean ----

async function memoryChild(n: number): Promise<void> {
  const r = await rig({ stateCommitMs: Number(values['state-commit-ms']) });
  // Warm the pool and the code paths with one session, then take the baseline.
  await startSessions(r, 1, 1000);
  await sleep(1500);
  gc!();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      r.manager.startSession({ id: `m-${i}`, kind: 'paper', strategy: { id: STRATEGY, params: PARAMS }, symbols: [`M${i}`], feed: { type: 'synthetic', intervalMs: 1000 } }),
    ),
  );
  const startMs = performance.now() - t0;
  // Past the strategy's first slow + 1 bars: full state, crossovers, open positions.
  await sleep(23_000);
  const m = await measure(r, 4);
  gc!();
  const heap = process.memoryUsage().heapUsed - heap0;
  const rss = process.memoryUsage().rss - rss0;
  console.log(JSON.stringify({ n, heapPerSession: heap / n, rssPerSession: rss / n, rss: process.memoryUsage().rss, startMs, ...m }));
  await r.close();
}

async function memory(): Promise<void> {
  console.log(`\n## 3. Memory per running session (${STRATEGY} ${JSON.stringify(PARAMS)}, 1 s bars; session actor + runner + feed + strategy state; fresh process per size)`);
  const { execFileSync } = await import('node:child_process');
  const sizes = values.memory.split(',').map(Number);
  // The largest size again with the strategy state written every 5 s instead of every step.
  const runs: [number, number][] = [...sizes.map((n): [number, number] => [n, 0]), [Math.max(...sizes), 5000]];
  for (const [n, stateCommitMs] of runs) {
    const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, '--memory-child', String(n), '--state-commit-ms', String(stateCommitMs)], { encoding: 'utf8' });
    const m = JSON.parse(out.trim().split('\n').at(-1)!) as { n: number; heapPerSession: number; rssPerSession: number; rss: number; startMs: number; stepsPerSec: number; orders: number; p50: number; p99: number };
    console.log(
      `${fmt(n).padStart(6)} sessions${stateCommitMs > 0 ? `, state written every ${stateCommitMs / 1000} s` : ''}: heap ${(m.heapPerSession / 1024).toFixed(1)} KB/session, RSS ${(m.rssPerSession / 1024).toFixed(1)} KB/session ` +
        `(process RSS ${(m.rss / 2 ** 20).toFixed(0)} MB; started in ${(m.startMs / 1000).toFixed(1)} s; then ${fmt(m.stepsPerSec)} steps/s, bar-to-order ${latency(m)})`,
    );
  }
}

if (values['memory-child'] !== undefined) {
  await memoryChild(Number(values['memory-child']));
} else {
  await poolThroughput();
  await runnerLoad();
  if (!values['skip-memory']) {
    if (gc === undefined) console.log('\n## 3. Memory: run with node --expose-gc for heap and RSS figures');
    else await memory();
  }
}
