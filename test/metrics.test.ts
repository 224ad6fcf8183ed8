import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { judgeBacktest } from '../src/domain/backtest.js';
import { MS_PER_YEAR, periodsPerYearOf } from '../src/domain/equity-curve.js';
import { performanceMetrics, tradeCounts } from '../src/domain/pnl.js';
import { BarFiles } from '../src/market-data/bar-files.js';
import { loadFeed } from '../src/market-data/feed.js';
import { runBacktest } from '../src/runners/backtest-runner.js';
import { StrategyCatalog } from '../src/strategies/catalog.js';
import { tempDir } from './helpers/daemon.js';
import { TEST_PAPER_BROKER, buildTradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

const dir = tempDir('sessiond-metrics-');
const files = new BarFiles({ dirs: [dir] });
const catalog = new StrategyCatalog();
const until = untilWithin(60_000);

/** Two symbols on waves with a gap at each bar's open: fills at the opens differ from the closes. */
function writeWaves(name: string, n: number): string {
  const file = join(dir, name);
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = Date.UTC(2024, 0, 2) + i * 60_000;
    for (const [sym, phase, amp] of [['AAA', 0, 8], ['BBB', 2, 15]] as const) {
      const c = 100 + amp * Math.sin(i / 3 + phase) + i * 0.05;
      const o = c * (1 + 0.004 * Math.cos(i * 1.7 + phase));
      rows.push(`${t},${sym},${o},${Math.max(o, c) + 0.3},${Math.min(o, c) - 0.3},${c},100`);
    }
  }
  writeFileSync(file, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  return file;
}

const waves = writeWaves('waves.csv', 150);
const PARAMS = { fast: 2, slow: 5, qty: 300 };

test.serial('a paper session and a backtest on the same data and strategy report the same max drawdown, return and trades', async (t) => {
  const rig = await buildTradingRig({ file: join(tempDir('sessiond-metrics-paper-'), 'sessiond.db'), marketData: { dirs: [dir] } });
  try {
    await rig.manager.startSession({ id: 'paper-waves', kind: 'paper', strategy: { id: 'sma-crossover', params: PARAMS }, symbols: ['AAA', 'BBB'], feed: { type: 'replay', file: waves } });
    await until('the feed ends', () => rig.manager.getSession('paper-waves').status === 'stopped');
    t.is(rig.manager.getSession('paper-waves').stopReason, 'feed_exhausted');
    const paper = rig.services.runners.performanceOf(rig.store.get('paper-waves')!.session);

    const bt = await runBacktest({
      strategy: catalog.get('sma-crossover'),
      params: PARAMS,
      feed: await loadFeed({ type: 'replay', file: waves }, ['AAA', 'BBB'], { accelerated: true, files }),
      paperBroker: TEST_PAPER_BROKER,
    });
    t.true(bt.fills.length >= 10, `fills ${bt.fills.length}`);
    t.true(bt.metrics.maxDrawdownPct > 0.1, `drawdown ${bt.metrics.maxDrawdownPct}`);
    // The same fills, so the same curve.
    t.deepEqual(rig.services.orders.listFills('paper-waves').map((f) => [f.symbol, f.side, f.qty, f.price]), bt.fills.map((f) => [f.symbol, f.side, f.qty, f.price]));
    t.true(Math.abs(paper.maxDrawdownPct - bt.metrics.maxDrawdownPct) < 1e-9, `paper ${paper.maxDrawdownPct} vs backtest ${bt.metrics.maxDrawdownPct}`);
    t.true(Math.abs(paper.returnPct - bt.metrics.returnPct) < 1e-9, `paper ${paper.returnPct} vs backtest ${bt.metrics.returnPct}`);
    t.is(paper.trades, bt.metrics.trades);
  } finally {
    await rig.close();
  }
});

test('a backtest that ends holding reports the open position as a trade with its marked PnL', async (t) => {
  const bt = await runBacktest({
    strategy: catalog.get('buy-and-hold'),
    params: { qty: 10 },
    feed: await loadFeed({ type: 'replay', file: waves }, ['AAA', 'BBB'], { accelerated: true, files }),
    paperBroker: { ...TEST_PAPER_BROKER, slippageBps: 0, commissionBps: 0 },
  });
  t.is(bt.fills.length, 2);
  t.like(bt.metrics, { trades: 2, openTrades: 2 });
  const expected = bt.positions.reduce((a, p) => a + p.qty * (p.lastPrice - p.avgPrice), 0);
  t.true(Math.abs(bt.metrics.openPnl! - expected) < 1e-9);
  t.true(Math.abs(bt.metrics.returnPct - (expected / 100_000) * 100) < 1e-9, 'no costs: the return is the open PnL');
  // So buy-and-hold passes a minTrades gate on what it did.
  const checks = judgeBacktest(bt.metrics, { minReturnPct: -100, maxDrawdownPct: 100, minSharpe: -100, minTrades: 1 });
  t.true(checks.find((c) => c.name === 'backtest.trades')!.passed);
});

test('sharpe is per step; sharpeAnnualized scales it by the square root of steps per year from the bar interval', async (t) => {
  const bt = await runBacktest({
    strategy: catalog.get('sma-crossover'),
    params: PARAMS,
    feed: await loadFeed({ type: 'replay', file: waves }, ['AAA', 'BBB'], { accelerated: true, files }),
  });
  const curve = [100_000, ...bt.equity.map((e) => e.equity)];
  t.is(bt.metrics.sharpe, performanceMetrics(curve, 0).sharpe);
  t.not(bt.metrics.sharpe, 0);
  // One-minute bars: 525,600 steps in a 365-day year.
  t.is(periodsPerYearOf(bt.equity.map((e) => e.at)), MS_PER_YEAR / 60_000);
  t.true(Math.abs(bt.metrics.sharpeAnnualized! - bt.metrics.sharpe * Math.sqrt(525_600)) < 1e-9);
});

test('trades: round trips closed by a flat or a flip, plus positions still open', (t) => {
  const f = (side: 'buy' | 'sell', qty: number, symbol = 'X') => ({ symbol, side, qty });
  t.deepEqual(tradeCounts([]), { closed: 0, open: 0 });
  t.deepEqual(tradeCounts([f('buy', 5)]), { closed: 0, open: 1 });
  t.deepEqual(tradeCounts([f('buy', 5), f('sell', 5)]), { closed: 1, open: 0 });
  t.deepEqual(tradeCounts([f('buy', 5), f('sell', 8)]), { closed: 1, open: 1 }); // a flip closes one, opens the next
  t.deepEqual(tradeCounts([f('buy', 5), f('buy', 5, 'Y'), f('sell', 2)]), { closed: 0, open: 2 });
});

// Buys 1 on step 1 and sells it on step 3: flat from then on.
const ROUND_TRIP = `
export const strategy = {
  id: 'test-round-trip',
  name: 'Round trip',
  paramsSchema: { safeParse: (v) => ({ success: true, data: {} }) },
  initialState: () => ({ steps: 0 }),
  step(state, bars) {
    const steps = state.steps + 1;
    const last = bars.find((b) => b.symbol === 'AAA');
    const side = steps === 1 ? 'buy' : steps === 3 ? 'sell' : null;
    return { state: { steps }, signals: last && side ? [{ key: last.symbol + ':' + last.time + ':' + side, symbol: last.symbol, side, qty: 1, type: 'market' }] : [] };
  },
};
`;
const roundTripPath = join(dir, 'round-trip.mjs');
writeFileSync(roundTripPath, ROUND_TRIP);

test.serial('a flat position shows the last close as lastPrice, not the price of the fill that closed it', async (t) => {
  const rig = await buildTradingRig({ file: join(tempDir('sessiond-metrics-flat-'), 'sessiond.db'), modules: [roundTripPath], marketData: { dirs: [dir] } });
  try {
    await rig.manager.startSession({ id: 'flat', kind: 'paper', strategy: { id: 'test-round-trip' }, symbols: ['AAA', 'BBB'], feed: { type: 'replay', file: waves } });
    await until('10 steps', () => (rig.services.runnerStates.get('flat')?.steps ?? 0) >= 10);
    await rig.manager.pauseSession('flat');
    const fills = rig.services.orders.listFills('flat');
    t.deepEqual(fills.map((f) => [f.symbol, f.side]), [['AAA', 'buy'], ['AAA', 'sell']]);
    // What GET /api/sessions/:id/positions serves.
    const [aaa] = rig.services.orders.positions('flat');
    const lastClose = rig.services.runnerStates.get('flat')!.lastPrices.AAA!;
    t.like(aaa, { symbol: 'AAA', qty: 0, unrealizedPnl: 0, lastPrice: lastClose });
    t.not(aaa!.lastPrice, fills[1]!.price);
  } finally {
    await rig.close();
  }
});
