import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Bar } from '../src/domain/market.js';
import { BarFiles, BarsCsvParser, createFeed, loadFeed, parseBarsCsv, parseBarsCsvRows, seedFromSymbols, type Feed } from '../src/market-data/index.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const take = (feed: Feed, n: number): Bar[][] => Array.from({ length: n }, () => feed.next()!);

test('a synthetic feed is deterministic for a seed', (t) => {
  const a = createFeed({ type: 'synthetic', seed: 42 }, ['AAA', 'BBB'], { accelerated: true });
  const b = createFeed({ type: 'synthetic', seed: 42 }, ['AAA', 'BBB'], { accelerated: true });
  const c = createFeed({ type: 'synthetic', seed: 43 }, ['AAA', 'BBB'], { accelerated: true });
  const batches = take(a, 200);
  t.deepEqual(take(b, 200), batches);
  t.notDeepEqual(take(c, 200), batches);
  t.is(a.cursor, 200);
  t.is(a.dataRef, 'synthetic:42');
});

test('a synthetic batch has one valid bar per symbol, consecutive in time', (t) => {
  const feed = createFeed({ type: 'synthetic', seed: 1, intervalMs: 60_000 }, ['AAA', 'BBB'], { startTime: 0 });
  let prevClose = new Map<string, number>([['AAA', 100], ['BBB', 100]]);
  for (let i = 0; i < 500; i++) {
    const batch = feed.next()!;
    t.deepEqual(batch.map((b) => b.symbol), ['AAA', 'BBB']);
    for (const bar of batch) {
      t.is(bar.time, i * 60_000);
      t.true(bar.high >= Math.max(bar.open, bar.close) && bar.low <= Math.min(bar.open, bar.close) && bar.low > 0);
      t.true(Number.isInteger(bar.volume) && bar.volume > 0);
      // Each bar opens at the previous close: one continuous path per symbol.
      t.true(Math.abs(bar.open - prevClose.get(bar.symbol)!) < 1e-9);
    }
    prevClose = new Map(batch.map((b) => [b.symbol, b.close]));
  }
  const aaa = feed.next()![0]!;
  t.not(aaa.close, 100, 'the walk moves');
});

test('a synthetic feed seeks from a checkpoint to the same bars as stepping there, and a checkpoint far ahead is taken, not replayed to', (t) => {
  const config = { type: 'synthetic' as const, seed: 9, volatility: 0.02 };
  const stepped = createFeed(config, ['X', 'Y'], { accelerated: true });
  take(stepped, 40);
  const checkpoint = JSON.parse(JSON.stringify(stepped.checkpoint!())) as unknown; // as persisted
  const after = take(stepped, 10);
  const restored = createFeed(config, ['X', 'Y'], { accelerated: true });
  restored.seek(40, checkpoint);
  t.is(restored.cursor, 40);
  t.deepEqual(take(restored, 10), after);
  // A checkpoint before the target: forward from it.
  const later = createFeed(config, ['X', 'Y'], { accelerated: true });
  later.seek(45, checkpoint);
  t.deepEqual(take(later, 5), after.slice(5));
  // Cursor 5,000,000 from a checkpoint there: the next open is the checkpoint's close, not the replayed walk's.
  const far = createFeed(config, ['X', 'Y'], { accelerated: true });
  far.seek(5_000_000, { cursor: 5_000_000, logCloses: [Math.log(50), Math.log(70)] });
  const [x, y] = far.next()!;
  t.true(Math.abs(x!.open - 50) < 1e-9 && Math.abs(y!.open - 70) < 1e-9);
  // Not usable (other symbols, past the target, malformed): ignored, the feed replays.
  const ignored = createFeed(config, ['X', 'Y'], { accelerated: true });
  ignored.seek(40, { cursor: 41, logCloses: [0, 0] });
  t.deepEqual(take(ignored, 10), after);
  ignored.seek(40, { cursor: 40, logCloses: [1] });
  t.deepEqual(take(ignored, 10), after);
});

test('a chart counts a synthetic feed back from a later checkpoint: the stepped bars to rounding, from the checkpoint, not from bar 0', (t) => {
  const config = { type: 'synthetic' as const, seed: 5, volatility: 0.02 };
  const stepped = createFeed(config, ['X', 'Y'], { accelerated: true });
  take(stepped, 1400);
  const wanted = take(stepped, 600);
  const checkpoint = JSON.parse(JSON.stringify(stepped.checkpoint!())) as unknown; // at 2,000, as persisted
  const chart = createFeed(config, ['X', 'Y'], { accelerated: true });
  chart.seekBack!(1400, checkpoint);
  t.is(chart.cursor, 1400);
  const got = take(chart, 600).flat();
  const flat = wanted.flat();
  t.is(got.length, flat.length);
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * Math.abs(b);
  t.true(got.every((b, i) => { const w = flat[i]!; return b.time === w.time && b.symbol === w.symbol && close(b.open, w.open) && close(b.close, w.close) && close(b.high, w.high) && close(b.low, w.low) && b.volume === w.volume; }));
  // It starts from the checkpoint's closes: planted ones show (a walk from bar 0 would ignore them).
  const planted = createFeed(config, ['X', 'Y'], { accelerated: true });
  planted.seekBack!(1999, { cursor: 2000, logCloses: [Math.log(50), Math.log(70)] });
  const [x, y] = planted.next()!;
  t.true(Math.abs(x!.close - 50) < 1e-9 && Math.abs(y!.close - 70) < 1e-9);
  // A checkpoint at or before the target, or none usable: exactly what seek gives.
  const early = createFeed(config, ['X', 'Y'], { accelerated: true });
  early.seekBack!(1400, { cursor: 1000, logCloses: (() => { const f = createFeed(config, ['X', 'Y'], { accelerated: true }); take(f, 1000); return f.checkpoint!().logCloses; })() });
  t.deepEqual(take(early, 600), wanted);
  const none = createFeed(config, ['X', 'Y'], { accelerated: true });
  none.seekBack!(1400, { cursor: 'x' });
  t.deepEqual(take(none, 600), wanted);
});

test('a synthetic feed seeks to the same bars as stepping there, forward and back', (t) => {
  const config = { type: 'synthetic' as const, seed: 7, volatility: 0.02, barsPerStep: 1 };
  const stepped = createFeed(config, ['X', 'Y', 'Z'], { accelerated: true });
  const all = take(stepped, 120);
  const seeker = createFeed(config, ['X', 'Y', 'Z'], { accelerated: true });
  seeker.seek(73);
  t.is(seeker.cursor, 73);
  t.deepEqual(take(seeker, 10), all.slice(73, 83));
  seeker.seek(20);
  t.deepEqual(take(seeker, 5), all.slice(20, 25));
  seeker.seek(0);
  t.deepEqual(seeker.next(), all[0]);
  t.throws(() => seeker.seek(-1), { message: /cursor must be a non-negative integer/ });
});

test('a synthetic feed without config is seeded from the symbols', (t) => {
  const a = createFeed(undefined, ['AAA', 'BBB']);
  const b = createFeed(undefined, ['AAA', 'BBB']);
  t.deepEqual(take(a, 20), take(b, 20));
  t.is(a.dataRef, `synthetic:${seedFromSymbols(['AAA', 'BBB'])}`);
  t.is(seedFromSymbols(['BBB', 'AAA']), seedFromSymbols(['AAA', 'BBB']));
  t.not(seedFromSymbols(['AAA']), seedFromSymbols(['AAA', 'BBB']));
  t.is(a.intervalMs, 1000);
  t.is(a.kind, 'synthetic');
});

test('synthetic pacing is bar spacing times barsPerStep, and 0 when accelerated', (t) => {
  const feed = createFeed({ type: 'synthetic', seed: 3, intervalMs: 500, barsPerStep: 4 }, ['A', 'B'], { startTime: 0 });
  t.is(feed.intervalMs, 2000);
  const batch = feed.next()!;
  t.is(batch.length, 8);
  t.deepEqual([...new Set(batch.map((b) => b.time))], [0, 500, 1000, 1500]);
  t.is(feed.cursor, 4);
  t.is(createFeed({ type: 'synthetic', intervalMs: 500 }, ['A'], { accelerated: true }).intervalMs, 0);
});

test('parseBarsCsv reads ISO and epoch-ms times, any column order, quoted fields', (t) => {
  const bars = parseBarsCsv(
    [
      'Symbol,Time,Open,High,Low,Close,Volume',
      '"AAA",2024-03-01T14:30:00Z,10,11,9,10.5,100',
      'AAA,2024-03-01 14:31,10.5,11,10,10.8,0',
      'AAA,2024-03-01T15:32:00+01:00,10.8,11,10,10.9,1',
      'AAA,1709303580000,10.9,11,10.9,11,2',
    ].join('\r\n'),
  );
  t.deepEqual(
    bars.map((b) => b.time),
    [Date.UTC(2024, 2, 1, 14, 30), Date.UTC(2024, 2, 1, 14, 31), Date.UTC(2024, 2, 1, 14, 32), 1709303580000],
  );
  t.deepEqual(bars[0], { symbol: 'AAA', time: Date.UTC(2024, 2, 1, 14, 30), open: 10, high: 11, low: 9, close: 10.5, volume: 100 });
});

test('parseBarsCsv names the line and the problem of a bad row, never its content', (t) => {
  const header = 'time,symbol,open,high,low,close,volume';
  const bad = (row: string): string =>
    t.throws(() => parseBarsCsv(`${header}\n2024-03-01T14:30:00Z,AAA,10,11,9,10.5,100\n\n${row}`, { source: 'bars.csv' }))!.message;
  t.is(bad('2024-03-01T14:31:00Z,AAA,10,11,9,abc,100'), 'bars.csv:4: close is not a number');
  t.is(bad('2024-03-01T14:31:00Z,AAA,10,11,9,,100'), 'bars.csv:4: close is empty');
  t.is(bad('yesterday,AAA,10,11,9,10,100'), 'bars.csv:4: time is neither epoch milliseconds nor ISO-8601');
  t.is(bad('2024-03-01T14:31:00Z,AAA,10,11,9,10'), 'bars.csv:4: expected 7 fields, got 6');
  t.is(bad('2024-03-01T14:31:00Z,AAA,10,9.5,9,10,100'), 'bars.csv:4: high is below open');
  t.is(bad('2024-03-01T14:31:00Z,AAA,-1,11,9,10,100'), 'bars.csv:4: open must be positive');
  t.is(bad('2024-03-01T14:31:00Z,AAA,0,11,9,10,100'), 'bars.csv:4: open must be positive');
  t.is(bad('2024-03-01T14:31:00Z,secret$value,10,11,9,10,100'), 'bars.csv:4: symbol is not a valid symbol (1-32 of A-Z a-z 0-9 . _ / -)');
  t.is(bad('2024-03-01T14:30:00Z,AAA,10,11,9,10,100'), 'bars.csv:4: a second bar for the same symbol and time as line 2');
  t.is(bad('2024-03-01T14:29:00Z,AAA,10,11,9,10,100'), "bars.csv:4: older than the same symbol's bar on line 2 (each symbol's rows must be in time order)");
  const error = t.throws(() => parseBarsCsv('time,open,high,low,close\n1,1,1,1,1'));
  t.is((error as { code?: string }).code, 'VALIDATION_ERROR');
  t.regex(error!.message, /no symbol column/);
  t.regex(t.throws(() => parseBarsCsv('time,symbol,open,high,close\n'))!.message, /csv:1: header has no low column/);
});

test('each symbol must be in time order, but symbols may come one after the other', (t) => {
  const bars = parseBarsCsv(
    ['time,symbol,open,high,low,close', '2,AAA,1,1,1,1', '3,AAA,1,1,1,1', '1,BBB,1,1,1,1', '2,BBB,1,1,1,1'].join('\n'),
  );
  t.deepEqual(bars.map((b) => `${b.symbol}${b.time}`), ['AAA2', 'AAA3', 'BBB1', 'BBB2']);
});

test('BarsCsvParser gives the same rows however the text is chunked', (t) => {
  const text = readFileSync(fixture('bars-two-symbols.csv'), 'utf8').replace(/\n/g, '\r\n');
  const whole = parseBarsCsvRows(text);
  for (const size of [1, 2, 7, 64]) {
    const parser = new BarsCsvParser();
    for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
    t.deepEqual(parser.end(), whole, `chunks of ${size}`);
  }
});

const files = new BarFiles({ dirs: [fixture('')] });

test('a replay feed groups rows by time, keeps only the session symbols and ends with null', async (t) => {
  const feed = await loadFeed({ type: 'replay', file: fixture('bars-two-symbols.csv') }, ['AAA', 'BBB'], { files });
  t.is(feed.intervalMs, 0, 'no speed: as fast as possible');
  t.is(feed.length, 4);
  const batches: Bar[][] = [];
  for (let batch = feed.next(); batch !== null; batch = feed.next()) batches.push(batch);
  t.deepEqual(
    batches.map((b) => b.map((bar) => `${bar.symbol}@${new Date(bar.time).toISOString().slice(11, 16)}=${bar.close}`)),
    [
      ['AAA@14:30=10.5', 'BBB@14:30=19.5'],
      ['AAA@14:31=10.2', 'BBB@14:31=20.8'],
      ['AAA@14:32=10.8'],
      ['AAA@14:33=11', 'BBB@14:33=21.2'],
    ],
  );
  t.is(feed.cursor, 4);
  t.is(feed.next(), null);
  feed.seek(2);
  t.deepEqual(feed.next(), batches[2]);
  feed.seek(99);
  t.is(feed.cursor, 4);
});

test('replay pacing is the bar spacing divided by speed; a relative file is in the first data directory', async (t) => {
  const feed = await loadFeed({ type: 'replay', file: 'bars-one-symbol.csv', speed: 60, barsPerStep: 2 }, ['SPY'], { files });
  t.is(feed.intervalMs, 2000);
  const first = feed.next()!;
  t.deepEqual(first.map((b) => [b.symbol, b.time]), [['SPY', 1709303400000], ['SPY', 1709303460000]]);
  t.is(feed.cursor, 2);
  t.is((await loadFeed({ type: 'replay', file: 'bars-one-symbol.csv', speed: 60 }, ['SPY'], { files, accelerated: true })).intervalMs, 0);
  t.throws(() => createFeed({ type: 'replay', file: 'bars-one-symbol.csv' }, ['SPY']), { message: /needs its file read first/ });
});

test('a replay feed rejects a bad line, a missing file, a missing symbol and a symbol-less file for several symbols', async (t) => {
  const badLine = await t.throwsAsync(loadFeed({ type: 'replay', file: fixture('bars-bad-row.csv') }, ['AAA'], { files }));
  t.is((badLine as { code?: string }).code, 'VALIDATION_ERROR');
  t.is(badLine!.message, `${fixture('bars-bad-row.csv')}:4: high is below low`);
  const missing = await t.throwsAsync(loadFeed({ type: 'replay', file: fixture('nope.csv') }, ['AAA'], { files }));
  t.regex(missing!.message, /^feed\.file: ".*nope\.csv" cannot be read \(ENOENT\)$/);
  t.regex(
    (await t.throwsAsync(loadFeed({ type: 'replay', file: fixture('bars-two-symbols.csv') }, ['AAA', 'ZZZ'], { files })))!.message,
    /has no bars for ZZZ$/,
  );
  t.regex(
    (await t.throwsAsync(loadFeed({ type: 'replay', file: fixture('bars-one-symbol.csv') }, ['AAA', 'BBB'], { files })))!.message,
    /bars-one-symbol\.csv:1: header has no symbol column and the session has several symbols/,
  );
});

test('a replay feed names both lines of a bar out of order, and refuses a symbol twice', async (t) => {
  const file = fixture('bars-duplicate.csv');
  t.is(
    (await t.throwsAsync(loadFeed({ type: 'replay', file }, ['AAA'], { files })))!.message,
    `${file}:4: older than the same symbol's bar on line 3 (each symbol's rows must be in time order)`,
  );
  t.throws(() => createFeed({ type: 'replay', file }, ['AAA', 'AAA']), { message: /symbols must be distinct/ });
});
