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
