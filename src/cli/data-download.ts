import { closeSync, existsSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { createVenueClient } from '../brokers/broker-factory.js';
import { loadCcxt } from '../brokers/ccxt/ccxt-client.js';
import { BrokerNotFoundError, ValidationError } from '../domain/errors.js';
import type { Bar } from '../domain/market.js';
import { loadConfig } from '../daemon/config.js';

export interface DataDownloadOptions {
  broker: string;
  symbol: string;
  timeframe: string;
  from: string;
  to: string;
  out: string;
  /** Replace an existing file. @defaultValue false */
  force?: boolean;
  json?: boolean;
}

export interface DataDownloadResult {
  file: string;
  broker: string;
  symbol: string;
  timeframe: string;
  bars: number;
  pages: number;
  /** ISO times of the first and last bar written (undefined when none). */
  first?: string | undefined;
  last?: string | undefined;
}

export interface DataDownloadIo {
  env?: NodeJS.ProcessEnv;
  /** Where the progress bar goes (on only when it is a TTY). @defaultValue process.stderr */
  progress?: NodeJS.WriteStream;
  now?: () => number;
}

/** The replay CSV format (see README, Replay files): epoch ms times, one row per bar. */
const HEADER = 'time,symbol,open,high,low,close,volume\n';

function parseTime(text: string, what: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new ValidationError(`${what} must be an ISO-8601 time or epoch ms: ${text}`);
  return ms;
}

/**
 * `sessionctl data download`: a broker's bars for one symbol and timeframe in [from, to), closed bars only,
 * paged through the venue's history and written in the replay CSV format (to `<out>.part`, renamed when
 * complete), so backtests run on real data. The broker comes from the daemon's config (same loader), the
 * credentials from the environment.
 * @throws BROKER_NOT_FOUND, VALIDATION_ERROR (times, timeframe, an existing file without --force); venue errors.
 */
export async function downloadBars(o: DataDownloadOptions, io: DataDownloadIo = {}): Promise<DataDownloadResult> {
  const env = io.env ?? process.env;
  const now = io.now ?? Date.now;
  const from = parseTime(o.from, '--from');
  const to = parseTime(o.to, '--to');
  if (!(from < to)) throw new ValidationError(`--from (${o.from}) must be before --to (${o.to})`);
  const file = resolve(o.out);
  if (existsSync(file) && o.force !== true) throw new ValidationError(`${file} exists (--force replaces it)`);
  const config = loadConfig(env);
  const def = config.brokers[o.broker];
  if (def === undefined) throw new BrokerNotFoundError(o.broker);
  const client = createVenueClient(
    o.broker,
    { ...def, ...(def.type === 'ccxt' ? { streams: false } : {}) },
    env,
    def.type === 'ccxt' ? await loadCcxt() : undefined,
    def.type === 'alpaca' ? await import('../brokers/alpaca/alpaca-client.js') : undefined,
  );
  if (client.fetchBars === undefined || client.timeframeMs === undefined) throw new ValidationError(`broker ${o.broker} has no bar history`);
  let tf: number;
  try {
    tf = client.timeframeMs(o.timeframe);
  } catch (err) {
    throw new ValidationError(`broker ${o.broker}: ${(err as Error).message}`);
  }
  if (client.loadMarkets !== undefined) {
    const markets = await client.loadMarkets([o.symbol]);
    if (!markets.has(o.symbol)) throw new ValidationError(`symbol ${o.symbol} is not a market of broker ${o.broker} (${client.venue})`);
  }
  const end = Math.min(to, Math.floor(now() / tf) * tf); // bars open before this are closed
  const start = Math.ceil(from / tf) * tf;
  const total = Math.max(0, Math.ceil((end - start) / tf));
  const tty = (io.progress ?? process.stderr).isTTY === true;
  const bar = tty ? new SingleBar({ stream: io.progress ?? process.stderr, format: `${o.symbol} ${o.timeframe} [{bar}] {percentage}% | {value}/{total} bars | page {pages}`, hideCursor: true }) : undefined;
  bar?.start(total, 0, { pages: 0 });
  const part = `${file}.part`;
  const fd = openSync(part, 'w');
  let written = 0;
  let pages = 0;
  let first: number | undefined;
  let last: number | undefined;
  let ok = false;
  try {
    writeSync(fd, HEADER);
    const limit = client.barPageLimit ?? 500;
    let since = start;
    while (since < end) {
      const page: Bar[] = await client.fetchBars(o.symbol, o.timeframe, since, limit);
      pages++;
      const rows = page.filter((b) => b.time >= since && b.time < end);
      if (rows.length === 0) break; // nothing more in the range
      writeSync(fd, rows.map((b) => `${b.time},${o.symbol},${b.open},${b.high},${b.low},${b.close},${b.volume}\n`).join(''));
      written += rows.length;
      first ??= rows[0]!.time;
      last = rows.at(-1)!.time;
      bar?.update(written, { pages });
      since = last + tf;
    }
    ok = true;
  } finally {
    closeSync(fd);
    bar?.stop();
    await client.close?.();
    if (ok) renameSync(part, file);
    else rmSync(part, { force: true });
  }
  const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
  return { file, broker: o.broker, symbol: o.symbol, timeframe: o.timeframe, bars: written, pages, first: iso(first), last: iso(last) };
}

/** The command's action: downloads, then prints a one-line summary (or JSON). */
export async function runDataDownload(o: DataDownloadOptions): Promise<void> {
  const r = await downloadBars(o);
  process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `wrote ${r.bars} bars of ${r.symbol} ${r.timeframe} from ${r.broker} (${r.first ?? '-'} .. ${r.last ?? '-'}, ${r.pages} pages) to ${r.file}\n`);
}
