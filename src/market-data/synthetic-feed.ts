import type { Bar } from '../domain/market.js';
import { ValidationError } from '../domain/errors.js';
import type { Feed } from './feed.js';
import { withCursor } from './feed-cursor.js';

export interface SyntheticFeedOptions {
  symbols: readonly string[];
  seed: number;
  /** Time between consecutive bars (bar `time` spacing). */
  barIntervalMs: number;
  startPrice: number;
  /** Standard deviation of one bar's log return. */
  volatility: number;
  barsPerStep: number;
  /** Epoch ms of bar 0. */
  startTime: number;
  /** intervalMs 0 (tests, backtests). */
  accelerated: boolean;
}

/** 32-bit FNV-1a of a string. @internal */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A deterministic seed for a symbol set (order-insensitive), used when the config gives none. */
export function seedFromSymbols(symbols: readonly string[]): number {
  return fnv1a([...symbols].sort().join(',')) | 0;
}

/** mulberry32: a small, fast seeded PRNG returning floats in [0, 1). @internal */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Mixes (seed, symbol, index) into one PRNG seed: bar N's randomness never depends on bars before it.
function barSeed(seed: number, symbolHash: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ symbolHash;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ index;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

interface SymbolPath {
  symbol: string;
  hash: number;
  /** Log of the close of the bar before the cursor (log startPrice before bar 0). */
  logClose: number;
}

/**
 * A seeded random walk per symbol (log-normal, so prices stay positive). Deterministic for a
 * seed and random-access: bar N is the same whether reached by stepping or by `seek(N)`.
 * Never exhausted.
 */
export function createSyntheticFeed(options: SyntheticFeedOptions): Feed {
  const o = options;
  if (!Number.isInteger(o.barsPerStep) || o.barsPerStep < 1) throw new ValidationError('feed.barsPerStep must be a positive integer');
  if (!(o.barIntervalMs > 0)) throw new ValidationError('feed.intervalMs must be positive');
  if (!(o.startPrice > 0)) throw new ValidationError('feed.startPrice must be positive');
  if (!(o.volatility > 0)) throw new ValidationError('feed.volatility must be positive');
  const symbols = Object.freeze([...o.symbols]);
  const logStart = Math.log(o.startPrice);
  const paths: SymbolPath[] = symbols.map((symbol) => ({ symbol, hash: fnv1a(symbol), logClose: logStart }));
  let cursor = 0;

  // Box-Muller over the first two draws of bar `index`'s PRNG stream; 1 - u keeps the log argument in (0, 1].
  const normal = (rand: () => number): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

  // Draws bar `index` of one symbol from its own PRNG stream; advances the path to its close.
  const bar = (path: SymbolPath, index: number): Bar => {
    const rand = mulberry32(barSeed(o.seed, path.hash, index));
    const z = normal(rand);
    const logOpen = path.logClose;
    const logClose = logOpen + o.volatility * z;
    const open = Math.exp(logOpen);
    const close = Math.exp(logClose);
    const high = Math.max(open, close) * Math.exp(o.volatility * 0.5 * rand());
    const low = Math.min(open, close) * Math.exp(-o.volatility * 0.5 * rand());
    const volume = 100 + Math.floor(rand() * 10_000);
    path.logClose = logClose;
    return { symbol: path.symbol, time: o.startTime + index * o.barIntervalMs, open, high, low, close, volume };
  };

  const feed: Omit<Feed, 'cursor'> = {
    kind: 'synthetic',
    symbols,
    intervalMs: o.accelerated ? 0 : o.barIntervalMs * o.barsPerStep,
    length: Infinity,
    dataRef: `synthetic:${o.seed}`,
    next() {
      const bars: Bar[] = [];
      for (let k = 0; k < o.barsPerStep; k++, cursor++) {
        for (const path of paths) bars.push(bar(path, cursor));
      }
      return bars;
    },
    checkpoint() {
      return { cursor, logCloses: paths.map((p) => p.logClose) };
    },
    seek(target, checkpoint) {
      if (!Number.isInteger(target) || target < 0) throw new ValidationError(`cursor must be a non-negative integer, got ${target}`);
      // The close path is a running sum: from a checkpoint at or before the target (O(1) of how long the
      // session ran), else forward from here when possible, else from bar 0.
      const c = checkpoint as { cursor?: unknown; logCloses?: unknown } | null | undefined;
      const usable =
        c !== null && typeof c === 'object' && Number.isInteger(c.cursor) && (c.cursor as number) <= target && (c.cursor as number) > (target < cursor ? -1 : cursor) &&
        Array.isArray(c.logCloses) && c.logCloses.length === paths.length && c.logCloses.every((x) => typeof x === 'number' && Number.isFinite(x));
      if (usable) {
        paths.forEach((p, i) => (p.logClose = (c.logCloses as number[])[i]!));
        cursor = c.cursor as number;
      } else if (target < cursor) {
        for (const path of paths) path.logClose = logStart;
        cursor = 0;
      }
      for (; cursor < target; cursor++) {
        for (const path of paths) bar(path, cursor);
      }
    },
    seekBack(target, checkpoint) {
      const c = checkpoint as { cursor?: unknown; logCloses?: unknown } | null | undefined;
      const ahead =
        Number.isInteger(target) && target >= 0 && c !== null && typeof c === 'object' && Number.isInteger(c.cursor) && (c.cursor as number) > target &&
        Array.isArray(c.logCloses) && c.logCloses.length === paths.length && c.logCloses.every((x) => typeof x === 'number' && Number.isFinite(x));
      // No checkpoint ahead, or counting back would be longer than counting from bar 0: seek as usual.
      if (!ahead || (c.cursor as number) - target > target) {
        feed.seek(target, checkpoint);
        return;
      }
      paths.forEach((p, i) => {
        // The close before bar k is the close after it less bar k's step.
        let log = (c.logCloses as number[])[i]!;
        for (let k = (c.cursor as number) - 1; k >= target; k--) log -= o.volatility * normal(mulberry32(barSeed(o.seed, p.hash, k)));
        p.logClose = log;
      });
      cursor = target;
    },
  };
  return withCursor(feed, () => cursor);
}
