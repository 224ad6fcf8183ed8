import { createHmac, timingSafeEqual } from 'node:crypto';
import type { WebSocket } from 'ws';
import { EmulatorServer, ok, type Answer, type Fault, type Routed } from '../http-util.js';

/**
 * A Binance spot REST emulator of the subset sessiond uses, on 127.0.0.1, for tests and benchmarks.
 * Documented behaviour it keeps: HMAC-SHA256 signatures over the query string + body with `timestamp` and
 * `recvWindow` (-1022, -1021), `X-MBX-APIKEY` (-2015), LOT_SIZE / PRICE_FILTER / NOTIONAL filters (-1013),
 * client ids unique among OPEN orders only (-2010 "Duplicate order sent."; a filled order's id is taken
 * again), -2013 "Order does not exist.", -2011 "Unknown order sent.", a spot buy's commission in the base
 * asset, klines that include the bar still open. Market streams (`/ws`, `/ws/<n>`): `SUBSCRIBE` /
 * `UNSUBSCRIBE` requests answered `{ result: null, id }`, `<symbol>@kline_<interval>` events: the bar's last
 * update with `x: true` at its close, then the new bar's first with `x: false` (same values as `klines`).
 */
export interface BinanceMarketSpec {
  symbol: string;
  base: string;
  quote: string;
  stepSize: string;
  minQty: string;
  tickSize: string;
  minNotional: string;
  price: number;
}

export interface BinanceEmulatorOptions {
  apiKey: string;
  secret: string;
  markets?: BinanceMarketSpec[];
  balances?: Record<string, number>;
  /** Commission rate per fill. @defaultValue 0.001 */
  commissionRate?: number;
  /** A market order fills in this many parts: the first at once, the others every fillIntervalMs. @defaultValue 1 */
  fillParts?: number;
  /** @defaultValue 50 */
  fillIntervalMs?: number;
  /** Requests per second per key before 429 (-1003). @defaultValue Infinity */
  maxRequestsPerSecond?: number;
}

export const DEFAULT_BINANCE_MARKETS: BinanceMarketSpec[] = [
  { symbol: 'BTCUSDT', base: 'BTC', quote: 'USDT', stepSize: '0.00001000', minQty: '0.00001000', tickSize: '0.01000000', minNotional: '5.00000000', price: 50_000 },
  { symbol: 'ETHUSDT', base: 'ETH', quote: 'USDT', stepSize: '0.00010000', minQty: '0.00010000', tickSize: '0.01000000', minNotional: '5.00000000', price: 3_000 },
];

interface EmOrder {
  orderId: number;
  clientOrderId: string;
  symbol: string;
  side: 'BUY' | 'SELL';
  type: 'MARKET' | 'LIMIT';
  price: number;
  origQty: number;
  executedQty: number;
  quoteQty: number;
  status: 'NEW' | 'PARTIALLY_FILLED' | 'FILLED' | 'CANCELED' | 'EXPIRED';
  time: number;
  updateTime: number;
  remainingParts: number;
}

interface EmTrade {
  id: number;
  orderId: number;
  symbol: string;
  price: number;
  qty: number;
  quoteQty: number;
  commission: number;
  commissionAsset: string;
  time: number;
  isBuyer: boolean;
}

const s8 = (x: number): string => x.toFixed(8);

export class BinanceEmulator {
  readonly server: EmulatorServer;
  readonly markets = new Map<string, BinanceMarketSpec>();
  readonly balances = new Map<string, number>();
  readonly orders: EmOrder[] = [];
  readonly trades: EmTrade[] = [];
  port = 0;
  private nextOrderId = 1;
  private nextTradeId = 1;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly window: number[] = [];

  constructor(private readonly o: BinanceEmulatorOptions) {
    for (const m of o.markets ?? DEFAULT_BINANCE_MARKETS) this.markets.set(m.symbol, { ...m });
    for (const [k, v] of Object.entries(o.balances ?? { USDT: 1_000_000 })) this.balances.set(k, v);
    this.server = new EmulatorServer((r) => this.route(r));
    this.server.onStream((ws) => this.stream(ws));
    this.maxRequestsPerSecond = o.maxRequestsPerSecond;
  }

  /** Kline events sent over the streams so far. */
  klineEvents = 0;
  /** For each closing kline event sent (`x: true` at its bar's close): ms from the close to sending it. */
  readonly closeEventLagMs: number[] = [];
  /** Requests per second before 429 (-1003); may be changed while running. */
  maxRequestsPerSecond: number | undefined;
  /** 429 answers given for the request-rate limit. */
  rateLimited = 0;

  async start(port = 0): Promise<string> {
    this.port = await this.server.listen(port);
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** ccxt `urls` for a broker config pointing at this emulator. */
  get ccxtUrls(): Record<string, unknown> {
    return binanceCcxtUrls(this.port);
  }

  inject(fault: Fault): void {
    this.server.inject(fault);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await this.server.close();
  }

  setPrice(symbol: string, price: number): void {
    this.markets.get(symbol)!.price = price;
    for (const o of this.orders) if (o.symbol === symbol && o.type === 'LIMIT' && isOpen(o)) this.tryFillLimit(o);
  }

  /** Fills (part of) an open order now, as the market would: "fills while the daemon is down". */
  fill(clientOrderId: string, qty?: number): void {
    const o = this.orders.find((x) => x.clientOrderId === clientOrderId && isOpen(x));
    if (o === undefined) throw new Error(`no open order ${clientOrderId}`);
    this.execute(o, qty ?? o.origQty - o.executedQty, o.type === 'LIMIT' ? o.price : this.markets.get(o.symbol)!.price);
  }

  /** Places an order as another client of the account would (POST /api/v3/order parameters, no signature). */
  placeDirect(params: Record<string, string>): Answer {
    return this.newOrder(new URLSearchParams(params));
  }

  /** Orders with this client id, any status (a duplicate shows as two). */
  ordersWithClientId(clientOrderId: string): EmOrder[] {
    return this.orders.filter((o) => o.clientOrderId === clientOrderId);
  }

  balance(asset: string): number {
    return this.balances.get(asset) ?? 0;
  }

  private route(r: Routed): Answer {
    if (this.maxRequestsPerSecond !== undefined) {
      const now = Date.now();
      while (this.window.length > 0 && this.window[0]! < now - 1000) this.window.shift();
      if (this.window.length >= this.maxRequestsPerSecond) return this.rateLimited++, { status: 429, body: { code: -1003, msg: 'Too much request weight used; current limit is exceeded.' }, headers: { 'Retry-After': '1' } };
      this.window.push(now);
    }
    const key = `${r.method} ${r.path}`;
    switch (key) {
      case 'GET /api/v3/ping':
        return ok({});
      case 'GET /api/v3/time':
        return ok({ serverTime: Date.now() });
      case 'GET /api/v3/exchangeInfo':
        return ok(this.exchangeInfo());
      case 'GET /api/v3/klines':
        return this.klines(r.query);
    }
    const params = this.authenticate(r);
    if ('status' in params) return params;
    switch (key) {
      case 'POST /api/v3/order':
        return this.newOrder(params.p);
      case 'GET /api/v3/order':
        return this.queryOrder(params.p);
      case 'DELETE /api/v3/order':
        return this.cancelOrder(params.p);
      case 'GET /api/v3/openOrders':
        return ok(this.orders.filter((o) => isOpen(o) && (!params.p.has('symbol') || o.symbol === params.p.get('symbol'))).map((o) => this.orderJson(o)));
      case 'GET /api/v3/myTrades':
        return this.myTrades(params.p);
      case 'GET /api/v3/account':
        return ok({
          makerCommission: 10, takerCommission: 10, canTrade: true, canWithdraw: true, canDeposit: true, updateTime: Date.now(), accountType: 'SPOT', permissions: ['SPOT'],
          balances: [...this.balances].map(([asset, free]) => ({ asset, free: s8(free - this.locked(asset)), locked: s8(this.locked(asset)) })),
        });
    }
    return err(404, -1000, `unknown endpoint ${key}`);
  }

  private authenticate(r: Routed): { p: URLSearchParams } | Answer {
    const key = r.headers['x-mbx-apikey'];
    if (key !== this.o.apiKey) return err(401, -2015, 'Invalid API-key, IP, or permissions for action.');
    const total = r.rawQuery + (r.body ? (r.rawQuery ? '&' : '') + r.body : '');
    const m = /^(.*)&signature=([0-9a-f]+)$/.exec(total);
    if (m === null) return err(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.");
    const expected = createHmac('sha256', this.o.secret).update(m[1]!).digest();
    const given = Buffer.from(m[2]!, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return err(400, -1022, 'Signature for this request is not valid.');
    const p = new URLSearchParams(m[1]!);
    const ts = Number(p.get('timestamp'));
    const recv = Number(p.get('recvWindow') ?? 5000);
    if (!Number.isFinite(ts) || ts > Date.now() + 1000 || Date.now() - ts > recv) {
      return err(400, -1021, 'Timestamp for this request is outside of the recvWindow.');
    }
    return { p };
  }

  private exchangeInfo(): unknown {
    return {
      timezone: 'UTC',
      serverTime: Date.now(),
      rateLimits: [{ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 }],
      exchangeFilters: [],
      symbols: [...this.markets.values()].map((m) => ({
        symbol: m.symbol,
        status: 'TRADING',
        baseAsset: m.base,
        baseAssetPrecision: 8,
        quoteAsset: m.quote,
        quotePrecision: 8,
        quoteAssetPrecision: 8,
        orderTypes: ['LIMIT', 'MARKET'],
        icebergAllowed: true,
        ocoAllowed: true,
        isSpotTradingAllowed: true,
        isMarginTradingAllowed: false,
        filters: [
          { filterType: 'PRICE_FILTER', minPrice: '0.01000000', maxPrice: '1000000.00000000', tickSize: m.tickSize },
          { filterType: 'LOT_SIZE', minQty: m.minQty, maxQty: '9000.00000000', stepSize: m.stepSize },
          { filterType: 'NOTIONAL', minNotional: m.minNotional, applyMinToMarket: true, maxNotional: '9000000.00000000', applyMaxToMarket: false, avgPriceMins: 5 },
        ],
        permissions: [],
        permissionSets: [['SPOT']],
        defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
        allowedSelfTradePreventionModes: ['EXPIRE_MAKER'],
      })),
    };
  }

  /** Klines from a deterministic walk around the market's price; the last one is the bar still open. */
  private klines(q: URLSearchParams): Answer {
    const m = this.markets.get(q.get('symbol') ?? '');
    if (m === undefined) return err(400, -1121, 'Invalid symbol.');
    const interval = q.get('interval') ?? '1m';
    const ms = intervalMs(interval);
    if (ms === undefined) return err(400, -1120, 'Invalid interval.');
    const limit = Math.min(Number(q.get('limit') ?? 500), 1000);
    const now = Date.now();
    const open = Math.floor(now / ms) * ms;
    let start = q.has('startTime') ? Math.ceil(Number(q.get('startTime')) / ms) * ms : open - (limit - 1) * ms;
    const end = q.has('endTime') ? Math.min(Number(q.get('endTime')), open) : open;
    const rows: unknown[] = [];
    for (; start <= end && rows.length < limit; start += ms) {
      const k = kline(m.price, start, ms);
      rows.push([start, k.o, k.h, k.l, k.c, k.v, start + ms - 1, k.c, 10, '0.5', s8(Number(k.c) / 2), '0']);
    }
    return ok(rows);
  }

  /** One market-stream connection: SUBSCRIBE / UNSUBSCRIBE, kline events at each bar boundary. */
  private stream(ws: WebSocket): void {
    const subs = new Map<string, NodeJS.Timeout>();
    const send = (x: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(x));
    };
    const event = (m: BinanceMarketSpec, interval: string, ms: number, start: number, closed: boolean) => {
      const k = kline(m.price, start, ms);
      this.klineEvents++;
      send({ e: 'kline', E: Date.now(), s: m.symbol, k: { t: start, T: start + ms - 1, s: m.symbol, i: interval, f: 1, L: 10, o: k.o, c: k.c, h: k.h, l: k.l, v: k.v, n: 10, x: closed, q: s8(Number(k.c)), V: '0.5', Q: s8(Number(k.c) / 2), B: '0' } });
    };
    const subscribe = (name: string): boolean => {
      const sub = /^([a-z0-9]+)@kline_(\w+)$/.exec(name);
      const m = sub === null ? undefined : [...this.markets.values()].find((x) => x.symbol.toLowerCase() === sub[1]);
      const ms = sub === null ? undefined : intervalMs(sub[2]!);
      if (m === undefined || ms === undefined || subs.has(name)) return m !== undefined && ms !== undefined;
      const tick = () => {
        const now = Date.now();
        const open = Math.floor(now / ms) * ms;
        this.closeEventLagMs.push(now - open);
        event(m, sub![2]!, ms, open - ms, true);
        event(m, sub![2]!, ms, open, false);
        subs.set(name, setTimeout(tick, open + ms - Date.now()));
      };
      const now = Date.now();
      event(m, sub![2]!, ms, Math.floor(now / ms) * ms, false);
      subs.set(name, setTimeout(tick, Math.floor(now / ms) * ms + ms - now));
      return true;
    };
    ws.on('message', (data) => {
      let req: { method?: unknown; params?: unknown; id?: unknown };
      try {
        req = JSON.parse(String(data)) as typeof req;
      } catch {
        return send({ error: { code: 3, msg: 'Invalid JSON: expected value at line 1 column 1' } });
      }
      const params = Array.isArray(req.params) ? req.params.map(String) : [];
      if (req.method === 'SUBSCRIBE') {
        if (!params.every(subscribe)) return send({ error: { code: 2, msg: `Invalid request: unknown stream ${params.join(',')}` }, id: req.id });
        return send({ result: null, id: req.id });
      }
      if (req.method === 'UNSUBSCRIBE') {
        for (const p of params) {
          clearTimeout(subs.get(p));
          subs.delete(p);
        }
        return send({ result: null, id: req.id });
      }
      if (req.method === 'LIST_SUBSCRIPTIONS') return send({ result: [...subs.keys()], id: req.id });
      send({ error: { code: 2, msg: `Invalid request: unknown method ${String(req.method)}` }, id: req.id });
    });
    ws.on('close', () => {
      for (const t of subs.values()) clearTimeout(t);
      subs.clear();
    });
  }

  private newOrder(p: URLSearchParams): Answer {
    const m = this.markets.get(p.get('symbol') ?? '');
    if (m === undefined) return err(400, -1121, 'Invalid symbol.');
    const side = p.get('side');
    const type = p.get('type');
    if (side !== 'BUY' && side !== 'SELL') return err(400, -1117, 'Invalid side.');
    if (type !== 'MARKET' && type !== 'LIMIT') return err(400, -1116, 'Invalid orderType.');
    const qty = Number(p.get('quantity'));
    const clientOrderId = p.get('newClientOrderId') ?? `emu${this.nextOrderId}`;
    if (!/^[a-zA-Z0-9-_.:/]{1,36}$/.test(clientOrderId)) return err(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.");
    // Unique among OPEN orders only: the id of a filled order is taken again.
    if (this.orders.some((o) => o.clientOrderId === clientOrderId && isOpen(o))) return err(400, -2010, 'Duplicate order sent.');
    if (!(qty > 0) || !onStep(qty, Number(m.stepSize)) || qty < Number(m.minQty)) return err(400, -1013, 'Filter failure: LOT_SIZE');
    let price = m.price;
    if (type === 'LIMIT') {
      price = Number(p.get('price'));
      if (!(price > 0) || !onStep(price, Number(m.tickSize))) return err(400, -1013, 'Filter failure: PRICE_FILTER');
      if (p.get('timeInForce') === null) return err(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.");
    }
    if (qty * price < Number(m.minNotional)) return err(400, -1013, 'Filter failure: NOTIONAL');
    const cost = qty * price;
    if (side === 'BUY' && this.balance(m.quote) - this.locked(m.quote) < cost) return err(400, -2010, 'Account has insufficient balance for requested action.');
    if (side === 'SELL' && this.balance(m.base) - this.locked(m.base) < qty - 1e-12) return err(400, -2010, 'Account has insufficient balance for requested action.');
    const now = Date.now();
    const o: EmOrder = {
      orderId: this.nextOrderId++, clientOrderId, symbol: m.symbol, side, type, price: type === 'LIMIT' ? price : 0,
      origQty: qty, executedQty: 0, quoteQty: 0, status: 'NEW', time: now, updateTime: now, remainingParts: this.o.fillParts ?? 1,
    };
    this.orders.push(o);
    const tradesBefore = this.trades.length;
    if (type === 'MARKET') this.fillMarketPart(o);
    else this.tryFillLimit(o);
    const json = this.orderJson(o) as Record<string, unknown>;
    json['transactTime'] = now;
    if (p.get('newOrderRespType') === 'FULL') {
      json['fills'] = this.trades.slice(tradesBefore).map((t) => ({ price: s8(t.price), qty: s8(t.qty), commission: s8(t.commission), commissionAsset: t.commissionAsset, tradeId: t.id }));
    }
    return ok(json);
  }

  private fillMarketPart(o: EmOrder): void {
    const parts = Math.max(1, o.remainingParts);
    const step = Number(this.markets.get(o.symbol)!.stepSize);
    const left = o.origQty - o.executedQty;
    const qty = parts === 1 ? left : Math.max(step, Math.floor(left / parts / step) * step);
    this.execute(o, qty, this.markets.get(o.symbol)!.price);
    o.remainingParts = parts - 1;
    if (isOpen(o) && o.remainingParts > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (isOpen(o)) this.fillMarketPart(o);
      }, this.o.fillIntervalMs ?? 50);
      this.timers.add(t);
    }
  }

  private tryFillLimit(o: EmOrder): void {
    const price = this.markets.get(o.symbol)!.price;
    if ((o.side === 'BUY' && price <= o.price) || (o.side === 'SELL' && price >= o.price)) this.execute(o, o.origQty - o.executedQty, o.price);
  }

  private execute(o: EmOrder, qty: number, price: number): void {
    const m = this.markets.get(o.symbol)!;
    qty = Math.min(qty, o.origQty - o.executedQty);
    if (!(qty > 0)) return;
    const rate = this.o.commissionRate ?? 0.001;
    const buy = o.side === 'BUY';
    // Spot: a buy pays commission in the base asset it receives, a sell in the quote asset.
    const commission = buy ? qty * rate : qty * price * rate;
    const commissionAsset = buy ? m.base : m.quote;
    this.add(m.base, buy ? qty - commission : -qty);
    this.add(m.quote, buy ? -qty * price : qty * price - commission);
    o.executedQty = round8(o.executedQty + qty);
    o.quoteQty += qty * price;
    o.status = o.executedQty >= o.origQty - 1e-12 ? 'FILLED' : 'PARTIALLY_FILLED';
    o.updateTime = Date.now();
    this.trades.push({ id: this.nextTradeId++, orderId: o.orderId, symbol: o.symbol, price, qty, quoteQty: qty * price, commission, commissionAsset, time: Date.now(), isBuyer: buy });
  }

  private add(asset: string, delta: number): void {
    this.balances.set(asset, round8((this.balances.get(asset) ?? 0) + delta));
  }

  private locked(asset: string): number {
    let sum = 0;
    for (const o of this.orders) {
      if (!isOpen(o) || o.type !== 'LIMIT') continue;
      const m = this.markets.get(o.symbol)!;
      if (o.side === 'BUY' && m.quote === asset) sum += (o.origQty - o.executedQty) * o.price;
      if (o.side === 'SELL' && m.base === asset) sum += o.origQty - o.executedQty;
    }
    return sum;
  }

  private find(p: URLSearchParams): EmOrder | undefined {
    const symbol = p.get('symbol');
    const id = p.get('orderId');
    const cid = p.get('origClientOrderId');
    // The newest order with that client id (ids of done orders may be reused).
    const list = this.orders.filter((o) => o.symbol === symbol && (id !== null ? String(o.orderId) === id : o.clientOrderId === cid));
    return list.at(-1);
  }

  private queryOrder(p: URLSearchParams): Answer {
    if (p.get('orderId') === null && p.get('origClientOrderId') === null) return err(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!");
    const o = this.find(p);
    return o === undefined ? err(400, -2013, 'Order does not exist.') : ok(this.orderJson(o));
  }

  private cancelOrder(p: URLSearchParams): Answer {
    const o = this.find(p);
    if (o === undefined || !isOpen(o)) return err(400, -2011, 'Unknown order sent.');
    o.status = 'CANCELED';
    o.updateTime = Date.now();
    return ok(this.orderJson(o));
  }

  private myTrades(p: URLSearchParams): Answer {
    const symbol = p.get('symbol');
    if (symbol === null) return err(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
    const orderId = p.get('orderId');
    const fromId = p.get('fromId');
    const limit = Math.min(Number(p.get('limit') ?? 500), 1000);
    const list = this.trades
      .filter((t) => t.symbol === symbol && (orderId === null || String(t.orderId) === orderId) && (fromId === null || t.id >= Number(fromId)))
      .slice(0, limit);
    return ok(list.map((t) => ({
      symbol: t.symbol, id: t.id, orderId: t.orderId, orderListId: -1, price: s8(t.price), qty: s8(t.qty), quoteQty: s8(t.quoteQty),
      commission: s8(t.commission), commissionAsset: t.commissionAsset, time: t.time, isBuyer: t.isBuyer, isMaker: false, isBestMatch: true,
    })));
  }

  private orderJson(o: EmOrder): unknown {
    return {
      symbol: o.symbol, orderId: o.orderId, orderListId: -1, clientOrderId: o.clientOrderId, price: s8(o.price), origQty: s8(o.origQty),
      executedQty: s8(o.executedQty), cummulativeQuoteQty: s8(o.quoteQty), status: o.status, timeInForce: o.type === 'LIMIT' ? 'GTC' : 'GTC',
      type: o.type, side: o.side, stopPrice: '0.00000000', icebergQty: '0.00000000', time: o.time, updateTime: o.updateTime, isWorking: true,
      workingTime: o.time, origQuoteOrderQty: '0.00000000', selfTradePreventionMode: 'EXPIRE_MAKER',
    };
  }
}

function isOpen(o: EmOrder): boolean {
  return o.status === 'NEW' || o.status === 'PARTIALLY_FILLED';
}

function onStep(x: number, step: number): boolean {
  const k = x / step;
  return Math.abs(k - Math.round(k)) < 1e-6;
}

function round8(x: number): number {
  return Math.round(x * 1e8) / 1e8;
}


function err(status: number, code: number, msg: string): Answer {
  return { status, body: { code, msg } };
}

export function intervalMs(interval: string): number | undefined {
  const m = /^(\d+)([smhd])$/.exec(interval);
  if (m === null) return undefined;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** ccxt `urls` for an emulator listening on `port` of 127.0.0.1 (also one in another process). */
export function binanceCcxtUrls(port: number): Record<string, unknown> {
  const http = `http://127.0.0.1:${port}`;
  const ws = `ws://127.0.0.1:${port}/ws`;
  return { api: { public: `${http}/api/v3`, private: `${http}/api/v3`, ws: { spot: ws, margin: ws } } };
}

/** The kline opening at `start` (REST and stream give the same values). */
export function kline(base: number, start: number, ms: number): { o: string; h: string; l: string; c: string; v: string } {
  const c = barPrice(base, start);
  const o = barPrice(base, start - ms);
  return { o: s8(o), h: s8(Math.max(o, c) * 1.001), l: s8(Math.min(o, c) * 0.999), c: s8(c), v: '1.00000000' };
}

/** A deterministic price around `base` for the bar opening at `t`. */
export function barPrice(base: number, t: number): number {
  const x = Math.sin(t / 600_000) * 0.01 + Math.sin(t / 97_000) * 0.004;
  return Math.round(base * (1 + x) * 100) / 100;
}
