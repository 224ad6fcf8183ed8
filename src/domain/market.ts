/** One OHLCV bar. `time` is epoch milliseconds of the bar's open. */
export interface Bar {
  symbol: string;
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export type Side = 'buy' | 'sell';

/**
 * What a strategy step emits. `key` is deterministic for the strategy's input (e.g. `${symbol}:${bar.time}:entry`),
 * so the client order id derived from (sessionId, key) is the same when a step is re-run after a crash.
 */
export interface Signal {
  key: string;
  symbol: string;
  side: Side;
  qty: number;
  type: 'market' | 'limit';
  limitPrice?: number;
  reason?: string;
}

/**
 * A venue's bars: history pages and, where the adapter has one, a stream of bar updates. Live brokers offer
 * it (the broker port's `bars`) and venue feeds read it; it lives here so neither imports the other.
 */
export interface BarSource {
  readonly brokerId: string;
  /** Most bars one history request returns. */
  readonly pageLimit: number;
  /** A timeframe's length in ms; throws VALIDATION_ERROR naming it when the venue has no such timeframe. */
  timeframeMs(timeframe: string): number;
  /** Bars oldest first from `since` (epoch ms, inclusive); the last may be the bar still open. */
  fetchBars(symbol: string, timeframe: string, since: number, limit: number): Promise<Bar[]>;
  /** Every update of the symbol's bars over the venue's stream (reconnecting by itself). Absent: history only. */
  watchBars?(symbol: string, timeframe: string, listener: BarStreamListener): { close(): void };
}

export interface BarStreamListener {
  onBar(bar: Bar): void;
  onDown(reason: string): void;
  onUp?(): void;
}
