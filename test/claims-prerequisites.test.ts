import test from 'ava';
import { join } from 'node:path';
import type { SessiondError } from '../src/domain/errors.js';
import { createFeed } from '../src/market-data/feed.js';
import { fnv1a } from '../src/market-data/synthetic-feed.js';
import { feedConfigOf } from '../src/runners/runner-service.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

const until = untilWithin(60_000);

test('a losing, drawing-down paper session keeps live out, with the paper check naming its figures (computed from its own book)', async (t) => {
  // Every order pays a 500 commission: buying 1 share of each symbol loses about 1% of the 100,000 account.
  const rig = await buildTradingRig({
    file: join(tempDir(), 'sessiond.db'),
    paperBroker: { commissionPerOrder: 500 },
    thresholds: {
      backtest: { minReturnPct: -100, maxDrawdownPct: 100, minSharpe: -100, minTrades: 0, acceptRecorded: true },
      paper: { minRunSeconds: 1, minReturnPct: 0, maxDrawdownPct: 0.5 },
    },
  });
  const { manager, services } = rig;
  try {
    await manager.recordBacktest({ strategyId: 'buy-and-hold', metrics: { returnPct: 10, maxDrawdownPct: 1, sharpe: 2, trades: 10 } }, { commandId: 'bt-1' });
    await manager.startSession({ id: 'paper-loser', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA', 'BBB'], feed: { type: 'synthetic', seed: 5, intervalMs: 20, volatility: 0.0001 } });
    await until('both buys filled', () => services.orders.listFills('paper-loser').length >= 2);
    // Ran past minRunSeconds (so only the figures can fail it), then stopped.
    await until('a second of running', () => Date.now() - Date.parse(manager.getSession('paper-loser').startedAt!) > 1200);
    await manager.stopSession('paper-loser');
    const perf = services.runners.performanceOf(rig.store.get('paper-loser')!.session);
    t.true(perf.returnPct < -0.5, `return ${perf.returnPct}`);
    t.true(perf.maxDrawdownPct > 0.5, `drawdown ${perf.maxDrawdownPct}`);

    const err = await t.throwsAsync(manager.startSession({ id: 'live-1', kind: 'live', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'] }));
    t.is((err as SessiondError).code, 'PREREQUISITES_NOT_MET');
    const checks = ((err as SessiondError).details as { checks: { name: string; passed: boolean; reason: string }[] }).checks;
    t.deepEqual(checks.map((c) => [c.name, c.passed]), [
      ['backtest', true],
      ['paper', false],
    ]);
    t.regex(checks[1]!.reason, new RegExp(`^1 paper session\\(s\\), none passed; longest paper-loser: return ${perf.returnPct.toFixed(2)}% < 0%, drawdown ${perf.maxDrawdownPct.toFixed(2)}% > 0\\.5%$`));
    t.regex((err as Error).message, /paper/);
    t.throws(() => manager.getSession('live-1'), { message: 'session live-1 does not exist' });
  } finally {
    await rig.close();
  }
});

test('without a feed a session trades on a synthetic market seeded from its id: the same id, the same bars', (t) => {
  const a = feedConfigOf({ id: 'seed-a', feed: undefined }, 1000);
  t.deepEqual(a, { type: 'synthetic', seed: fnv1a('seed-a') | 0, intervalMs: 1000, barsPerStep: 1 });
  const bars = (id: string) => {
    const feed = createFeed(feedConfigOf({ id, feed: undefined }, 1000), ['AAA'], { accelerated: true });
    return Array.from({ length: 5 }, () => feed.next() ?? []).flat().map((b) => b.close);
  };
  t.deepEqual(bars('seed-a'), bars('seed-a'));
  t.notDeepEqual(bars('seed-a'), bars('seed-b'));
  // A feed without a seed gets the id's too; an explicit seed wins.
  t.like(feedConfigOf({ id: 'seed-a', feed: { type: 'synthetic', intervalMs: 50 } }, 1000), { seed: fnv1a('seed-a') | 0, intervalMs: 50 });
  t.like(feedConfigOf({ id: 'seed-a', feed: { type: 'synthetic', seed: 9 } }, 1000), { seed: 9, intervalMs: 1000 });
});
