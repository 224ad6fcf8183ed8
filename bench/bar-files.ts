/**
 * Loading a replay/backtest bar file: BarFiles (async chunks, streaming parse) against the old way
 * (readFileSync + one parse), on the same file. Prints load time, throughput and the longest stall of the
 * event loop during the load (what every other session, command and HTTP request waits at most).
 * Target: the longest stall stays under 50 ms for a 64 MiB file (the default marketData.maxFileBytes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BarFiles } from '../src/market-data/bar-files.js';
import { parseBarsCsvRows } from '../src/market-data/csv.js';
import { createFeed } from '../src/market-data/feed.js';

const dir = mkdtempSync(join(tmpdir(), 'sessiond-bench-bars-'));
const file = join(dir, 'bars.csv');
const rows = Number(process.env.ROWS ?? 1_000_000);
const lines = ['time,symbol,open,high,low,close,volume'];
const t0 = Date.UTC(2020, 0, 1);
for (let i = 0; i < rows; i++) {
  const p = (100 + Math.sin(i / 50) * 5).toFixed(4);
  lines.push(`${t0 + i * 60_000},SYM${i % 4},${p},${(Number(p) + 1).toFixed(4)},${(Number(p) - 1).toFixed(4)},${p},${1000 + (i % 977)}`);
}
writeFileSync(file, lines.join('\n'));
const bytes = Buffer.byteLength(lines.join('\n'));
console.log(`file: ${rows} rows, ${(bytes / 1048576).toFixed(1)} MiB`);

/** Runs `load` while a 1 ms timer ticks; the longest gap between ticks is the longest stall of the event loop. */
async function measure(name: string, load: () => Promise<unknown>): Promise<void> {
  let last = performance.now();
  let longest = 0;
  let ticking = true;
  const tick = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (ticking) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const start = performance.now();
  await load();
  const ms = performance.now() - start;
  // One more tick after the load, so a stall at its very end is counted too.
  await new Promise((r) => setTimeout(r, 5));
  ticking = false;
  console.log(
    `${name.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms  ${(bytes / 1048576 / (ms / 1000)).toFixed(1).padStart(6)} MiB/s  longest event-loop stall ${longest.toFixed(1)} ms`,
  );
}

const files = new BarFiles({ dirs: [dir], maxFileBytes: 128 * 1024 * 1024, cacheSize: 0 });
await measure('BarFiles.load (async, streaming)', () => files.load('bars.csv'));
await measure('readFileSync + parseBarsCsvRows', async () => {
  // Yield once so the monitor samples around the blocking call.
  await new Promise((r) => setImmediate(r));
  parseBarsCsvRows(readFileSync(file, 'utf8'));
  await new Promise((r) => setImmediate(r));
});
const table = await files.load('bars.csv');
const g0 = performance.now();
createFeed({ type: 'replay', file: 'bars.csv' }, ['SYM0', 'SYM1', 'SYM2', 'SYM3'], { table, accelerated: true });
console.log(`createFeed over the loaded rows (grouping by time, synchronous): ${(performance.now() - g0).toFixed(0)} ms`);
console.log('target: longest stall of BarFiles.load under 50 ms');
