import type { Exchange } from 'ccxt';

/** The ccxt module (its default export). Loaded on demand: importing ccxt costs seconds at start. */
export type CcxtModule = (typeof import('ccxt'))['default'];

export async function loadCcxt(): Promise<CcxtModule> {
  return (await import('ccxt')).default;
}
import type { Bar } from '../../domain/market.js';
import { VenueError, type BarStreamListener, type BarSubscription, type MarketRules, type VenueBalance, type VenueClient, type VenueOrder, type VenuePlaceRequest, type VenueTrade } from '../venue/venue-client.js';
import { CcxtMarketSchema, CcxtOhlcvSchema, CcxtOrderSchema, CcxtTradeSchema, parseWire, type CcxtOrder, type CcxtTrade } from './ccxt-schemas.js';

export interface CcxtClientConfig {
  exchange: string;
  sandbox: boolean;
  apiKey: string;
  secret: string;
  password?: string | undefined;
  /** Merged over the instance's options. */
  options?: Record<string, unknown> | undefined;
  /** Deep-merged over the instance's urls (private gateways, local emulators). */
  urls?: Record<string, unknown> | undefined;
  /** ccxt's per-request timeout. @defaultValue 10000 */
  timeoutMs?: number | undefined;
  /**
   * Use the exchange's websocket streams (`ccxt.pro`, same package) where the adapter has one (bars for venue
   * feeds). @defaultValue true
   */
  streams?: boolean | undefined;
  /** ccxt's `rateLimiterAlgorithm`. @defaultValue 'rollingWindow' */
  rateLimiter?: 'rollingWindow' | 'leakyBucket' | undefined;
}

/** Options that keep Binance spot to one exchangeInfo call (no sapi/fapi/dapi families; see TOOLCHAIN.md). */
const SPOT_ONLY: Record<string, Record<string, unknown>> = {
  binance: { defaultType: 'spot', fetchMarkets: { types: ['spot'] }, fetchCurrencies: false, fetchMargins: false },
};

type ExchangeClass = new (config: Record<string, unknown>) => Exchange;

/**
 * Builds the ccxt instance: credentials, rate limiter on, sandbox, then `options` and `urls` from config.
 * The limiter is ccxt's rolling window by default: ccxt's leaky bucket refills only while a request waits, so
 * after any request the next one waits its whole cost (cost x rateLimit: 10 ms for a Binance order) however
 * long the client was idle. The rolling window keeps the same budget (60 s of rateLimit-weighted cost) and
 * admits a request at once while the window has room.
 */
export function createCcxtExchange(ccxt: CcxtModule, c: CcxtClientConfig): Exchange {
  const rest = (ccxt as unknown as Record<string, ExchangeClass | undefined>)[c.exchange];
  if (typeof rest !== 'function' || !ccxt.exchanges.includes(c.exchange)) throw new Error(`ccxt has no exchange ${c.exchange}`);
  // The pro class extends the REST one (same REST methods, plus watch*).
  const pro = c.streams === false ? undefined : (ccxt.pro as unknown as Record<string, ExchangeClass | undefined>)[c.exchange];
  const Ctor = typeof pro === 'function' ? pro : rest;
  const ex = new Ctor({ apiKey: c.apiKey, secret: c.secret, ...(c.password !== undefined ? { password: c.password } : {}), enableRateLimit: true, rateLimiterAlgorithm: c.rateLimiter ?? 'rollingWindow' });
  if (c.sandbox) ex.setSandboxMode(true);
  ex.options = { ...ex.options, ...(SPOT_ONLY[c.exchange] ?? {}), ...(c.options ?? {}) };
  if (c.urls !== undefined) ex.urls = deepMerge(ex.urls as Record<string, unknown>, c.urls) as Exchange['urls'];
  if (c.timeoutMs !== undefined) ex.timeout = c.timeoutMs;
  return ex;
}

/** Any ccxt exchange as a VenueClient (spot semantics: a position is the base asset's balance). */
export class CcxtVenueClient implements VenueClient {
  readonly venue: string;
  readonly barPageLimit: number;
  /** Present when the instance is a ccxt.pro one with watchOHLCV. */
  readonly watchBars?: (symbol: string, timeframe: string, listener: BarStreamListener) => BarSubscription;
  private readonly streams = new Map<string, { listeners: Set<BarStreamListener>; stopped: boolean }>();
  private closed = false;

  constructor(
    private readonly ex: Exchange,
    private readonly ccxt: CcxtModule,
  ) {
    this.venue = ex.id;
    this.barPageLimit = Number((ex.features as { spot?: { fetchOHLCV?: { limit?: number } } } | undefined)?.spot?.fetchOHLCV?.limit ?? 500) || 500;
    const watch = (ex as unknown as { watchOHLCV?: unknown }).watchOHLCV;
    if (typeof watch === 'function' && ex.has['watchOHLCV'] === true) this.watchBars = (s, tf, l) => this.subscribe(s, tf, l);
  }

  timeframeMs(timeframe: string): number {
    const tfs = (this.ex.timeframes ?? {}) as Record<string, unknown>;
    if (!(timeframe in tfs)) throw new VenueError('rejected', `timeframe ${timeframe} is not one ${this.venue} has (${Object.keys(tfs).join(', ')})`);
    return this.ex.parseTimeframe(timeframe) * 1000;
  }

  /** One watch loop per symbol and timeframe, shared by every listener; reconnects with backoff. */
  private subscribe(symbol: string, timeframe: string, listener: BarStreamListener): BarSubscription {
    const key = `${symbol}|${timeframe}`;
    let s = this.streams.get(key);
    if (s === undefined) {
      s = { listeners: new Set(), stopped: false };
      this.streams.set(key, s);
      void this.runStream(s, symbol, timeframe);
    }
    const stream = s;
    stream.listeners.add(listener);
    return {
      close: () => {
        stream.listeners.delete(listener);
        if (stream.listeners.size > 0 || stream.stopped) return;
        // The loop ends at its next update. No unWatchOHLCV: ccxt 4.5 sends it without handling a socket
        // closed meanwhile (an unhandled rejection); the subscription ends with the connection.
        stream.stopped = true;
        this.streams.delete(key);
      },
    };
  }

  private async runStream(s: { listeners: Set<BarStreamListener>; stopped: boolean }, symbol: string, timeframe: string): Promise<void> {
    const ex = this.ex as unknown as { watchOHLCV(symbol: string, timeframe: string): Promise<unknown[]> };
    let up = false;
    let backoff = 250;
    while (!s.stopped && !this.closed) {
      try {
        // ccxt refuses plain ws:// (private gateways, local emulators) until its http agent is loaded.
        await (this.ex as unknown as { loadHttpProxyAgent?: () => Promise<unknown> }).loadHttpProxyAgent?.();
        const rows = await ex.watchOHLCV(symbol, timeframe);
        if (s.stopped || this.closed) break;
        if (!up) {
          up = true;
          backoff = 250;
          for (const l of s.listeners) l.onUp?.();
        }
        for (const raw of rows) {
          const [time, open, high, low, close, volume] = parseWire(CcxtOhlcvSchema, raw, 'ohlcv row');
          const bar: Bar = { symbol, time, open, high, low, close, volume: volume ?? 0 };
          for (const l of s.listeners) l.onBar(bar);
        }
      } catch (err) {
        if (s.stopped || this.closed) break;
        up = false;
        const reason = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
        for (const l of s.listeners) l.onDown(reason);
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  async loadMarkets(): Promise<Map<string, MarketRules>> {
    const markets = await this.call(() => this.ex.loadMarkets(true));
    const out = new Map<string, MarketRules>();
    for (const raw of Object.values(markets)) {
      const m = parseWire(CcxtMarketSchema, raw, 'market');
      if (m.active === false) continue;
      const symbol = m.symbol;
      out.set(symbol, {
        symbol,
        minQty: m.limits.amount?.min ?? undefined,
        minCost: m.limits.cost?.min ?? undefined,
        // The library's own rounding: amounts truncate to the step, prices round to the tick.
        roundQty: (q) => Number(this.ex.amountToPrecision(symbol, q)),
        roundPrice: (p) => Number(this.ex.priceToPrecision(symbol, p)),
      });
    }
    return out;
  }

  async place(r: VenuePlaceRequest): Promise<VenueOrder> {
    const raw = await this.call(() => this.ex.createOrder(r.symbol, r.type, r.side, r.qty, r.limitPrice, { clientOrderId: r.venueClientOrderId }), true);
    return this.order(raw, r.venueClientOrderId);
  }

  async fetchOrder(symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined> {
    try {
      const raw = await this.call(() => this.ex.fetchOrder('', symbol, { clientOrderId: venueClientOrderId, origClientOrderId: venueClientOrderId }));
      return this.order(raw, venueClientOrderId);
    } catch (err) {
      if (err instanceof VenueError && err.kind === 'not_found') return undefined;
      throw err;
    }
  }

  async cancel(symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined> {
    const raw = await this.call(() => this.ex.cancelOrder('', symbol, { clientOrderId: venueClientOrderId, origClientOrderId: venueClientOrderId }), true);
    return this.order(raw, venueClientOrderId);
  }

  async fetchOpenOrders(symbols: readonly string[]): Promise<VenueOrder[]> {
    const out: VenueOrder[] = [];
    for (const s of symbols) {
      const list = await this.call(() => this.ex.fetchOpenOrders(s));
      for (const raw of list) out.push(this.order(raw));
    }
    return out;
  }

  async fetchOrderTrades(o: VenueOrder): Promise<VenueTrade[]> {
    const list = await this.call(() => this.ex.fetchMyTrades(o.symbol, undefined, undefined, { orderId: o.venueOrderId }));
    return list.map((raw) => this.trade(parseWire(CcxtTradeSchema, raw, 'trade'))).filter((t) => t.venueOrderId === o.venueOrderId);
  }

  async fetchPositions(symbols: readonly string[]): Promise<Map<string, number>> {
    const balance = await this.call(() => this.ex.fetchBalance());
    const total = (balance.total ?? {}) as unknown as Record<string, number | undefined>;
    const out = new Map<string, number>();
    for (const s of symbols) {
      const base = this.ex.markets?.[s]?.base ?? s.split('/')[0]!;
      out.set(s, Number(total[base] ?? 0));
    }
    return out;
  }

  async fetchBalance(): Promise<VenueBalance> {
    const balance = await this.call(() => this.ex.fetchBalance());
    const total = (balance.total ?? {}) as unknown as Record<string, number | undefined>;
    const quote = String(this.ex.options?.['quoteCurrency'] ?? 'USDT');
    const cash = Number(total[quote] ?? 0);
    return { cash, equity: cash };
  }

  async fetchBars(symbol: string, timeframe: string, since: number, limit: number): Promise<Bar[]> {
    const rows = await this.call(() => this.ex.fetchOHLCV(symbol, timeframe, since, limit));
    return rows.map((raw) => {
      const [time, open, high, low, close, volume] = parseWire(CcxtOhlcvSchema, raw, 'ohlcv row');
      return { symbol, time, open, high, low, close, volume: volume ?? 0 };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const st of this.streams.values()) st.stopped = true;
    this.streams.clear();
    await (this.ex as unknown as { close?: () => Promise<void> }).close?.();
  }

  private order(raw: unknown, clientId?: string): VenueOrder {
    const o: CcxtOrder = parseWire(CcxtOrderSchema, raw, 'order');
    const filled = o.filled ?? 0;
    const status: VenueOrder['status'] =
      o.status === 'closed' ? 'filled'
      : o.status === 'canceled' ? 'cancelled'
      : o.status === 'expired' ? 'expired'
      : o.status === 'rejected' ? 'rejected'
      // ccxt maps NEW and PARTIALLY_FILLED both to `open`: the filled amount tells them apart.
      : filled > 0 ? 'partially_filled' : 'accepted';
    const trades = Array.isArray(o.trades) && o.trades.length > 0
      ? o.trades.map((t) => this.trade(parseWire(CcxtTradeSchema, { ...(t as object), order: (t as { order?: string }).order ?? o.id, symbol: (t as { symbol?: string }).symbol ?? o.symbol, side: (t as { side?: string }).side ?? o.side }, 'trade'))).filter((t) => t.tradeId !== '')
      : undefined;
    return {
      venueOrderId: o.id,
      venueClientOrderId: o.clientOrderId ?? clientId ?? '',
      symbol: o.symbol,
      side: o.side,
      type: o.type === 'limit' ? 'limit' : 'market',
      qty: o.amount,
      limitPrice: o.type === 'limit' && o.price != null ? o.price : undefined,
      status,
      filledQty: filled,
      avgFillPrice: o.average ?? undefined,
      createdAt: o.timestamp ?? Date.now(),
      trades,
    };
  }

  private trade(t: CcxtTrade): VenueTrade {
    const market = this.ex.markets?.[t.symbol];
    const feeCost = t.fee?.cost ?? 0;
    const feeCurrency = t.fee?.currency ?? undefined;
    let qty = t.amount;
    let commission = feeCost;
    if (market !== undefined && feeCurrency === market.base) {
      // A spot buy's commission taken in the base asset: the position grew by the amount net of it.
      if (t.side === 'buy') qty = t.amount - feeCost;
      commission = feeCost * t.price;
    }
    return { tradeId: t.id, venueOrderId: t.order ?? '', symbol: t.symbol, side: t.side, qty, price: t.price, commission, at: t.timestamp ?? Date.now() };
  }

  /** Runs a library call, translating its errors into what they mean for an order. */
  private async call<T>(fn: () => Promise<T>, write = false): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classifyCcxtError(this.ccxt, err, write);
    }
  }
}

/** ccxt's error classes -> VenueError kinds (see the ccxt error hierarchy and TOOLCHAIN.md). */
export function classifyCcxtError(ccxt: CcxtModule, err: unknown, write: boolean): VenueError {
  const msg = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
  if (err instanceof VenueError) return err;
  if (err instanceof ccxt.DuplicateOrderId || (err instanceof ccxt.InvalidOrder && /Duplicate order sent|-2010.*[Dd]uplicate/.test(String((err as Error).message)))) {
    return new VenueError('duplicate', msg);
  }
  if (err instanceof ccxt.OrderNotFound) return new VenueError('not_found', msg);
  if (err instanceof ccxt.DDoSProtection || err instanceof ccxt.RateLimitExceeded) return new VenueError(write ? 'unknown' : 'rate_limited', msg);
  if (err instanceof ccxt.NetworkError || err instanceof ccxt.OperationFailed) return new VenueError('unknown', msg);
  if (err instanceof ccxt.ExchangeError) return new VenueError('rejected', msg);
  return new VenueError('unknown', msg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}
