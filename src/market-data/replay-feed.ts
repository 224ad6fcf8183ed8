import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Bar } from '../domain/market.js';
import { ValidationError } from '../domain/errors.js';
import { parseBarsCsvRows, type CsvBarRow } from './csv.js';
import type { Feed } from './feed.js';

export interface ReplayFeedOptions {
  symbols: readonly string[];
  /** CSV path; relative paths resolve against `baseDir`. */
  file: string;
  baseDir: string;
  /** Replay speed factor; undefined replays as fast as possible. */
  speed: number | undefined;
  barsPerStep: number;
  /** intervalMs 0 (tests, backtests). */
  accelerated: boolean;
}

/**
 * Replays bars from a CSV file (see parseBarsCsv), grouped by bar time, keeping only the
 * session's symbols. `intervalMs` is the file's typical (median) bar spacing times
 * `barsPerStep`, divided by `speed`.
 * @throws ValidationError when the file cannot be read, a row is invalid (naming its line),
 * a symbol has two rows at one time, or a session symbol has no rows.
 */
export function createReplayFeed(options: ReplayFeedOptions): Feed {
  const o = options;
  if (!Number.isInteger(o.barsPerStep) || o.barsPerStep < 1) throw new ValidationError('feed.barsPerStep must be a positive integer');
  if (o.speed !== undefined && !(o.speed > 0)) throw new ValidationError('feed.speed must be positive');
  const path = resolvePath(o.baseDir, o.file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new ValidationError(`feed.file: cannot read ${path} (${reason})`);
  }
  const groups = groupByTime(loadRows(text, path, o.symbols), o.symbols, path);
  const spacing = medianSpacing(groups.map((g) => g[0]!.time));
  const intervalMs = o.accelerated || o.speed === undefined ? 0 : (spacing * o.barsPerStep) / o.speed;
  let cursor = 0;

  return {
    kind: 'replay',
    symbols: Object.freeze([...o.symbols]),
    intervalMs,
    length: groups.length,
    dataRef: `replay:${path}`,
    get cursor() {
      return cursor;
    },
    next() {
      if (cursor >= groups.length) return null;
      const end = Math.min(groups.length, cursor + o.barsPerStep);
      const bars: Bar[] = [];
      // Copies: a consumer mutating a bar must not change what a later seek() replays.
      for (; cursor < end; cursor++) for (const bar of groups[cursor]!) bars.push({ ...bar });
      return bars;
    },
    seek(target) {
      if (!Number.isInteger(target) || target < 0) throw new ValidationError(`cursor must be a non-negative integer, got ${target}`);
      cursor = Math.min(target, groups.length);
    },
  };
}

function loadRows(text: string, source: string, symbols: readonly string[]): CsvBarRow[] {
  const rows = parseBarsCsvRows(text, {
    source,
    ...(symbols.length === 1 ? { defaultSymbol: symbols[0]! } : {}),
  });
  const wanted = new Set(symbols);
  const kept = rows.filter((r) => wanted.has(r.bar.symbol));
  const missing = symbols.filter((s) => !kept.some((r) => r.bar.symbol === s));
  if (missing.length > 0) throw new ValidationError(`feed.file: ${source} has no bars for ${missing.join(', ')}`);
  return kept;
}

function groupByTime(rows: CsvBarRow[], symbols: readonly string[], source: string): Bar[][] {
  const order = new Map(symbols.map((s, i) => [s, i]));
  const sorted = [...rows].sort(
    (a, b) => a.bar.time - b.bar.time || order.get(a.bar.symbol)! - order.get(b.bar.symbol)! || a.line - b.line,
  );
  const groups: Bar[][] = [];
  let prev: CsvBarRow | undefined;
  for (const row of sorted) {
    if (prev !== undefined && prev.bar.time === row.bar.time) {
      if (prev.bar.symbol === row.bar.symbol) {
        throw new ValidationError(
          `${source}:${row.line}: second ${row.bar.symbol} bar at ${new Date(row.bar.time).toISOString()} (first on line ${prev.line})`,
        );
      }
      groups.at(-1)!.push(row.bar);
    } else {
      groups.push([row.bar]);
    }
    prev = row;
  }
  return groups;
}

function medianSpacing(times: number[]): number {
  if (times.length < 2) return 0;
  const gaps = times.slice(1).map((t, i) => t - times[i]!).sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)]!;
}
