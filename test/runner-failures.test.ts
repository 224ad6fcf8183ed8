import test from 'ava';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { TradingServices } from '../src/daemon/trading.js';
import type { SessionConfigInput } from '../src/domain/session.js';
import { openDatabase } from '../src/persistence/database.js';
import { SqliteBacktestRepository } from '../src/persistence/sqlite-backtest-repository.js';
import { SqliteCommandLog, SqliteSessionStore } from '../src/persistence/sqlite-session-store.js';
import { SessionManager } from '../src/sessions/session-manager.js';
import { BrokerRegistry } from '../src/brokers/broker-registry.js';
import { PaperBroker } from '../src/brokers/paper-broker.js';
import { SqliteOrderRepository } from '../src/persistence/sqlite-order-repository.js';
import { SqliteRunnerStateRepository } from '../src/persistence/sqlite-runner-state-repository.js';
import { RunnerService, type StepPool } from '../src/runners/runner-service.js';
import type { BatchStepOutcome, EvaluateRequest } from '../src/runners/strategy-pool.js';
import { StrategyCatalog } from '../src/strategies/catalog.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig, TEST_RUNNERS, type TradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

// Buys 1 at market every `every` steps (plain .mjs, written at run time).
const STEADY = `
export const strategy = {
  id: 'test-steady',
  name: 'Steady buyer',
  paramsSchema: { safeParse: (v) => ({ success: true, data: { every: 2, ...(v ?? {}) } }) },
  initialState: () => ({ steps: 0 }),
  step(state, bars, p) {
    const steps = state.steps + 1;
    const last = bars[bars.length - 1];
    const signals = last && steps % p.every === 0
      ? [{ key: last.symbol + ':' + last.time, symbol: last.symbol, side: 'buy', qty: 1, type: 'market' }]
      : [];
    return { state: { steps }, signals };
  },
};
`;

const STEP_TIMEOUT_MS = 1500;
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/strategies/${name}`, import.meta.url));
let rig: TradingRig;
let manager: SessionManager;
let services: TradingServices;

test.before(async () => {
  const dir = tempDir('sessiond-runner-failures-');
  const steady = join(dir, 'steady.mjs');
  writeFileSync(steady, STEADY);
  rig = await buildTradingRig({
    file: join(dir, 'sessiond.db'),
    modules: [steady, fixture('throwing.ts'), fixture('exiting.ts'), fixture('hanging.ts'), fixture('slow.ts')],
    // Long backoff: the neighbour visibly trades while the faulty session is being restarted. The step
    // timeout is generous: the healthy neighbour shares it, and a loaded machine must not fail its steps.
    runners: { stepTimeoutMs: STEP_TIMEOUT_MS, restartBackoffMs: 200 },
    paperBroker: { slippageBps: 0, commissionBps: 0 },
    recover: false,
  });
  ({ manager, services } = rig);
});

test.after.always(async () => {
  await rig?.close();
});

function session(id: string, strategyId: string): SessionConfigInput {
  return { id, kind: 'paper', strategy: { id: strategyId }, symbols: ['AAA'], feed: { type: 'synthetic', intervalMs: 10 } };
}

const until = untilWithin(60_000);

const progress = (id: string) => ({
  steps: services.runnerStates.get(id)?.steps ?? 0,
  orders: services.orders.listBySession(id).length,
});

const modes: [string, string, 'threw' | 'exited' | 'timeout', RegExp][] = [
  ['throws', 'test-throwing', 'threw', /^STRATEGY_FAILED: strategy test-throwing \(session faulty-throws\) threw: boom: strategy bug \(runner restarted 2 times\)$/],
  ['exits its thread', 'test-exiting', 'exited', /^STRATEGY_FAILED: strategy test-exiting \(session faulty-exits\): worker thread died during the step \(worker exited with code: 3\) \(runner restarted 2 times\)$/],
  ['hangs past the step timeout', 'test-hanging', 'timeout', /^STRATEGY_FAILED: strategy test-hanging \(session faulty-hangs\): step ran longer than 1500 ms; its thread was terminated \(runner restarted 2 times\)$/],
];

for (const [mode, strategyId, kind, error] of modes) {
  const tag = mode.split(' ')[0]!;
  // Serial: each failure mode is measured on its own. Run together on a 2-thread pool, a hung step and a
  // thread being replaced (its modules reload) can hold both threads at once and starve every neighbour.
  test.serial(`a strategy that ${mode} is restarted with backoff, then stopped with runner_failed; its neighbour keeps trading`, async (t) => {
    const healthy = `healthy-${tag}`;
    const faulty = `faulty-${tag}`;
    await manager.startSession(session(healthy, 'test-steady'));
    await until('the neighbour trading', () => progress(healthy).orders >= 3);
    const before = progress(healthy);
    const failedBefore = services.pool.stats();

    await manager.startSession(session(faulty, strategyId));
    const stopped = await until('the faulty session stopped', () => {
      const v = manager.getSession(faulty);
      return v.status === 'stopped' ? v : undefined;
    });
    t.is(stopped.stopReason, 'runner_failed');
    t.regex(stopped.error!, error);
    const last = manager.history(faulty).at(-1)!;
    t.like(last, { event: 'RUNNER_FAILED', to: 'stopped', source: 'runner' });
    // One first attempt and two restarts, each counted by the pool: the final one under its kind (an
    // earlier one may be a module load that timed out on a loaded machine, counted as a timeout).
    t.is(services.runnerStates.get(faulty)!.failures, TEST_RUNNERS.maxRestarts + 1);
    const failedAfter = services.pool.stats();
    t.true(failedAfter.failedByKind[kind] > failedBefore.failedByKind[kind], `the pool counted a failure of kind ${kind}`);
    t.true(failedAfter.failed - failedBefore.failed >= TEST_RUNNERS.maxRestarts + 1, `the pool counted every failure`);
    // The pool replaced the threads it lost.
    await until('threads replaced', () => services.pool.stats().threads === TEST_RUNNERS.poolSize);

    // The neighbour kept stepping while the faulty one failed (at least the two backoffs long), and trades after.
    const during = progress(healthy);
    t.true(during.steps > before.steps, `steps ${before.steps} -> ${during.steps}`);
    await until('the neighbour still trading', () => progress(healthy).orders >= during.orders + 3);
    t.is(manager.getSession(healthy).status, 'running');
    t.is(services.runnerStates.get(healthy)!.failures, 0);
    await manager.stopSession(healthy);
  });
}

test('pause and resume while steps are in the pool never block the session', async (t) => {
  t.timeout(90_000);
  const id = 'flappy-1';
  // 40 ms steps: a pause or resume usually lands while one is in flight, and a resumed step can come back
  // together with the discarded one.
  await manager.startSession({ ...session(id, 'test-slow'), strategy: { id: 'test-slow', params: { ms: 40 } } });
  await until('stepping', () => progress(id).steps >= 2);
  for (let i = 0; i < 25; i++) {
    await manager.pauseSession(id);
    await new Promise((r) => setTimeout(r, i % 5));
    await manager.resumeSession(id);
    await new Promise((r) => setTimeout(r, 10 + (i % 3) * 15));
  }
  const after = progress(id).steps;
  await until('still stepping', () => progress(id).steps >= after + 3);
  t.is((await manager.stopSession(id)).status, 'stopped');
});

test('a discarded step and its rerun coming back in the same turn do not block the session', async (t) => {
  // A pool whose answers the test releases, to land both results in one commit deterministically.
  const held: { requests: readonly EvaluateRequest[]; resolve: (o: BatchStepOutcome[]) => void }[] = [];
  const pool: StepPool = { size: 2, evaluateBatch: (requests) => new Promise((resolve) => held.push({ requests, resolve })) };
  const file = join(tempDir('sessiond-runner-turn-'), 'sessiond.db');
  const db2 = openDatabase(file);
  const store2 = new SqliteSessionStore(db2);
  const runners = new RunnerService({
    sessions: store2,
    pool,
    strategies: new StrategyCatalog(),
    brokers: new BrokerRegistry().register(new PaperBroker(db2)),
    orders: new SqliteOrderRepository(db2),
    runnerStates: new SqliteRunnerStateRepository(db2),
  });
  const m = new SessionManager({
    store: store2,
    commands: new SqliteCommandLog(store2),
    backtests: new SqliteBacktestRepository(db2),
    brokers: { has: () => true },
    runner: runners,
    performance: runners,
    thresholds: { backtest: { minReturnPct: 0, maxDrawdownPct: 100, minSharpe: 0, minTrades: 0 }, paper: { minRunSeconds: 0, minReturnPct: 0, maxDrawdownPct: 100 } },
  });
  runners.attach(m);
  const within = <T>(p: Promise<T>, what: string) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} blocked`)), 3000))]);
  try {
    await m.startSession({ id: 'turn-1', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'], feed: { type: 'synthetic', intervalMs: 10 } });
    await until('a step in the pool', () => held.length === 1);
    await within(m.pauseSession('turn-1'), 'pause');
    await within(m.resumeSession('turn-1'), 'resume');
    await until('its rerun in the pool', () => held.length === 2);
    const answer = (h: (typeof held)[number]) => h.resolve(h.requests.map((r) => ({ ok: true as const, state: r.state, signals: [] })));
    for (const h of held.splice(0)) answer(h);
    await until('the next step in the pool', () => held.length === 1, 3000);
    t.is((await within(m.pauseSession('turn-1'), 'pause after the commit')).status, 'paused');
    t.is(runners.runnerState('turn-1')!.steps, 1, 'the discarded step was not committed, its rerun was');
    for (const h of held.splice(0)) answer(h);
  } finally {
    await m.close();
    db2.close();
  }
});

test('an unknown strategy is refused at start with STRATEGY_NOT_FOUND', async (t) => {
  const err = await t.throwsAsync(manager.startSession(session('unknown-1', 'no-such-strategy')));
  t.like(err, { code: 'STRATEGY_NOT_FOUND', message: 'strategy no-such-strategy is not known' });
});
