import type { Broker } from '../brokers/broker.js';
import type { Bar } from '../domain/market.js';
import { markEquity } from '../domain/equity-curve.js';
import type { Position } from '../domain/order.js';
import { emptyPosition, markPosition, totalPnl, utcDayStart } from '../domain/pnl.js';
import type { Session } from '../domain/session.js';
import type { Feed } from '../market-data/feed.js';
import type { RunnerStateRecord } from '../persistence/runner-state-repository.js';
import type { AnyStrategyDefinition, JsonValue, StrategyParams } from '../strategies/strategy-api.js';
import type { Schedulable } from './step-scheduler.js';

/** What the runner is doing; `failed` gave up (the manager is stopping the session), `closed` the daemon is shutting down. */
export type RunnerStatus = 'running' | 'paused' | 'stopped' | 'failed' | 'closed';

/** Bars read from the feed and shown to the broker but not yet committed by a successful step. */
export interface PendingBars {
  bars: Bar[];
  /** The feed cursor after these bars. */
  cursorAfter: number;
  /** When the step over these bars became due (epoch ms): the start of bar-to-order latency. */
  dueAt: number;
  /** The broker has seen these bars (onBar): a retry of the step does not show them again. */
  shown: boolean;
}

/**
 * One session's runner state in the main thread: its feed, broker, committed strategy state and cursor,
 * positions, and the bookkeeping of scheduling and restarts. Logic lives in RunnerService and OrderRouter;
 * this is the data they share, plus a per-session lock that serializes everything touching the session's
 * book (step results, approvals, pause/stop).
 * @internal
 */
export class SessionRunner implements Schedulable {
  scheduleToken = 0;
  status: RunnerStatus = 'paused';
  /** Bumped on pause/stop/failure: a step result from an older epoch is discarded. */
  epoch = 0;
  inFlight = false;
  pending: PendingBars | undefined;
  /** Consecutive failed steps (reset by a successful one). */
  failureStreak = 0;
  /** Not before this time (epoch ms): restart backoff. */
  retryAt = 0;
  /** After a restore: run the step at the persisted cursor before skipping ahead (it may have been in flight). */
  replayFirst = false;
  /** Replay feeds: when the last step became due. */
  lastDueAt = 0;
  /** The committed record is newer than the database. */
  dirty = false;
  /** When the record was last written (epoch ms). */
  lastStateSaveAt = 0;
  lastMarkSaveAt = 0;
  positionsMarked = false;
  lastEquitySampleAt = -Infinity;
  feedExhausted = false;
  /** Restored on a live venue: waits for the start's reconciliation before it steps. */
  venueHold = false;
  readonly positions = new Map<string, Position>();
  #tail: Promise<void> = Promise.resolve();

  constructor(
    public session: Session,
    readonly record: RunnerStateRecord,
    readonly feed: Feed,
    readonly broker: Broker,
    /** Undefined when the strategy could not be resolved (the runner can still cancel and flatten). */
    readonly definition: AnyStrategyDefinition | undefined,
    readonly params: StrategyParams,
    /** Synthetic feeds: ms between bars (bar times and due times); undefined for replay feeds. */
    readonly barMs: number | undefined,
    readonly barsPerStep: number,
  ) {}

  get id(): string {
    return this.session.id;
  }

  get state(): JsonValue {
    return this.record.state as JsonValue;
  }

  /** Waits for everything queued on this session before; resolves with the release function. */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const prev = this.#tail;
    this.#tail = prev.then(() => held);
    return prev.then(() => release);
  }

  /** Runs fn after everything queued on this session before it; a failure does not block later calls. */
  async lock<T>(fn: () => T | Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Realized + unrealized PnL of the session. */
  totalPnl(): number {
    return totalPnl([...this.positions.values()]);
  }

  /** PnL since the start of the UTC day of the last bar (realized + unrealized). */
  dailyPnl(): number {
    return this.totalPnl() - this.record.dayStartPnl;
  }

  positionQty(symbol: string): number {
    return this.positions.get(symbol)?.qty ?? 0;
  }

  /**
   * Open positions by symbol, as `sessions.positions` keeps them: what fills change (qty, average price,
   * realized PnL). Marks (last price, unrealized PnL) move every bar and live in the `positions` table.
   */
  openPositionsJson(): Record<string, { qty: number; avgPrice: number; realizedPnl: number }> {
    const out: Record<string, { qty: number; avgPrice: number; realizedPnl: number }> = {};
    for (const p of [...this.positions.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0))) {
      if (p.qty !== 0) out[p.symbol] = { qty: p.qty, avgPrice: p.avgPrice, realizedPnl: p.realizedPnl };
    }
    return out;
  }

  /**
   * A bar arrived: rolls the daily PnL baseline on a new UTC day, records the last price and marks the
   * position in its symbol (flat or not).
   */
  observeBar(bar: Bar): void {
    const day = utcDayStart(bar.time);
    const r = this.record;
    if (r.dayStart === undefined || day > r.dayStart) {
      r.dayStart = day;
      r.dayStartPnl = this.totalPnl();
    }
    r.lastPrices[bar.symbol] = bar.close;
    if (r.lastBarTime === undefined || bar.time > r.lastBarTime) r.lastBarTime = bar.time;
    // Flat positions too: their lastPrice is the last close, not the price of the fill that closed them.
    const p = this.positions.get(bar.symbol);
    if (p !== undefined && p.lastPrice !== bar.close) {
      this.positions.set(bar.symbol, markPosition(p, bar.close));
      this.positionsMarked = true;
    }
    this.dirty = true;
  }

  /**
   * One point of the session's equity curve (see equity-curve.ts): called once per step, after its bars
   * marked the positions at their closes, and at the stop. Never after a fill.
   */
  updateEquity(): void {
    const r = this.record;
    const next = markEquity(r, r.initialEquity + this.totalPnl());
    r.equity = next.equity;
    r.peakEquity = next.peakEquity;
    r.maxDrawdownPct = next.maxDrawdownPct;
  }

  setPositions(positions: readonly Position[]): void {
    this.positions.clear();
    for (const p of positions) this.positions.set(p.symbol, p);
  }

  position(symbol: string): Position {
    return this.positions.get(symbol) ?? emptyPosition(symbol);
  }
}
