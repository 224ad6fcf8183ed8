import type { Bar } from '../domain/market.js';
import type { FeedConfig } from '../domain/session.js';
import { ValidationError } from '../domain/errors.js';
import type { BarFiles, BarTable } from './bar-files.js';
import { createReplayFeed } from './replay-feed.js';
import { createSyntheticFeed, seedFromSymbols } from './synthetic-feed.js';
import { VenueFeed, type VenueBarSource, type VenueFeedLogger } from './venue-feed.js';

/**
 * A source of bars for one session. It never sleeps: the runner calls `next()` every
 * `intervalMs` and persists `cursor` so it can `seek()` back after a restart.
 */
export interface Feed {
  readonly kind: 'synthetic' | 'replay' | 'venue';
  readonly symbols: readonly string[];
  /** How long the runner waits between batches; 0 means as fast as possible. */
  readonly intervalMs: number;
  /** Bar times consumed so far: the position `seek()` accepts. */
  readonly cursor: number;
  /** Bar times the feed has in all (Infinity for synthetic). */
  readonly length: number;
  /** Where the bars come from, for backtest records: `synthetic:<seed>`, `replay:<path>` or `venue:<broker>:<timeframe>`. */
  readonly dataRef: string;
  /**
   * The next batch, oldest first: `barsPerStep` bar times, each with one bar per symbol
   * (synthetic) or the file's rows at that time (replay). Null when exhausted. A venue feed is never
   * exhausted: it answers an empty batch when no closed bar is due yet ("nothing yet", not a step).
   */
  next(): Bar[] | null;
  /**
   * Moves to a cursor (as read from `cursor`); the bars that follow are the same as when stepping there.
   * `checkpoint`: what `checkpoint()` gave at some cursor at or before this one; the feed seeks from there
   * instead of from the start (a synthetic feed's closes are a running sum). Anything else is ignored.
   */
  seek(cursor: number, checkpoint?: unknown): void;
  /** Feeds whose seek would otherwise replay from the start (synthetic): a plain-JSON restore point at `cursor`. */
  checkpoint?(): { cursor: number; logCloses: number[] };
  /**
   * For charts of bars already stepped (synthetic): moves to `cursor` from a `checkpoint()` taken at or after
   * it, counting the running sum back, so the cost is the distance, not the session's age. Bars from there
   * equal the stepped ones to floating-point rounding (about 1e-12 relative), not bit for bit: never for
   * stepping. A checkpoint before `cursor` is used as `seek` uses it; without a usable one, this is `seek`.
   */
  seekBack?(cursor: number, checkpoint: unknown): void;
  /** Feeds with bars arriving in the background (venue): called when a batch may have become due. */
  onReady?(listener: () => void): void;
  /** Feeds with bars arriving in the background (venue): a batch is due now (a wake came while a step ran). */
  hasDue?(): boolean;
  /** Feeds holding timers or streams (venue): releases them; idempotent. */
  close?(): void;
}

export interface CreateFeedOptions {
  /**
   * Tests and backtests: `intervalMs` is 0, whatever the config says.
   * @defaultValue false
   */
  accelerated?: boolean;
  /** A replay feed's bars, as BarFiles.load read its `file` (loadFeed reads it). */
  table?: BarTable;
  /**
   * Epoch ms of a synthetic feed's first bar. Keep it fixed per session: signal keys contain bar times.
   * @defaultValue 2024-01-01T00:00:00Z
   */
  startTime?: number;
  /** A venue feed's bars: the session's broker (`broker.bars`); absent for brokers without market data. */
  venue?: VenueBarSource | undefined;
  logger?: VenueFeedLogger | undefined;
}

/**
 * The feed a session's config asks for; no config means a synthetic feed seeded from the symbols.
 * A replay feed needs its file's bars in `opts.table`: use loadFeed, which reads them.
 * @throws ValidationError for an empty symbol list, a bad config or replay bars that do not fit.
 * @example
 * const feed = createFeed({ type: 'synthetic', seed: 7 }, ['AAPL', 'MSFT'], { accelerated: true });
 * const batch = feed.next(); // one bar for AAPL, one for MSFT
 */
export function createFeed(config: FeedConfig | undefined, symbols: string[], opts: CreateFeedOptions = {}): Feed {
  if (symbols.length === 0) throw new ValidationError('a feed needs at least one symbol');
  if (new Set(symbols).size !== symbols.length) throw new ValidationError(`symbols must be distinct: ${symbols.join(', ')}`);
  const accelerated = opts.accelerated ?? false;
  if (config === undefined || config.type === 'synthetic') {
    const c = config ?? { type: 'synthetic' as const };
    return createSyntheticFeed({
      symbols,
      seed: c.seed ?? seedFromSymbols(symbols),
      barIntervalMs: c.intervalMs ?? 1000,
      startPrice: c.startPrice ?? 100,
      volatility: c.volatility ?? 0.01,
      barsPerStep: c.barsPerStep ?? 1,
      startTime: opts.startTime ?? Date.UTC(2024, 0, 1),
      accelerated,
    });
  }
  if (config.type === 'venue') {
    if (opts.venue === undefined) throw new ValidationError("a venue feed needs a live broker with market data (the session's brokerId names a ccxt or alpaca broker)");
    return new VenueFeed({ source: opts.venue, symbols, timeframe: config.timeframe, logger: opts.logger });
  }
  if (opts.table === undefined) throw new ValidationError('a replay feed needs its file read first (loadFeed)');
  return createReplayFeed({
    symbols,
    table: opts.table,
    speed: config.speed,
    barsPerStep: config.barsPerStep ?? 1,
    accelerated,
  });
}

/**
 * createFeed, reading a replay feed's file through `files` first (async, checked: see BarFiles).
 * @throws ValidationError as createFeed and BarFiles.load, naming `feed.file`.
 * @example
 * const feed = await loadFeed({ type: 'replay', file: 'spy.csv' }, ['SPY'], { files });
 */
export async function loadFeed(
  config: FeedConfig | undefined,
  symbols: string[],
  opts: Omit<CreateFeedOptions, 'table'> & { files: BarFiles },
): Promise<Feed> {
  const { files, ...rest } = opts;
  if (config?.type !== 'replay') return createFeed(config, symbols, rest);
  // Symbols first: a bad symbol list is refused before any file is touched.
  if (symbols.length === 0) throw new ValidationError('a feed needs at least one symbol');
  return createFeed(config, symbols, { ...rest, table: await files.load(config.file, 'feed.file') });
}
