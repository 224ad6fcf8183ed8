import test from 'ava';
import { fileURLToPath } from 'node:url';
import type { Bar, Signal } from '../src/domain/market.js';
import {
  StrategyCatalog,
  buyAndHold,
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

/** Feeds bars in chunks, passing state through a JSON round trip as persistence does. */
function run(definition: AnyStrategyDefinition, params: Record<string, unknown>, bars: Bar[], chunk = 1): Signal[] {
  const p = definition.paramsSchema.parse(params) as Record<string, unknown>;
  let state: JsonValue = definition.initialState(p);
  const signals: Signal[] = [];
  for (let i = 0; i < bars.length; i += chunk) {
    const result = runStrategyStep(definition, state, bars.slice(i, i + chunk), p);
    state = JSON.parse(JSON.stringify(result.state)) as JsonValue;
    signals.push(...result.signals);
  }
  return signals;
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

test('sma-crossover gives the same signals whatever the batch size', (t) => {
  const one = run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, barsFrom(SMA_CLOSES), 1);
  t.deepEqual(run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, barsFrom(SMA_CLOSES), 4), one);
  t.deepEqual(run(smaCrossover, { fast: 2, slow: 4, qty: 3 }, barsFrom(SMA_CLOSES), 100), one);
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
  t.is(first.signals.length, 3);
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

test('rsi-mean-reversion gives the same signals whatever the batch size', (t) => {
  const params = { period: 3, qty: 2 };
  const one = run(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 1);
  t.deepEqual(run(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 3), one);
  t.deepEqual(run(rsiMeanReversion, params, barsFrom(RSI_CLOSES), 50), one);
});

test('buy-and-hold buys each symbol once, on its first bar', (t) => {
  const bars = [...barsFrom([1, 2, 3], 'AAA'), ...barsFrom([5, 6], 'BBB')];
  t.deepEqual(brief(run(buyAndHold, { qty: 4 }, bars, 2)), [
    [`AAA:${at(0)}:buy`, 'buy', 4],
    [`BBB:${at(0)}:buy`, 'buy', 4],
  ]);
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
