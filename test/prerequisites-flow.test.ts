import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBacktestHandler } from '../src/commands/backtest-command.js';
import type { BacktestRecord } from '../src/domain/backtest.js';
import { SessiondError } from '../src/domain/errors.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig } from './helpers/trading.js';

// A backtest passes on trades; a paper session passes after one second of running with a bounded loss.
const THRESHOLDS = {
  backtest: { minReturnPct: -100, maxDrawdownPct: 100, minSharpe: -100, minTrades: 3 },
  paper: { minRunSeconds: 1, minReturnPct: -50, maxDrawdownPct: 50 },
};

function writeCsv(file: string, price: (i: number) => number, n = 120): string {
  const rows = Array.from({ length: n }, (_, i) => {
    const p = price(i);
    return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 0.5},${p - 0.5},${p},100`;
  });
  writeFileSync(file, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  return file;
}

test('a backtest run whose result passes lets a live start through; one that fails keeps it out', async (t) => {
  const dir = tempDir();
  const rig = await buildTradingRig({ file: join(dir, 'sessiond.db'), thresholds: THRESHOLDS });
  const { manager, services } = rig;
  const backtest = createBacktestHandler({ manager, catalog: services.catalog, pool: services.pool, files: services.barFiles });
  try {
    // Paper sessions of both strategies trade on a fast synthetic feed for over a second, then stop.
    for (const id of ['sma-crossover', 'rsi-mean-reversion']) {
      await manager.startSession({ id: `paper-${id}`, kind: 'paper', strategy: { id }, symbols: ['AAA'], feed: { type: 'synthetic', seed: 3, intervalMs: 10 } });
    }
    await new Promise((r) => setTimeout(r, 1300));
    for (const id of ['sma-crossover', 'rsi-mean-reversion']) await manager.stopSession(`paper-${id}`);

    // sma-crossover backtested on a wave: it crosses often, so it trades.
    const wave = writeCsv(join(dir, 'wave.csv'), (i) => 100 + 10 * Math.sin(i / 5));
    const passed = (await backtest({ strategyId: 'sma-crossover', data: wave, params: { fast: 2, slow: 5 } }, { commandId: 'bt-pass' })) as BacktestRecord & { steps: number };
    t.is(passed.steps, 120);
    t.true(passed.metrics.trades >= 3, `trades ${passed.metrics.trades}`);
    t.true(passed.passed);
    // Where it came from: run by the daemon, on this file's bytes.
    t.is(passed.source, 'run');
    t.deepEqual(passed.data, {
      file: realpathSync(wave),
      sha256: createHash('sha256').update(readFileSync(wave)).digest('hex'),
      rows: 120,
      from: new Date(Date.UTC(2024, 0, 2)).toISOString(),
      to: new Date(Date.UTC(2024, 0, 2) + 119 * 60_000).toISOString(),
    });
    // rsi-mean-reversion backtested on a steady climb: RSI never gets oversold, so it never trades.
    const climb = writeCsv(join(dir, 'climb.csv'), (i) => 100 + i);
    const failed = (await backtest({ strategyId: 'rsi-mean-reversion', data: climb }, { commandId: 'bt-fail' })) as BacktestRecord;
    t.is(failed.metrics.trades, 0);
    t.false(failed.passed);
    t.deepEqual(failed.checks.filter((c) => !c.passed).map((c) => c.reason), ['0 trades vs min 3']);
    // A hand-written result that would pass is stored as `recorded` and does not open the gate.
    const written = await manager.recordBacktest({ strategyId: 'rsi-mean-reversion', metrics: { returnPct: 50, maxDrawdownPct: 1, sharpe: 3, trades: 99 } }, { commandId: 'bt-written' });
    t.like(written, { source: 'recorded', passed: true });

    const prereq = await manager.checkPrerequisites('sma-crossover');
    t.true(prereq.allPassed, JSON.stringify(prereq.checks));
    const live = await manager.startSession({ id: 'live-sma', kind: 'live', strategy: { id: 'sma-crossover' }, symbols: ['AAA'], feed: { type: 'synthetic', seed: 4, intervalMs: 50 } });
    t.is(live.status, 'running');
    t.is(live.kind, 'live');

    const err = await t.throwsAsync(manager.startSession({ id: 'live-rsi', kind: 'live', strategy: { id: 'rsi-mean-reversion' }, symbols: ['AAA'] }));
    t.is((err as SessiondError).code, 'PREREQUISITES_NOT_MET');
    const checks = ((err as SessiondError).details as { checks: { name: string; passed: boolean; reason: string }[] }).checks;
    t.deepEqual(checks.map((c) => [c.name, c.passed]), [
      ['backtest', false],
      ['paper', true],
    ]);
    t.regex(checks[0]!.reason, /none passed; latest bt-fail: 0 trades vs min 3/);
    t.throws(() => manager.getSession('live-rsi'), { message: 'session live-rsi does not exist' });
  } finally {
    await rig.close();
  }
});
