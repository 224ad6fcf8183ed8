// Steps/s of 1,000 sessions through the StrategyPool vs the same steps in the main thread.
// Run: node --import=tsx bench/pool-steps.ts [--sessions 1000] [--rounds 50] [--size 2] [--strategy sma-crossover]
import { parseArgs } from 'node:util';
import type { Bar } from '../src/domain/market.js';
import { createFeed } from '../src/market-data/index.js';
import { StrategyPool } from '../src/runners/strategy-pool.js';
import { StrategyCatalog, runStrategyStep, type JsonValue } from '../src/strategies/index.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '50' },
    size: { type: 'string', default: '2' },
    strategy: { type: 'string', default: 'sma-crossover' },
  },
});
const sessions = Number(values.sessions);
const rounds = Number(values.rounds);
const size = Number(values.size);

const catalog = new StrategyCatalog();
const { id: strategyId, params } = catalog.resolve(values.strategy);
const definition = catalog.get(strategyId);

// Bars generated up front so both runs time strategy steps only.
const barsBySession: Bar[][][] = Array.from({ length: sessions }, (_, s) => {
  const feed = createFeed({ type: 'synthetic', seed: s }, [`S${s}`], { accelerated: true });
  return Array.from({ length: rounds }, () => feed.next()!);
});
const initial = (): JsonValue[] => Array.from({ length: sessions }, () => definition.initialState(params));

// Main thread: the same steps, one after another.
let states = initial();
let signals = 0;
let start = performance.now();
for (let r = 0; r < rounds; r++) {
  for (let s = 0; s < sessions; s++) {
    const result = runStrategyStep(definition, states[s]!, barsBySession[s]![r]!, params);
    states[s] = result.state;
    signals += result.signals.length;
  }
}
const mainMs = performance.now() - start;
const mainSignals = signals;

// Pool: every session's step of a round in flight at once, as runners on a shared pool would be.
const pool = new StrategyPool({ size });
await Promise.all(Array.from({ length: size * 4 }, (_, i) =>
  pool.evaluate({ sessionId: `warm-${i}`, strategyId, params, state: definition.initialState(params), bars: [] }),
));
states = initial();
signals = 0;
start = performance.now();
for (let r = 0; r < rounds; r++) {
  const results = await Promise.all(
    states.map((state, s) => pool.evaluate({ sessionId: `s-${s}`, strategyId, params, state, bars: barsBySession[s]![r]! })),
  );
  states = results.map((x) => x.state);
  for (const x of results) signals += x.signals.length;
}
const poolMs = performance.now() - start;
const stats = pool.stats();
await pool.close();

const steps = sessions * rounds;
const perSec = (ms: number): number => Math.round(steps / (ms / 1000));
console.log(`strategy ${strategyId}, ${sessions} sessions x ${rounds} rounds = ${steps} steps, pool size ${size}`);
console.log(`main thread: ${perSec(mainMs)} steps/s (${mainMs.toFixed(0)} ms), ${mainSignals} signals`);
console.log(`pool:        ${perSec(poolMs)} steps/s (${poolMs.toFixed(0)} ms), ${signals} signals, utilization ${stats.utilization.toFixed(2)}`);
console.log(`ratio pool/main: ${(mainMs / poolMs).toFixed(3)}`);
if (signals !== mainSignals) {
  console.error(`signal counts differ: pool ${signals} vs main ${mainSignals}`);
  process.exitCode = 1;
}
