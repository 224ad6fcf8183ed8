import type { Bar } from '../domain/market.js';
import { ValidationError } from '../domain/errors.js';
import type { BarTable } from './bar-files.js';
import type { Feed } from './feed.js';
import { withCursor } from './feed-cursor.js';

export interface ReplayFeedOptions {
  symbols: readonly string[];
  /** The file's bars, as BarFiles.load read them. */
  table: BarTable;
  /** Replay speed factor; undefined replays as fast as possible. */
  speed: number | undefined;
  barsPerStep: number;
  /** intervalMs 0 (tests, backtests). */
  accelerated: boolean;
}

/**
 * Replays bars from a CSV file (see parseBarsCsv, BarFiles), grouped by bar time, keeping only the
 * session's symbols. `intervalMs` is the file's typical (median) bar spacing times `barsPerStep`,
 * divided by `speed`. Rows of different symbols may come in any order (a file grouped by symbol is
 * fine); each symbol's own rows are in time order, or BarFiles refused the file.
 * @throws ValidationError when a session symbol has no rows, or the file has no symbol column and the
 * session several symbols.
 */
export function createReplayFeed(options: ReplayFeedOptions): Feed {
  const o = options;
  if (!Number.isInteger(o.barsPerStep) || o.barsPerStep < 1) throw new ValidationError('feed.barsPerStep must be a positive integer');
  if (o.speed !== undefined && !(o.speed > 0)) throw new ValidationError('feed.speed must be positive');
  const groups = groupByTime(barsFor(o.table, o.symbols), o.symbols);
  const spacing = medianSpacing(groups.map((g) => g[0]!.time));
  const intervalMs = o.accelerated || o.speed === undefined ? 0 : (spacing * o.barsPerStep) / o.speed;
  let cursor = 0;

  const feed: Omit<Feed, 'cursor'> = {
    kind: 'replay',
    symbols: Object.freeze([...o.symbols]),
    intervalMs,
    length: groups.length,
    dataRef: `replay:${o.table.path}`,
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
  // A getter in the literal would make it a dictionary-mode object (see withCursor).
  return withCursor(feed, () => cursor);
}

/** The session's bars of the table (a symbol-less file's rows take the one session symbol). */
function barsFor(table: BarTable, symbols: readonly string[]): Bar[] {
  if (!table.hasSymbolColumn) {
    if (symbols.length !== 1) {
      throw new ValidationError(`${table.name}:${table.headerLine}: header has no symbol column and the session has several symbols`);
    }
    const symbol = symbols[0]!;
    return table.rows.map((r) => ({ ...r.bar, symbol }));
  }
  const wanted = new Set(symbols);
  const kept = table.rows.filter((r) => wanted.has(r.bar.symbol)).map((r) => r.bar);
  const present = new Set(kept.map((b) => b.symbol));
  const missing = symbols.filter((s) => !present.has(s));
  if (missing.length > 0) throw new ValidationError(`feed.file: ${JSON.stringify(table.name)} has no bars for ${missing.join(', ')}`);
  return kept;
}

function groupByTime(bars: Bar[], symbols: readonly string[]): Bar[][] {
  const order = new Map(symbols.map((s, i) => [s, i]));
  // Files are usually in time order already: then one linear pass groups them. Each symbol has at most one bar
  // per time (BarFiles checked), so sorting by time (stable), then each group by the session's symbol order,
  // gives one bar per symbol per group in a fixed order.
  let inOrder = true;
  for (let i = 1; i < bars.length && inOrder; i++) inOrder = bars[i - 1]!.time <= bars[i]!.time;
  const sorted = inOrder ? bars : [...bars].sort((a, b) => a.time - b.time);
  const groups: Bar[][] = [];
  let prev: Bar | undefined;
  for (const bar of sorted) {
    if (prev !== undefined && prev.time === bar.time) groups.at(-1)!.push(bar);
    else groups.push([bar]);
    prev = bar;
  }
  if (symbols.length > 1) for (const g of groups) if (g.length > 1) g.sort((a, b) => order.get(a.symbol)! - order.get(b.symbol)!);
  return groups;
}

function medianSpacing(times: number[]): number {
  if (times.length < 2) return 0;
  const gaps = times.slice(1).map((t, i) => t - times[i]!).sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)]!;
}
