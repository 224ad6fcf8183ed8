import type { Bar, Side } from '../../domain/market.js';

/** A venue's order, as its adapter parsed it from the wire: what was placed, and what became of it. */
export interface VenueOrder extends VenuePlaceRequest {
  venueOrderId: string;
  /** As the venue holds it (rounded to the market's step). */
  qty: number;
  status: 'accepted' | 'partially_filled' | 'filled' | 'cancelled' | 'rejected' | 'expired';
  filledQty: number;
  avgFillPrice?: number | undefined;
  /** Epoch ms. */
  createdAt: number;
  /** Executions the venue returned with the order (Binance FULL responses). */
  trades?: VenueTrade[] | undefined;
}

/** One execution of one of our orders at the venue. */
export interface VenueTrade {
  /** Unique at the venue (with the symbol for venues that number trades per market). */
  tradeId: string;
  venueOrderId: string;
  symbol: string;
  side: Side;
  /** What the position moved by: the executed quantity net of a commission the venue took in the base asset. */
  qty: number;
  price: number;
  /** In the quote currency. */
  commission: number;
  /** Epoch ms. */
  at: number;
}

/** A market's trading rules (Binance filters, Alpaca asset fields). */
export interface MarketRules {
  symbol: string;
  /** Least quantity the venue takes; undefined when it states none. */
  minQty?: number | undefined;
  /** Least notional (qty x price) the venue takes. */
  minCost?: number | undefined;
  /** Rounds a quantity DOWN to the market's step (never more than asked). */
  roundQty(qty: number): number;
  /** Rounds a price to the market's tick. */
  roundPrice(price: number): number;
}

export interface VenuePlaceRequest {
  venueClientOrderId: string;
  symbol: string;
  side: Side;
  type: 'market' | 'limit';
  qty: number;
  limitPrice?: number | undefined;
}

export interface VenueBalance {
  cash: number;
  equity: number;
}

/**
 * What an adapter's error means for an order. `unknown` is the only answer that does not say whether a
 * placement happened (timeout, reset, 5xx after the request left, DNS failure, 429 on a write).
 */
export type VenueErrorKind = 'unknown' | 'rejected' | 'duplicate' | 'not_found' | 'rate_limited' | 'unavailable';

export class VenueError extends Error {
  constructor(
    readonly kind: VenueErrorKind,
    message: string,
  ) {
    super(message);
    this.name = this.constructor.name;
  }
}

/**
 * The wire side of one venue: its client library, its limiter, its formats. Reads may be retried; `place`
 * never is (it throws VenueError kind `unknown` when its outcome was not seen).
 */
export interface VenueClient {
  readonly venue: string;
  /** Markets are looked up one symbol at a time (Alpaca assets) instead of all at once (ccxt). */
  readonly perSymbolMarkets?: boolean;
  /** Markets by the symbol sessions use. Throws VenueError (`unavailable`) when the venue cannot be reached. */
  loadMarkets(symbols?: readonly string[]): Promise<Map<string, MarketRules>>;
  place(req: VenuePlaceRequest): Promise<VenueOrder>;
  /** undefined: the venue says it has no such order. */
  fetchOrder(symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined>;
  cancel(symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined>;
  /** Open orders of the account, for the given symbols. */
  fetchOpenOrders(symbols: readonly string[]): Promise<VenueOrder[]>;
  /** Our trades of one order. */
  fetchOrderTrades(order: VenueOrder): Promise<VenueTrade[]>;
  /** Signed position per symbol asked for (0 when flat). */
  fetchPositions(symbols: readonly string[]): Promise<Map<string, number>>;
  fetchBalance(): Promise<VenueBalance>;
  /** Bars oldest first, from `since` (epoch ms, inclusive); the last may be the bar still open (ccxt). */
  fetchBars?(symbol: string, timeframe: string, since: number, limit: number): Promise<Bar[]>;
  /** A timeframe's length in ms; throws VenueError `rejected` naming it when the venue has no such timeframe. */
  timeframeMs?(timeframe: string): number;
  /** Most bars one history request returns (a page). */
  readonly barPageLimit?: number;
  /**
   * Live bars over the venue's stream, when the adapter has one: every update of a bar (the open one
   * included) goes to `onBar`; `onDown` when the stream dropped (it reconnects by itself with backoff).
   */
  watchBars?(symbol: string, timeframe: string, listener: BarStreamListener): BarSubscription;
  close?(): Promise<void>;
}

export interface BarStreamListener {
  onBar(bar: Bar): void;
  onDown(reason: string): void;
  onUp?(): void;
}

export interface BarSubscription {
  close(): void;
}
