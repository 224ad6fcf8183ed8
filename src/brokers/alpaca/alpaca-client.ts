import { Alpaca } from '@alpacahq/alpaca-trade-api';
import type { Bar } from '../../domain/market.js';
import { parseWire } from '../ccxt/ccxt-schemas.js';
import { VenueError, type MarketRules, type VenueBalance, type VenueClient, type VenueOrder, type VenuePlaceRequest, type VenueTrade } from '../venue/venue-client.js';
import {
  AlpacaAccountSchema,
  AlpacaAssetSchema,
  AlpacaBarsSchema,
  AlpacaFillSchema,
  AlpacaOrderSchema,
  AlpacaPositionSchema,
  alpacaStatus,
  type AlpacaOrder,
} from './alpaca-schemas.js';

export interface AlpacaClientConfig {
  paper: boolean;
  keyId: string;
  secretKey: string;
  /** Trading API origin override (private gateway, local emulator). */
  baseUrl?: string | undefined;
  /** Market-data API origin override. */
  dataUrl?: string | undefined;
  /** @defaultValue 10000 */
  timeoutMs?: number | undefined;
  /** The SDK's client-side limiter. @defaultValue { maxRequests: 200, intervalMs: 60000 } */
  rateLimit?: { maxRequests: number; intervalMs: number } | undefined;
}

const PAPER_ORIGIN = 'https://paper-api.alpaca.markets';
const LIVE_ORIGIN = 'https://api.alpaca.markets';
const DATA_ORIGIN = 'https://data.alpaca.markets';

/** Alpaca Trading API v2 (+ market data) through @alpacahq/alpaca-trade-api, as a VenueClient. */
export class AlpacaVenueClient implements VenueClient {
  readonly venue = 'alpaca';
  readonly perSymbolMarkets = true;
  readonly barPageLimit = 10_000;
  private readonly alpaca: Alpaca;

  constructor(private readonly c: AlpacaClientConfig) {
    const rewrites: [string, string][] = [];
    if (c.baseUrl !== undefined) rewrites.push([c.paper ? PAPER_ORIGIN : LIVE_ORIGIN, c.baseUrl.replace(/\/$/, '')]);
    if (c.dataUrl !== undefined) rewrites.push([DATA_ORIGIN, c.dataUrl.replace(/\/$/, '')]);
    this.alpaca = new Alpaca({
      keyId: c.keyId,
      secret: c.secretKey,
      paper: c.paper,
      timeoutMs: c.timeoutMs ?? 10_000,
      // Reads are retried by the broker (withReadRetry); the SDK's own retry would multiply attempts.
      retry: false,
      rateLimit: c.rateLimit ?? { maxRequests: 200, intervalMs: 60_000 },
      // The facade has no base-URL option: rewriting the origin keeps its limiter and timeout.
      fetchApi: (url, init) => {
        let u = url;
        for (const [from, to] of rewrites) if (u.startsWith(from)) u = to + u.slice(from.length);
        return fetch(u, init);
      },
    });
  }

  async loadMarkets(symbols: readonly string[] = []): Promise<Map<string, MarketRules>> {
    const out = new Map<string, MarketRules>();
    for (const s of symbols) {
      const rules = await this.asset(s);
      if (rules !== undefined) out.set(s, rules);
    }
    return out;
  }

  /** One asset's rules, or undefined when Alpaca has no such tradable asset. */
  async asset(symbol: string): Promise<MarketRules | undefined> {
    let raw: unknown;
    try {
      raw = await this.call(async () => (await this.alpaca.trading.assets.getV2AssetsSymbolOrAssetIdRaw({ symbolOrAssetId: symbol })).raw.json());
    } catch (err) {
      if (err instanceof VenueError && err.kind === 'not_found') return undefined;
      throw err;
    }
    const a = parseWire(AlpacaAssetSchema, raw, 'asset');
    if (!a.tradable) return undefined;
    // Stocks: whole shares unless fractionable (9 decimals); prices in cents (4 decimals under $1).
    const qtyStep = a.min_trade_increment ?? (a.fractionable ? 1e-9 : 1);
    const minQty = a.min_order_size ?? qtyStep;
    return {
      symbol,
      minQty,
      minCost: a.fractionable ? 1 : undefined,
      roundQty: (q) => floorTo(q, qtyStep),
      roundPrice: (p) => roundTo(p, a.price_increment ?? (p >= 1 ? 0.01 : 0.0001)),
    };
  }

  async place(r: VenuePlaceRequest): Promise<VenueOrder> {
    const raw = await this.call(
      async () =>
        (
          await this.alpaca.trading.orders.postOrderRaw({
            postOrderRequest: {
              symbol: r.symbol,
              qty: String(r.qty),
              side: r.side,
              type: r.type,
              timeInForce: 'day',
              clientOrderId: r.venueClientOrderId,
              ...(r.limitPrice !== undefined ? { limitPrice: String(r.limitPrice) } : {}),
            } as never,
          })
        ).raw.json(),
      true,
    );
    return this.order(parseWire(AlpacaOrderSchema, raw, 'order'));
  }

  async fetchOrder(_symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined> {
    try {
      const raw = await this.call(async () => (await this.alpaca.trading.orders.getOrderByClientOrderIdRaw({ clientOrderId: venueClientOrderId })).raw.json());
      return this.order(parseWire(AlpacaOrderSchema, raw, 'order'));
    } catch (err) {
      if (err instanceof VenueError && err.kind === 'not_found') return undefined;
      throw err;
    }
  }

  async cancel(symbol: string, venueClientOrderId: string): Promise<VenueOrder | undefined> {
    const o = await this.fetchOrder(symbol, venueClientOrderId);
    if (o === undefined) return undefined;
    if (o.status === 'accepted' || o.status === 'partially_filled') {
      await this.call(() => this.alpaca.trading.orders.deleteOrderByOrderIDRaw({ orderId: o.venueOrderId }), true);
    }
    return this.fetchOrder(symbol, venueClientOrderId);
  }

  async fetchOpenOrders(symbols: readonly string[]): Promise<VenueOrder[]> {
    if (symbols.length === 0) return [];
    const raw = await this.call(async () => (await this.alpaca.trading.orders.getAllOrdersRaw({ status: 'open', limit: 500, symbols: symbols.join(',') } as never)).raw.json());
    if (!Array.isArray(raw)) throw new VenueError('unknown', 'unexpected open orders answer: not a list');
    return raw.map((o) => this.order(parseWire(AlpacaOrderSchema, o, 'order')));
  }

  async fetchOrderTrades(o: VenueOrder): Promise<VenueTrade[]> {
    const out: VenueTrade[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < 50; page++) {
      // The SDK's parsed activity keeps only id, type, qty and symbol: price, side and order id need the raw body.
      const raw = await this.call(async () =>
        (
          await this.alpaca.trading.accountActivities.getAccountActivitiesByActivityTypeRaw({
            activityType: 'FILL',
            after: new Date(o.createdAt - 60_000),
            direction: 'asc',
            pageSize: 100,
            ...(pageToken !== undefined ? { pageToken } : {}),
          } as never)
        ).raw.json(),
      );
      if (!Array.isArray(raw)) throw new VenueError('unknown', 'unexpected activities answer: not a list');
      for (const a of raw) {
        const f = parseWire(AlpacaFillSchema, a, 'fill activity');
        if (f.order_id !== o.venueOrderId) continue;
        out.push({ tradeId: f.id, venueOrderId: f.order_id, symbol: f.symbol, side: f.side === 'buy' ? 'buy' : 'sell', qty: f.qty, price: f.price, commission: 0, at: Date.parse(f.transaction_time) });
      }
      if (raw.length < 100) break;
      pageToken = (raw.at(-1) as { id: string }).id;
    }
    return out;
  }

  async fetchPositions(symbols: readonly string[]): Promise<Map<string, number>> {
    const raw = await this.call(async () => (await this.alpaca.trading.positions.getAllOpenPositionsRaw()).raw.json());
    if (!Array.isArray(raw)) throw new VenueError('unknown', 'unexpected positions answer: not a list');
    const out = new Map<string, number>(symbols.map((s) => [s, 0]));
    for (const p of raw) {
      const pos = parseWire(AlpacaPositionSchema, p, 'position');
      const q = pos.side === 'short' ? -Math.abs(pos.qty) : pos.qty;
      if (out.has(pos.symbol)) out.set(pos.symbol, q);
    }
    return out;
  }

  async fetchBalance(): Promise<VenueBalance> {
    const raw = await this.call(async () => (await this.alpaca.trading.account.getAccountRaw()).raw.json());
    const a = parseWire(AlpacaAccountSchema, raw, 'account');
    return { cash: a.cash, equity: a.equity };
  }

  async fetchBars(symbol: string, timeframe: string, since: number, limit: number): Promise<Bar[]> {
    const tf = alpacaTimeframe(timeframe);
    const out: Bar[] = [];
    let pageToken: string | undefined;
    do {
      const raw = await this.call(async () =>
        (
          await this.alpaca.marketData.stocks.stockBarsRaw({
            symbols: symbol,
            timeframe: tf,
            start: new Date(since),
            limit: Math.min(10_000, limit - out.length),
            sort: 'asc',
            ...(pageToken !== undefined ? { pageToken } : {}),
          } as never)
        ).raw.json(),
      );
      const page = parseWire(AlpacaBarsSchema, raw, 'bars');
      for (const b of page.bars?.[symbol] ?? []) out.push({ symbol, time: Date.parse(b.t), open: b.o, high: b.h, low: b.l, close: b.c, volume: b.v });
      pageToken = page.next_page_token ?? undefined;
    } while (pageToken !== undefined && out.length < limit);
    return out;
  }

  timeframeMs(timeframe: string): number {
    const m = /^(\d+)(Min|Hour|Day)$/.exec(alpacaTimeframe(timeframe))!;
    return Number(m[1]) * { Min: 60_000, Hour: 3_600_000, Day: 86_400_000 }[m[2] as 'Min' | 'Hour' | 'Day'];
  }

  private order(o: AlpacaOrder): VenueOrder {
    return {
      venueOrderId: o.id,
      venueClientOrderId: o.client_order_id,
      symbol: o.symbol,
      side: o.side,
      type: o.type === 'limit' ? 'limit' : 'market',
      qty: o.qty ?? 0,
      limitPrice: o.limit_price ?? undefined,
      status: alpacaStatus(o.status, o.filled_qty),
      filledQty: o.filled_qty,
      avgFillPrice: o.filled_avg_price ?? undefined,
      createdAt: Date.parse(o.created_at),
    };
  }

  private async call<T>(fn: () => Promise<T>, write = false): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classifyAlpacaError(err, write);
    }
  }
}

/** The SDK's errors -> VenueError kinds. 422 40010001 "client_order_id must be unique" is "already placed". */
export function classifyAlpacaError(err: unknown, write: boolean): VenueError {
  if (err instanceof VenueError) return err;
  const e = err as { status?: unknown; code?: unknown; message?: unknown; name?: unknown };
  const msg = `${String(e?.name ?? 'Error')}: ${String(e?.message ?? err)}`;
  const status = typeof e?.status === 'number' ? e.status : undefined;
  if (status === undefined) return new VenueError('unknown', msg); // FetchError: timeout, reset, DNS
  if (status === 422 && (String(e.code) === '40010001' || /client_order_id must be unique/.test(String(e.message)))) return new VenueError('duplicate', msg);
  if (status === 404) return new VenueError('not_found', msg);
  if (status === 429) return new VenueError(write ? 'unknown' : 'rate_limited', msg);
  if (status >= 500) return new VenueError('unknown', msg);
  return new VenueError('rejected', msg);
}

/** `1m` -> `1Min`, `5m` -> `5Min`, `1h` -> `1Hour`, `1d` -> `1Day`. */
export function alpacaTimeframe(tf: string): string {
  const m = /^(\d+)([mhd])$/.exec(tf);
  if (m === null) throw new VenueError('rejected', `timeframe ${tf} is not one Alpaca has (e.g. 1m, 5m, 1h, 1d)`);
  return `${m[1]}${{ m: 'Min', h: 'Hour', d: 'Day' }[m[2] as 'm' | 'h' | 'd']}`;
}

function floorTo(x: number, step: number): number {
  const k = Math.floor(x / step + 1e-6);
  return Number((k * step).toFixed(decimals(step)));
}

function roundTo(x: number, step: number): number {
  return Number((Math.round(x / step) * step).toFixed(decimals(step)));
}

function decimals(step: number): number {
  const s = step.toString();
  if (s.includes('e-')) return Number(s.split('e-')[1]);
  return s.includes('.') ? s.split('.')[1]!.length : 0;
}
