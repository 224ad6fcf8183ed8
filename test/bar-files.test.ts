import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BarFiles } from '../src/market-data/bar-files.js';
import { tempDir } from './helpers/daemon.js';

const root = tempDir('sessiond-bar-files-');
const data = join(root, 'bars');
const other = join(root, 'other');
mkdirSync(data);
mkdirSync(other);
const HEADER = 'time,symbol,open,high,low,close,volume';
const rows = (n: number, symbol = 'AAA'): string[] =>
  Array.from({ length: n }, (_, i) => `${Date.UTC(2024, 0, 2) + i * 60_000},${symbol},10,11,9,10.5,100`);
writeFileSync(join(data, 'good.csv'), [HEADER, ...rows(3)].join('\n'));
writeFileSync(join(other, 'outside.csv'), [HEADER, ...rows(3)].join('\n'));
const files = new BarFiles({ dirs: [data], maxFileBytes: 4096 });

const refusal = async (file: string, f = files): Promise<string> => {
  try {
    await f.load(file, 'feed.file');
  } catch (e) {
    const x = e as { code?: string; message: string };
    if (x.code !== 'VALIDATION_ERROR') throw e;
    return x.message;
  }
  throw new Error(`${file} was accepted`);
};

test('a file in the data directory loads, by a relative or an absolute name', async (t) => {
  const rel = await files.load('good.csv');
  t.is(rel.rows.length, 3);
  t.deepEqual(rel.symbols, ['AAA']);
  t.is(rel.path, join(data, 'good.csv'));
  t.regex(rel.sha256, /^[0-9a-f]{64}$/);
  const abs = await files.load(join(data, 'good.csv'));
  t.is(abs.sha256, rel.sha256);
});

test('paths outside the data directories are refused, before and after symbolic links', async (t) => {
  t.is(await refusal('/etc/passwd'), 'feed.file: "/etc/passwd" is outside the data directories (marketData.dirs)');
  t.is(await refusal('/proc/self/environ'), 'feed.file: "/proc/self/environ" is outside the data directories (marketData.dirs)');
  t.regex(await refusal('../other/outside.csv'), /is outside the data directories \(marketData\.dirs\)$/);
  t.regex(await refusal(join(data, '..', 'other', 'outside.csv')), /is outside the data directories/);
  symlinkSync(join(other, 'outside.csv'), join(data, 'link-out.csv'));
  symlinkSync('/dev/zero', join(data, 'zero.csv'));
  symlinkSync(other, join(data, 'dir-link'));
  t.is(await refusal('link-out.csv'), 'feed.file: "link-out.csv" is outside the data directories once symbolic links are resolved (marketData.dirs)');
  t.regex(await refusal('zero.csv'), /once symbolic links are resolved/);
  t.regex(await refusal('dir-link/outside.csv'), /once symbolic links are resolved/);
  // A link that stays inside is fine.
  symlinkSync(join(data, 'good.csv'), join(data, 'link-in.csv'));
  t.is((await files.load('link-in.csv')).rows.length, 3);
  t.regex(await refusal('nope.csv'), /^feed\.file: "nope\.csv" cannot be read \(ENOENT\)$/);
  t.is(await refusal(''), 'feed.file: must be a file path');
});

test('only regular files are read: a FIFO is refused at once and the event loop keeps running', async (t) => {
  const fifo = join(data, 'pipe.csv');
  execFileSync('mkfifo', [fifo]);
  // Nobody ever writes to it: a blocking read would hang this test until ava's timeout.
  t.is(await refusal('pipe.csv'), 'feed.file: "pipe.csv" is not a regular file (a FIFO)');
  mkdirSync(join(data, 'sub.csv'));
  t.is(await refusal('sub.csv'), 'feed.file: "sub.csv" is not a regular file (a directory)');
});

test('a file over the size limit is refused without reading it whole', async (t) => {
  writeFileSync(join(data, 'big.csv'), [HEADER, ...rows(200)].join('\n'));
  t.regex(await refusal('big.csv'), /^feed\.file: "big\.csv" is \d+ bytes, larger than marketData\.maxFileBytes \(4096\)$/);
  writeFileSync(join(data, 'one-line.csv'), 'x'.repeat(70 * 1024));
  const roomy = new BarFiles({ dirs: [data], maxFileBytes: 1024 * 1024 });
  t.regex(await refusal('one-line.csv', roomy), /has a line longer than 65536 characters$/);
});

test('errors name the file and line, never the content', async (t) => {
  const secret = 'root:$6$saltsalt$c2VjcmV0aGFzaA:19000:0:99999:7:::';
  writeFileSync(join(data, 'shadow-like.csv'), `${HEADER}\n${secret}\n`);
  const m1 = await refusal('shadow-like.csv');
  t.is(m1, 'shadow-like.csv:2: expected 7 fields, got 1');
  writeFileSync(join(data, 'fields.csv'), `${HEADER}\n2024-01-01,TOP-SECRET-1,hunter2,11,9,10,1\n`);
  const m2 = await refusal('fields.csv');
  t.is(m2, 'fields.csv:2: open is not a number');
  writeFileSync(join(data, 'symbol.csv'), `${HEADER}\n2024-01-01,pass:word,10,11,9,10,1\n`);
  t.false((await refusal('symbol.csv')).includes('pass:word'));
  writeFileSync(join(data, 'header.csv'), 'password=hunter2,x,y\n1,2,3\n');
  t.false((await refusal('header.csv')).includes('hunter2'));
});

test('what a backtest refuses: empty, header only, zero or negative price, duplicate, out of order', async (t) => {
  const cases: [string, string, string][] = [
    ['empty.csv', '', 'empty.csv: no header row (expected time,symbol,open,high,low,close,volume)'],
    ['header-only.csv', `${HEADER}\n`, 'header-only.csv:1: no bars after the header'],
    ['zero-price.csv', `${HEADER}\n${rows(1)[0]!.replace(',10,', ',0,')}`, 'zero-price.csv:2: open must be positive'],
    ['negative.csv', `${HEADER}\n${rows(1)[0]!.replace(',9,', ',-9,')}`, 'negative.csv:2: low must be positive'],
    ['dup.csv', [HEADER, ...rows(2), rows(2)[1]!].join('\n'), 'dup.csv:4: a second bar for the same symbol and time as line 3'],
    ['unsorted.csv', [HEADER, ...rows(3).reverse()].join('\n'), "unsorted.csv:3: older than the same symbol's bar on line 2 (each symbol's rows must be in time order)"],
  ];
  for (const [name, text, message] of cases) {
    writeFileSync(join(data, name), text);
    t.is(await refusal(name), message, name);
  }
});

test('a file is read in chunks: other callbacks run while it loads', async (t) => {
  const big = new BarFiles({ dirs: [data], maxFileBytes: 8 * 1024 * 1024 });
  writeFileSync(join(data, 'many.csv'), [HEADER, ...rows(40_000)].join('\n'));
  let ticks = 0;
  let running = true;
  const spin = (): void => {
    ticks++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  const table = await big.load('many.csv');
  running = false;
  t.is(table.rows.length, 40_000);
  // A synchronous read and parse would let no other callback run until it returned.
  t.true(ticks > 10, `${ticks} turns of the event loop ran during the load`);
});

test('a changed file is read again; an unchanged one comes from the cache', async (t) => {
  const f = new BarFiles({ dirs: [data] });
  writeFileSync(join(data, 'changing.csv'), [HEADER, ...rows(2)].join('\n'));
  const a = await f.load('changing.csv');
  const b = await f.load('changing.csv');
  t.is(b.rows, a.rows, 'same parsed rows');
  writeFileSync(join(data, 'changing.csv'), [HEADER, ...rows(5)].join('\n'));
  const c = await f.load('changing.csv');
  t.is(c.rows.length, 5);
});
