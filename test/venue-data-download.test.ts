import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { downloadBars } from '../src/cli/data-download.js';
import { BarFiles } from '../src/market-data/bar-files.js';
import { loadFeed } from '../src/market-data/feed.js';
import { AlpacaEmulator } from './emulators/alpaca/alpaca-emulator.js';
import { BinanceEmulator, kline } from './emulators/binance/binance-emulator.js';
import { ROOT, tempDir } from './helpers/daemon.js';

const KEY = 'dl-key-4r5t6y7u8i';
const SECRET = 'dl-secret-9o0p1a2s3d';

function ctl(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/sessionctl.js'), ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('sessionctl data download pages through Binance history into a replay CSV the replay feed reads back', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const dir = tempDir('sessiond-dl-');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ brokers: { bn: { type: 'ccxt', exchange: 'binance', apiKeyEnv: 'DL_KEY', secretEnv: 'DL_SECRET', urls: em.ccxtUrls } } }));
  const env = { SESSIOND_CONFIG: config, SESSIOND_SOURCE: '1', DL_KEY: KEY, DL_SECRET: SECRET };
  const from = Date.UTC(2026, 0, 1);
  const to = from + 2500 * 60_000; // 2,500 one-minute bars: three pages of at most 1,000
  const out = join(dir, 'btc-1m.csv');
  const run = await ctl(['--json', 'data', 'download', '--broker', 'bn', '--symbol', 'BTC/USDT', '--timeframe', '1m', '--from', new Date(from).toISOString(), '--to', new Date(to).toISOString(), '--out', out], env);
  t.is(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { bars: number; pages: number; first: string; last: string };
  t.is(result.bars, 2500);
  t.is(result.pages, 3);
  t.is(em.server.count('GET', '/api/v3/klines'), 3);
  t.is(result.first, new Date(from).toISOString());
  t.is(result.last, new Date(to - 60_000).toISOString());
  t.false(existsSync(`${out}.part`));
  t.is(run.stderr, '', 'no progress bar when stderr is not a TTY');

  // The replay feed reads the file back: every bar, in order, with the venue's values.
  const feed = await loadFeed({ type: 'replay', file: out }, ['BTC/USDT'], { files: new BarFiles({ dirs: [dir] }), accelerated: true });
  const times: number[] = [];
  for (let b = feed.next(); b !== null; b = feed.next()) {
    times.push(b[0]!.time);
    if (times.length === 1234) t.is(b[0]!.close, Number(kline(50_000, b[0]!.time, 60_000).c));
  }
  t.is(times.length, 2500);
  t.true(times.every((x, i) => x === from + i * 60_000));

  // An existing file is kept unless --force; a timeframe the venue lacks and an unknown broker are refused.
  const again = await ctl(['data', 'download', '--broker', 'bn', '--symbol', 'BTC/USDT', '--timeframe', '1m', '--from', String(from), '--to', String(to), '--out', out], env);
  t.is(again.code, 1);
  t.regex(again.stderr, /^VALIDATION_ERROR: .*btc-1m\.csv exists \(--force replaces it\)/m);
  // Refused in process (same code as the command): a timeframe the venue lacks, an unknown broker.
  const denv = { SESSIOND_CONFIG: config, DL_KEY: KEY, DL_SECRET: SECRET };
  const args = { symbol: 'BTC/USDT', from: String(from), to: String(to), out: join(dir, 'x.csv') };
  const tf = await t.throwsAsync(downloadBars({ ...args, broker: 'bn', timeframe: '7m' }, { env: denv }));
  t.is((tf as { code?: string }).code, 'VALIDATION_ERROR');
  t.regex(tf!.message, /^broker bn: timeframe 7m is not one binance has/);
  const nobroker = await t.throwsAsync(downloadBars({ ...args, broker: 'nope', timeframe: '1m' }, { env: denv }));
  t.is((nobroker as { code?: string }).code, 'BROKER_NOT_FOUND');
  // Up to a time still to come: the bar open now is not written (klines include it).
  const recent = await downloadBars({ ...args, out: join(dir, 'recent.csv'), broker: 'bn', timeframe: '1m', from: String(Date.now() - 5 * 60_000), to: String(Date.now() + 3_600_000) }, { env: denv });
  t.true(Date.parse(recent.last!) + 60_000 <= Date.now(), `last bar ${recent.last} is closed`);
  t.true(recent.bars >= 4 && recent.bars <= 5);
  t.false(existsSync(join(dir, 'x.csv')));
  t.false(readFileSync(out, 'utf8').includes(SECRET));
});

test('data download from Alpaca pages past one page (10,000 bars), with a progress bar on a TTY', async (t) => {
  const em = new AlpacaEmulator({ keyId: KEY, secretKey: SECRET });
  await em.start();
  t.teardown(() => em.close());
  const dir = tempDir('sessiond-dl-');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ brokers: { ap: { type: 'alpaca', paper: true, keyIdEnv: 'DL_KEY', secretKeyEnv: 'DL_SECRET', baseUrl: em.url, dataUrl: em.url, rateLimit: { maxRequests: 1000, intervalMs: 1000 } } } }));
  const chunks: string[] = [];
  const tty = Object.assign(
    new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c.toString());
        cb();
      },
    }),
    { isTTY: true, columns: 100, cursorTo: (_x: number, _y?: unknown, cb?: () => void) => (cb?.(), true), clearLine: (_d: number, cb?: () => void) => (cb?.(), true), moveCursor: (_x: number, _y: number, cb?: () => void) => (cb?.(), true) },
  ) as unknown as NodeJS.WriteStream;
  const from = Date.UTC(2026, 0, 5);
  const to = from + 12_000 * 60_000; // more than the 10,000 bars of one page
  const out = join(dir, 'msft.csv');
  const r = await downloadBars({ broker: 'ap', symbol: 'MSFT', timeframe: '1m', from: new Date(from).toISOString(), to: new Date(to).toISOString(), out }, { env: { SESSIOND_CONFIG: config, DL_KEY: KEY, DL_SECRET: SECRET }, progress: tty });
  t.is(r.bars, 12_000);
  t.true(em.server.count('GET', '/v2/stocks/bars') >= 2, 'paged');
  t.regex(chunks.join(''), /MSFT 1m \[.*\] 100% \| 12000\/12000 bars/);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  t.is(lines[0], 'time,symbol,open,high,low,close,volume');
  t.is(lines.length, 12_001);
  t.is(lines[1]!.split(',')[0], String(from));
});
