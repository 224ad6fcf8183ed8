import type { Bar, BarSource } from '../domain/market.js';
import type { Feed } from './feed.js';

/** What a venue feed needs of a live broker: the domain's BarSource (the broker port's `bars`). */
export type VenueBarSource = BarSource;

export interface VenueFeedLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface VenueFeedOptions {
  source: VenueBarSource;
  symbols: readonly string[];
  timeframe: string;
  /**
   * How long after a bar's close its history is asked for (the venue settles the bar). @defaultValue
   * tf/10 clamped to 100..1000 ms
   */
  settleMs?: number;
  /** With the stream up, history is asked for a bar only this long after its close (the stream's chance). @defaultValue settleMs + max(1000, tf/4) */
  streamGraceMs?: number;
  /** Bar times held unstepped before history stops being asked for more (a long pause). @defaultValue 2 pages */
  maxBuffered?: number;
  now?: () => number;
  logger?: VenueFeedLogger | undefined;
}

/**
 * A live session's bars from its broker. `next()` never waits: it returns the next CLOSED bar time's bars
 * (one per symbol that has a bar then), or an empty batch when none is due yet; it is never exhausted.
 * Bars arrive in the background: history polled at each close (+settle), and the venue's stream where the
 * broker has one (a bar counts as closed when the stream shows a later bar or its close time has passed).
 * A time is released only when every symbol is known up to it, so a symbol lagging (a dropped stream, a
 * failed request) holds the step instead of skipping its bar. `cursor` is the last stepped bar's open time
 * (epoch ms; 0 before the first): after `seek(cursor)` (a restart) the bars after it are fetched from
 * history, so none is stepped twice or skipped. A new feed starts at the last bar closed when it was made.
 */
export class VenueFeed implements Feed {
  readonly kind = 'venue' as const;
  readonly length = Infinity;
  readonly dataRef: string;
  readonly intervalMs: number;
  readonly tfMs: number;
  readonly symbols: readonly string[];
  #cursor = 0;
  /** Least bar time to step (the start, or the bar after the cursor). */
  #from: number;
  /** Per symbol: every bar of it up to this time (from `#from`) is in the buffer or absent at the venue. */
  readonly #known = new Map<string, number>();
  /** Bars by time, then symbol. */
  readonly #buffer = new Map<number, Map<string, Bar>>();
  /** Per symbol: the stream's latest bar (maybe still open). */
  readonly #open = new Map<string, Bar>();
  /** Per symbol: closed bars the stream gave ahead of what is known (a gap history is filling). */
  readonly #ahead = new Map<string, Map<number, Bar>>();
  readonly #streamUp = new Set<string>();
  readonly #subs: { close(): void }[] = [];
  #started = false;
  #closed = false;
  #fetching = false;
  #timer: NodeJS.Timeout | undefined;
  #retryAt = 0;
  #backoffMs = 0;
  #ready: (() => void) | undefined;
  readonly #settleMs: number;
  readonly #graceMs: number;
  readonly #maxBuffered: number;
  readonly #now: () => number;
  /** Counters for tests and logs. */
  readonly stats = { historyRequests: 0, historyBars: 0, streamBars: 0, streamDrops: 0 };

  constructor(private readonly o: VenueFeedOptions) {
    this.symbols = [...o.symbols];
    this.tfMs = o.source.timeframeMs(o.timeframe);
    this.#now = o.now ?? Date.now;
    this.#settleMs = o.settleMs ?? Math.min(1000, Math.max(100, Math.round(this.tfMs / 10)));
    this.#graceMs = o.streamGraceMs ?? this.#settleMs + Math.max(1000, Math.round(this.tfMs / 4));
    this.#maxBuffered = o.maxBuffered ?? 2 * o.source.pageLimit;
    // The runner's fallback cadence; bars arriving wake it sooner (onReady).
    this.intervalMs = Math.min(1000, this.tfMs);
    this.dataRef = `venue:${o.source.brokerId}:${o.timeframe}`;
    this.#from = this.#lastClosedBefore(this.#now());
    for (const s of this.symbols) this.#known.set(s, this.#from - this.tfMs);
  }

  get cursor(): number {
    return this.#cursor;
  }

  /** The runner's wake-up: called (once per arrival) when a bar time may have become due. */
  onReady(listener: () => void): void {
    this.#ready = listener;
  }

  hasDue(): boolean {
    return this.#releasable() !== undefined;
  }

  next(): Bar[] {
    this.#start();
    const released = this.#releasable();
    if (released === undefined) return [];
    const row = this.#buffer.get(released)!;
    for (const t of [...this.#buffer.keys()]) if (t <= released) this.#buffer.delete(t);
    this.#cursor = released;
    this.#from = released + this.tfMs;
    // Draining a backlog may let history be asked for more.
    if (!this.#fetching) this.#schedule();
    return this.symbols.flatMap((s) => (row.has(s) ? [row.get(s)!] : []));
  }

  seek(cursor: number): void {
    if (!(cursor > 0)) return; // never stepped: starts where a new feed starts
    this.#cursor = cursor;
    this.#from = cursor + this.tfMs;
    for (const s of this.symbols) this.#known.set(s, cursor);
    for (const t of [...this.#buffer.keys()]) if (t <= cursor) this.#buffer.delete(t);
    this.#open.clear();
    this.#ahead.clear();
    if (this.#started && !this.#fetching) this.#schedule();
  }

  /** Stops polling and the streams (a paused or stopped runner); the next `next()` starts them again from what is known. */
  close(): void {
    this.#closed = true;
    this.#started = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const s of this.#subs.splice(0)) s.close();
    this.#streamUp.clear();
    this.#open.clear();
  }

  /** The earliest buffered time every symbol is known up to, at or after `#from`. */
  #releasable(): number | undefined {
    let known = Infinity;
    for (const k of this.#known.values()) known = Math.min(known, k);
    let best: number | undefined;
    for (const t of this.#buffer.keys()) if (t >= this.#from && t <= known && (best === undefined || t < best)) best = t;
    return best;
  }

  #lastClosedBefore(at: number): number {
    return Math.floor(at / this.tfMs) * this.tfMs - this.tfMs;
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#closed = false;
    const watch = this.o.source.watchBars?.bind(this.o.source);
    if (watch !== undefined) {
      for (const symbol of this.symbols) {
        this.#subs.push(
          watch(symbol, this.o.timeframe, {
            onBar: (bar) => this.#onStreamBar(symbol, bar),
            onDown: (reason) => {
              if (this.#streamUp.delete(symbol)) this.stats.streamDrops++;
              this.#open.delete(symbol);
              this.o.logger?.warn({ broker: this.o.source.brokerId, symbol, timeframe: this.o.timeframe, reason }, 'venue stream down: bars from history until it is back');
              if (!this.#fetching) this.#schedule();
            },
            onUp: () => {
              this.#streamUp.add(symbol);
            },
          }),
        );
      }
    }
    this.#schedule();
  }

  #onStreamBar(symbol: string, bar: Bar): void {
    if (this.#closed) return;
    this.#streamUp.add(symbol);
    const open = this.#open.get(symbol);
    if (open !== undefined && bar.time > open.time) this.#accept(symbol, open);
    if (open === undefined || bar.time >= open.time) this.#open.set(symbol, bar);
    // Its close time has passed: this update is the bar's last.
    if (this.#now() >= bar.time + this.tfMs) this.#accept(symbol, bar);
  }

  /** A closed bar from the stream: kept when it follows what is known, else history fills the gap. */
  #accept(symbol: string, bar: Bar): void {
    const known = this.#known.get(symbol)!;
    if (bar.time <= known || this.#buffer.size >= this.#maxBuffered) return;
    if (bar.time === known + this.tfMs) {
      this.#put(bar);
      this.#known.set(symbol, bar.time);
      this.stats.streamBars++;
      this.#absorb(symbol);
      this.#ready?.();
      return;
    }
    // A gap (a drop, a reconnect, a bar the stream never sent): kept aside, and history asked now.
    let ahead = this.#ahead.get(symbol);
    if (ahead === undefined) this.#ahead.set(symbol, (ahead = new Map()));
    if (ahead.size < 1000) ahead.set(bar.time, bar);
    if (!this.#fetching) this.#schedule(true);
  }

  /** Stream bars kept aside that now follow what is known. */
  #absorb(symbol: string): void {
    const ahead = this.#ahead.get(symbol);
    if (ahead === undefined) return;
    let known = this.#known.get(symbol)!;
    for (const t of [...ahead.keys()]) if (t <= known) ahead.delete(t);
    for (let b = ahead.get(known + this.tfMs); b !== undefined; b = ahead.get(known + this.tfMs)) {
      ahead.delete(b.time);
      if (this.#buffer.get(b.time)?.has(symbol) !== true) {
        this.#put(b);
        this.stats.streamBars++;
      }
      known = b.time;
    }
    this.#known.set(symbol, known);
  }

  #put(bar: Bar): void {
    let row = this.#buffer.get(bar.time);
    if (row === undefined) this.#buffer.set(bar.time, (row = new Map()));
    row.set(bar.symbol, bar);
  }

  /** When history should next be asked: each lagging symbol's next close, plus the settle (or the stream's grace). */
  #dueAt(): number {
    let due = Infinity;
    for (const [s, known] of this.#known) {
      const close = known + 2 * this.tfMs;
      due = Math.min(due, close + (this.#streamUp.has(s) ? this.#graceMs : this.#settleMs));
    }
    return Math.max(due, this.#retryAt);
  }

  #schedule(now = false): void {
    if (this.#closed || !this.#started) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#buffer.size >= this.#maxBuffered) return; // a backlog: next() reschedules as it drains
    const delay = now ? Math.max(0, this.#retryAt - this.#now()) : this.#dueAt() - this.#now();
    this.#timer = setTimeout(() => void this.#poll(), Math.max(0, delay));
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed || this.#fetching) return;
    this.#fetching = true;
    let more = false;
    try {
      const at = this.#now();
      const closedBy = at - this.#settleMs;
      for (const symbol of this.symbols) {
        const known = this.#known.get(symbol)!;
        if (known + this.tfMs > this.#lastClosedBefore(closedBy)) continue; // nothing new closed for it
        const since = known + this.tfMs;
        const limit = this.o.source.pageLimit;
        this.stats.historyRequests++;
        const bars = await this.o.source.fetchBars(symbol, this.o.timeframe, since, limit);
        if (this.#closed) return;
        // A restart or seek meanwhile moved what is known: this answer is for an older question.
        if (this.#known.get(symbol) !== known) {
          more = true;
          continue;
        }
        let last = known;
        for (const b of bars) {
          if (b.time < since || b.time + this.tfMs > closedBy) continue; // older, or still open
          if (b.time > last) last = b.time;
          if (this.#buffer.get(b.time)?.has(symbol) !== true) {
            this.#put({ ...b, symbol });
            this.stats.historyBars++;
          }
        }
        // A full page: more may follow it. Otherwise the venue has told everything closed by then.
        const full = bars.length >= limit;
        const through = full ? last : Math.max(last, this.#lastClosedBefore(closedBy));
        this.#known.set(symbol, through);
        this.#absorb(symbol);
        if (full) more = true;
        if (this.#buffer.size >= this.#maxBuffered) break;
      }
      this.#backoffMs = 0;
      this.#retryAt = 0;
    } catch (err) {
      this.#backoffMs = this.#backoffMs === 0 ? 1000 : Math.min(this.#backoffMs * 2, 30_000);
      this.#retryAt = this.#now() + this.#backoffMs;
      this.o.logger?.warn({ broker: this.o.source.brokerId, timeframe: this.o.timeframe, err: err instanceof Error ? err.message : String(err), retryInMs: this.#backoffMs }, 'venue bars could not be read');
    } finally {
      this.#fetching = false;
    }
    if (this.#closed) return;
    if (this.#releasable() !== undefined) this.#ready?.();
    this.#schedule(more);
  }
}
