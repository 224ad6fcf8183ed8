import test from 'ava';
import { fileURLToPath } from 'node:url';
import { buildBook, type StrategyBook } from '../src/domain/book.js';
import type { Bar, Signal } from '../src/domain/market.js';
import type { Position } from '../src/domain/order.js';
import { applyFills } from '../src/domain/pnl.js';
import {
  StrategyCatalog,
  buyAndHold,
  rsiFromAverages,
  rsiMeanReversion,
  runStrategyStep,
  smaCrossover,
  type AnyStrategyDefinition,
  type JsonValue,
} from '../src/strategies/index.js';

const T0 = Date.UTC(2024, 0, 2, 14, 30);
const MINUTE = 60_000;
const at = (i: number): number => T0 + i * MINUTE;
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/strategies/${name}`, import.meta.url));

function barsFrom(closes: number[], symbol = 'AAA'): Bar[] {
  return closes.map((close, i) => ({ symbol, time: at(i), open: close, high: close, low: close, close, volume: 100 }));
}

/**
 * Feeds bars in chunks, passing state through a JSON round trip as persistence does, with a book: by default
 * each step's signals fill in full at the step's last close before the next step (`fill: false`: every
 * order is refused, the book stays flat).
 */
function run(definition: AnyStrategyDefinition, params: Record<string, unknown>, bars: Bar[], chunk = 1, opts: { fill?: boolean; start?: Position[] } = {}): Signal[] {
  return simulate(definition, params, bars, chunk, opts).signals;
}

function simulate(definition: AnyStrategyDefinition, params: Record<string, unknown>, bars: Bar[], chunk = 1, opts: { fill?: boolean; start?: Position[] } = {}) {
  const p = definition.paramsSchema.parse(params) as Record<string, unknown>;
  let state: JsonValue = definition.initialState(p);
  let positions: Position[] = opts.start ?? [];
  const lastPrices: Record<string, number> = {};
  const signals: Signal[] = [];
  const books: StrategyBook[] = [];
  for (let i = 0; i < bars.length; i += chunk) {
    const batch = bars.slice(i, i + chunk);
    for (const b of batch) lastPrices[b.symbol] = b.close;
    const book = buildBook({ initialEquity: 1000, positions, lastPrices, openOrders: [] });
    books.push(book);
    const result = runStrategyStep(definition, state, batch, p, JSON.parse(JSON.stringify(book)) as StrategyBook);
    state = JSON.parse(JSON.stringify(result.state)) as JsonValue;
    signals.push(...result.signals);
    if (opts.fill ?? true) positions = applyFills(result.signals.map((s) => ({ symbol: s.symbol, side: s.side, qty: s.qty, price: lastPrices[s.symbol]! })), positions);
  }
  return { signals, state, books };
}

/** [key, side, qty] of each signal: the key carries symbol and bar time. */
const brief = (signals: Signal[]): Array<[string, string, number]> => signals.map((s) => [s.key, s.side, s.qty]);

// fast=2, slow=4. By hand (fast/slow SMA at bar i vs bar i-1):
//   i=5: fast 11 > slow 10.5, was 10 <= 10        -> buy
//   i=8: fast 10 < slow 11.5, was 13 >= 12        -> sell
//   i=11: fast 8 > slow 7.5, was 6 <= 8           -> buy
const SMA_CLOSES = [10, 10, 10, 10, 10, 12, 14, 12, 8, 6, 6, 10, 14];

test('sma-crossover buys on the cross above and sells on the cross below, long-only', (t) => {
  const signals = run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, barsFrom(SMA_CLOSES));
  t.deepEqual(brief(signals), [
    [`AAA:${at(5)}:buy`, 'buy', 3],
    [`AAA:${at(8)}:sell`, 'sell', 3],
    [`AAA:${at(11)}:buy`, 'buy', 3],
  ]);
  t.true(signals.every((s) => s.type === 'market' && s.symbol === 'AAA'));
  t.regex(signals[0]!.reason!, /fast SMA 11, slow SMA 10\.5/);
});

test('sma-crossover emits nothing before it has slow + 1 closes, and never sells short', (t) => {
  // Falling series: fast crosses below slow, but the strategy is flat.
  t.deepEqual(run(smaCrossover, { fast: 2, slow: 4 }, barsFrom([10, 10, 10, 10, 10, 8, 6, 4])), []);
  t.deepEqual(run(smaCrossover, { fast: 2, slow: 4 }, barsFrom([10, 10, 10, 14])), []);
  t.is(run(smaCrossover, { fast: 2, slow: 4 }, barsFrom([10, 10, 10, 10, 14])).length, 1);
});

test('sma-crossover gives the same state whatever the batch size, and the same signals when no two fall in one step', (t) => {
  const params = { fast: 2, slow: 4, qty: 3 };
  const one = simulate(smaCrossover, params, barsFrom(SMA_CLOSES), 1);
  t.deepEqual(simulate(smaCrossover, params, barsFrom(SMA_CLOSES), 2).signals, one.signals);
  t.deepEqual(simulate(smaCrossover, params, barsFrom(SMA_CLOSES), 4).state, one.state);
  t.deepEqual(simulate(smaCrossover, params, barsFrom(SMA_CLOSES), 100).state, one.state);
  // One order per symbol per step: the buy at bar 5 is not yet in the book when bar 8 crosses below.
  t.deepEqual(brief(simulate(smaCrossover, params, barsFrom(SMA_CLOSES), 100).signals), [[`AAA:${at(5)}:buy`, 'buy', 3]]);
});

test('sma-crossover trades from the book: a buy that never fills is never followed by a sell', (t) => {
  // Every order refused (a risk limit under one order's qty or notional): the book stays flat.
  const refused = run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, barsFrom(SMA_CLOSES), 1, { fill: false });
  t.deepEqual(brief(refused), [
    [`AAA:${at(5)}:buy`, 'buy', 3],
    [`AAA:${at(11)}:buy`, 'buy', 3],
  ]);
});

test('sma-crossover sells exactly what the book holds and places nothing while an order is open', (t) => {
  const params = smaCrossover.paramsSchema.parse({ fast: 2, slow: 4, qty: 3 });
  const bars = barsFrom(SMA_CLOSES);
  let state: JsonValue = smaCrossover.initialState(params);
  state = runStrategyStep(smaCrossover, state, bars.slice(0, 8), params).state;
  const held = buildBook({ initialEquity: 1000, positions: applyFills([{ symbol: 'AAA', side: 'buy', qty: 7, price: 10 }]), lastPrices: { AAA: 12 }, openOrders: [] });
  t.deepEqual(brief(runStrategyStep(smaCrossover, state, bars.slice(8, 9), params, held).signals), [[`AAA:${at(8)}:sell`, 'sell', 7]]);
  const busy: StrategyBook = { ...held, openOrders: [{ clientOrderId: 'x', symbol: 'AAA', side: 'sell', qty: 7, filledQty: 0, type: 'market', status: 'accepted' }] };
  t.deepEqual(runStrategyStep(smaCrossover, state, bars.slice(8, 9), params, busy).signals, []);
});

test('sma-crossover keeps symbols apart in one batch', (t) => {
  const a = barsFrom(SMA_CLOSES, 'AAA');
  const b = barsFrom([...SMA_CLOSES].reverse(), 'BBB');
  const interleaved = a.flatMap((bar, i) => [bar, b[i]!]);
  const together = run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, interleaved, 2);
  const apart = [
    ...run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, a),
    ...run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, b),
  ];
  t.deepEqual(together.map((s) => s.key).sort(), apart.map((s) => s.key).sort());
  t.true(together.some((s) => s.symbol === 'BBB'));
});

test('a re-run of already seen bars emits no signals twice', (t) => {
  const params = smaCrossover.paramsSchema.parse({ fast: 2, slow: 4, qty: 3 });
  const bars = barsFrom(SMA_CLOSES);
  const first = runStrategyStep(smaCrossover, smaCrossover.initialState(params), bars, params);
  const again = runStrategyStep(smaCrossover, first.state, bars.slice(5), params);
  t.is(first.signals.length, 1);
  t.deepEqual(again.signals, []);
  t.deepEqual(again.state, first.state);
});

// period=3 (Wilder). Changes: +1 +1 -3 -3 -1 +3 +4 +1. By hand:
//   i=3: avgGain 2/3, avgLoss 1        -> RSI 40
//   i=4: avgGain 4/9, avgLoss 5/3      -> RSI 21.05  < 30 -> buy
//   i=5: 8/27, 13/9                    -> RSI 17.02
//   i=6: 97/81, 26/27                  -> RSI 55.43
//   i=7: 518/243, 52/81                -> RSI 76.85  > 70 -> sell
//   i=8: 1279/729, 104/243             -> RSI 80.39 (flat: nothing)
const RSI_CLOSES = [10, 11, 12, 9, 6, 5, 8, 12, 13];

test('rsi-mean-reversion buys below oversold and sells above overbought (Wilder RSI)', (t) => {
  const signals = run(rsiMeanReversion, { period: 3, oversold: 30, overbought: 70, qty: 2 }, barsFrom(RSI_CLOSES));
  t.deepEqual(brief(signals), [
    [`AAA:${at(4)}:buy`, 'buy', 2],
    [`AAA:${at(7)}:sell`, 'sell', 2],
  ]);
  t.regex(signals[0]!.reason!, /RSI 21\.05 below oversold 30/);
  t.regex(signals[1]!.reason!, /RSI 76\.85 above overbought 70/);
});

test('rsi-mean-reversion gives the same state whatever the batch size, and the same signals when no two fall in one step', (t) => {
  const params = { period: 3, qty: 2 };
  const one = simulate(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 1);
  t.deepEqual(simulate(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 3).signals, one.signals);
  t.deepEqual(simulate(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 50).state, one.state);
});

test('rsi-mean-reversion trades from the book: a level test, never a sell of what it does not hold', (t) => {
  // Refused entries: tried again on each oversold bar (level), and never a sell.
  const refused = run(rsiMeanReversion, { period: 3, oversold: 30, overbought: 70, qty: 2 }, barsFrom(RSI_CLOSES), 1, { fill: false });
  t.deepEqual(brief(refused), [
    [`AAA:${at(4)}:buy`, 'buy', 2],
    [`AAA:${at(5)}:buy`, 'buy', 2],
  ]);
  // Held before the session's first signal (e.g. 5 from an earlier run): the exit sells those 5.
  const start = applyFills([{ symbol: 'AAA', side: 'buy', qty: 5, price: 10 }]);
  const exits = run(rsiMeanReversion, { period: 3, oversold: 30, overbought: 70, qty: 2 }, barsFrom(RSI_CLOSES), 1, { start });
  t.deepEqual(brief(exits), [[`AAA:${at(7)}:sell`, 'sell', 5]]);
});

test('rsi is 100 on a series with gains and no losses, 50 on a series that never moves', (t) => {
  t.is(rsiFromAverages(1.5, 0), 100);
  t.is(rsiFromAverages(0, 0), 50);
  t.is(rsiFromAverages(0, 2), 0);
  t.is(rsiFromAverages(1, 1), 50);
});

test('buy-and-hold buys each symbol once, on its first bar', (t) => {
  const bars = [...barsFrom([1, 2, 3], 'AAA'), ...barsFrom([5, 6], 'BBB')];
  t.deepEqual(brief(run(buyAndHold, { qty: 4 }, bars, 2)), [
    [`AAA:${at(0)}:buy`, 'buy', 4],
    [`BBB:${at(0)}:buy`, 'buy', 4],
  ]);
  // A refused buy is not tried again.
  t.deepEqual(brief(run(buyAndHold, { qty: 4 }, barsFrom([1, 2, 3]), 1, { fill: false })), [[`AAA:${at(0)}:buy`, 'buy', 4]]);
});

test('buy-and-hold does not buy a symbol the book already holds', (t) => {
  const start = applyFills([{ symbol: 'AAA', side: 'buy', qty: 4, price: 1 }]);
  t.deepEqual(brief(run(buyAndHold, { qty: 4 }, [...barsFrom([1, 2], 'AAA'), ...barsFrom([5], 'BBB')], 3, { start })), [[`BBB:${at(0)}:buy`, 'buy', 4]]);
});

test('catalog resolves a built-in with defaults applied', (t) => {
  const catalog = new StrategyCatalog();
  t.deepEqual(catalog.resolve('sma-crossover'), {
    id: 'sma-crossover',
    name: 'SMA crossover',
    params: { fast: 5, slow: 20, qty: 1 },
  });
  t.deepEqual(catalog.resolve('rsi-mean-reversion', { period: 10 }).params, {
    period: 10,
    oversold: 30,
    overbought: 70,
    qty: 1,
  });
  t.deepEqual(
    catalog.list().map((s) => [s.id, s.source]),
    [
      ['sma-crossover', 'built-in'],
      ['rsi-mean-reversion', 'built-in'],
      ['buy-and-hold', 'built-in'],
    ],
  );
});

test('catalog rejects an unknown strategy with STRATEGY_NOT_FOUND', (t) => {
  const catalog = new StrategyCatalog();
  t.false(catalog.has('nope'));
  const error = t.throws(() => catalog.resolve('nope', {}));
  t.like(error, { code: 'STRATEGY_NOT_FOUND', message: 'strategy nope is not known' });
  t.like(t.throws(() => catalog.get('nope')), { code: 'STRATEGY_NOT_FOUND' });
});

test('catalog rejects bad params with VALIDATION_ERROR naming the param', (t) => {
  const catalog = new StrategyCatalog();
  const wrongType = t.throws(() => catalog.resolve('sma-crossover', { fast: 'five' }));
  t.is((wrongType as { code?: string }).code, 'VALIDATION_ERROR');
  t.regex(wrongType!.message, /^invalid params for strategy sma-crossover: params\.fast: /);
  const inverted = t.throws(() => catalog.resolve('sma-crossover', { fast: 30, slow: 10 }));
  t.regex(inverted!.message, /params\.slow: slow must be greater than fast/);
  const unknownKey = t.throws(() => catalog.resolve('rsi-mean-reversion', { peroid: 3 }));
  t.regex(unknownKey!.message, /peroid/);
  t.regex(t.throws(() => catalog.resolve('rsi-mean-reversion', { qty: -1 }))!.message, /params\.qty/);
});

test('catalog loads user strategy modules next to the built-ins', async (t) => {
  const catalog = new StrategyCatalog({ modulePaths: [fixture('counter.ts'), fixture('throwing.ts')] });
  await Promise.all([catalog.load(), catalog.load()]);
  t.true(catalog.has('test-counter'));
  t.deepEqual(catalog.resolve('test-counter').params, { every: 2 });
  t.is(catalog.list().find((s) => s.id === 'test-throwing')?.source, fixture('throwing.ts'));
  t.is(catalog.get('test-counter').name, 'Counts steps');
});

test('catalog load fails with VALIDATION_ERROR for a bad, missing or duplicate module', async (t) => {
  const notStrategy = await t.throwsAsync(new StrategyCatalog({ modulePaths: [fixture('not-a-strategy.ts')] }).load());
  t.like(notStrategy, { code: 'VALIDATION_ERROR' });
  t.regex(notStrategy!.message, /must export `strategy`/);
  const missing = await t.throwsAsync(new StrategyCatalog({ modulePaths: [fixture('missing.ts')] }).load());
  t.like(missing, { code: 'VALIDATION_ERROR' });
  t.regex(missing!.message, /missing\.ts could not be loaded/);
  const duplicate = await t.throwsAsync(
    new StrategyCatalog({ modulePaths: [fixture('counter.ts'), fixture('counter.ts')] }).load(),
  );
  t.regex(duplicate!.message, /defines id test-counter, already defined by/);
});

test('a step result with non-JSON state or a malformed signal is rejected', (t) => {
  const bad = (step: AnyStrategyDefinition['step']): AnyStrategyDefinition => ({ ...buyAndHold, id: 'bad', step });
  const bars = barsFrom([1]);
  t.throws(() => runStrategyStep(bad(() => ({ state: { at: new Date() }, signals: [] })), {}, bars, {}), {
    message: /state\.at is not a plain object/,
  });
  t.throws(() => runStrategyStep(bad(() => ({ state: { x: NaN }, signals: [] })), {}, bars, {}), {
    message: /state\.x is NaN/,
  });
  t.throws(
    () => runStrategyStep(bad(() => ({ state: null, signals: [{ key: 'k', symbol: 'A', side: 'buy', qty: 0, type: 'market' }] })), {}, bars, {}),
    { message: /signals\[0\]: qty must be a positive number/ },
  );
});
