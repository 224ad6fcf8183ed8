import { randomUUID } from 'node:crypto';
import { EmulatorServer, ok, type Answer, type Fault, type Routed } from '../http-util.js';

/**
 * An Alpaca Trading API v2 + Market Data v2 emulator of the subset sessiond uses, on 127.0.0.1.
 * Documented behaviour it keeps: `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` (401 40110000), any reuse of a
 * `client_order_id` answers 422 40010001 "client_order_id must be unique" (even of a filled order), a POST
 * answers `accepted` with `filled_qty` "0" and fills come later as `partial_fill` / `fill` activities,
 * amounts as numeric strings, whole shares for non-fractionable assets (422 on fractions), prices in cents.
 */
export interface AlpacaAssetSpec {
  symbol: string;
  fractionable: boolean;
  price: number;
}

export interface AlpacaEmulatorOptions {
  keyId: string;
  secretKey: string;
  assets?: AlpacaAssetSpec[];
  cash?: number;
  /** Orders fill this long after they are accepted. @defaultValue 20 */
  fillDelayMs?: number;
  /** A market order fills in this many parts. @defaultValue 1 */
  fillParts?: number;
}

interface EmOrder {
  id: string;
  client_order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: 'market' | 'limit';
  qty: number;
  limit_price: number | null;
  filled_qty: number;
  filled_value: number;
  status: 'accepted' | 'new' | 'partially_filled' | 'filled' | 'canceled';
  created_at: string;
  parts: number;
}

interface EmFill {
  id: string;
  order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  qty: number;
  price: number;
  cum_qty: number;
  leaves_qty: number;
  type: 'fill' | 'partial_fill';
  transaction_time: string;
}

export const DEFAULT_ALPACA_ASSETS: AlpacaAssetSpec[] = [
  { symbol: 'AAPL', fractionable: true, price: 190 },
  { symbol: 'MSFT', fractionable: false, price: 410 },
];

export class AlpacaEmulator {
  readonly server: EmulatorServer;
  readonly assets = new Map<string, AlpacaAssetSpec>();
  readonly orders: EmOrder[] = [];
  readonly fills: EmFill[] = [];
  readonly positions = new Map<string, number>();
  cash: number;
  port = 0;
  /** When false, accepted orders wait for fill() (fills while the daemon is down, partial fills by hand). */
  autoFill = true;
  private seq = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: AlpacaEmulatorOptions) {
    for (const a of o.assets ?? DEFAULT_ALPACA_ASSETS) this.assets.set(a.symbol, { ...a });
    this.cash = o.cash ?? 1_000_000;
    this.server = new EmulatorServer((r) => this.route(r));
  }

  async start(port = 0): Promise<string> {
    this.port = await this.server.listen(port);
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  inject(fault: Fault): void {
    this.server.inject(fault);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await this.server.close();
  }

  ordersWithClientId(id: string): EmOrder[] {
    return this.orders.filter((o) => o.client_order_id === id);
  }

  /** Fills (part of) an open order now. */
  fill(clientOrderId: string, qty?: number): void {
    const o = this.orders.find((x) => x.client_order_id === clientOrderId && isOpen(x));
    if (o === undefined) throw new Error(`no open order ${clientOrderId}`);
    this.execute(o, qty ?? o.qty - o.filled_qty);
  }

  private route(r: Routed): Answer {
    if (r.headers['apca-api-key-id'] !== this.o.keyId || r.headers['apca-api-secret-key'] !== this.o.secretKey) {
      return { status: 401, body: { code: 40110000, message: 'request is not authorized' } };
    }
    const { method, path } = r;
    if (method === 'GET' && path === '/v2/account') {
      const equity = this.cash + [...this.positions].reduce((s, [sym, q]) => s + q * this.assets.get(sym)!.price, 0);
      return ok({ id: 'emu-account', account_number: 'EMU1', status: 'ACTIVE', currency: 'USD', cash: money(this.cash), equity: money(equity), buying_power: money(this.cash), portfolio_value: money(equity) });
    }
    const asset = /^\/v2\/assets\/([^/]+)$/.exec(path);
    if (method === 'GET' && asset) {
      const a = this.assets.get(decodeURIComponent(asset[1]!));
      if (a === undefined) return { status: 404, body: { code: 40410000, message: 'asset not found' } };
      return ok({ id: randomUUID(), class: 'us_equity', exchange: 'NASDAQ', symbol: a.symbol, name: a.symbol, status: 'active', tradable: true, marginable: true, shortable: true, easy_to_borrow: true, fractionable: a.fractionable });
    }
    if (method === 'POST' && path === '/v2/orders') return this.postOrder(r.body);
    if (method === 'GET' && path === '/v2/orders:by_client_order_id') {
      const o = this.orders.find((x) => x.client_order_id === r.query.get('client_order_id'));
      return o === undefined ? { status: 404, body: { code: 40410000, message: 'order not found' } } : ok(this.orderJson(o));
    }
    if (method === 'GET' && path === '/v2/orders') {
      const status = r.query.get('status') ?? 'open';
      const symbols = r.query.get('symbols')?.split(',');
      const list = this.orders.filter((o) => (status === 'all' || (status === 'open') === isOpen(o)) && (symbols === undefined || symbols.includes(o.symbol)));
      return ok(list.slice(0, Number(r.query.get('limit') ?? 50)).map((o) => this.orderJson(o)));
    }
    const byId = /^\/v2\/orders\/([^/]+)$/.exec(path);
    if (byId) {
      const o = this.orders.find((x) => x.id === byId[1]);
      if (o === undefined) return { status: 404, body: { code: 40410000, message: 'order not found' } };
      if (method === 'GET') return ok(this.orderJson(o));
      if (method === 'DELETE') {
        if (!isOpen(o)) return { status: 422, body: { code: 42210000, message: `order is already in "${o.status}" state` } };
        o.status = 'canceled';
        return { status: 204 };
      }
    }
    if (method === 'GET' && path === '/v2/positions') {
      return ok([...this.positions].filter(([, q]) => q !== 0).map(([symbol, q]) => ({ asset_id: randomUUID(), symbol, exchange: 'NASDAQ', asset_class: 'us_equity', qty: String(q), side: q > 0 ? 'long' : 'short', market_value: money(q * this.assets.get(symbol)!.price), current_price: money(this.assets.get(symbol)!.price) })));
    }
    if (method === 'GET' && path === '/v2/account/activities/FILL') {
      const after = r.query.has('after') ? Date.parse(r.query.get('after')!) : 0;
      const token = r.query.get('page_token');
      let list = this.fills.filter((f) => Date.parse(f.transaction_time) > after);
      if (token !== null) list = list.slice(list.findIndex((f) => f.id === token) + 1);
      const size = Number(r.query.get('page_size') ?? 100);
      return ok(list.slice(0, size).map((f) => ({ id: f.id, activity_type: 'FILL', transaction_time: f.transaction_time, type: f.type, price: money(f.price), qty: String(f.qty), side: f.side, symbol: f.symbol, leaves_qty: String(f.leaves_qty), order_id: f.order_id, cum_qty: String(f.cum_qty), order_status: f.leaves_qty > 0 ? 'partially_filled' : 'filled' })));
    }
    if (method === 'GET' && path === '/v2/stocks/bars') return this.bars(r.query);
    return { status: 404, body: { code: 40410000, message: `endpoint not found: ${method} ${path}` } };
  }

  private postOrder(body: string): Answer {
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return { status: 400, body: { code: 40010000, message: 'request body format is invalid' } };
    }
    const a = this.assets.get(String(b['symbol']));
    if (a === undefined) return { status: 422, body: { code: 40010001, message: `asset "${String(b['symbol'])}" not found` } };
    const cid = typeof b['client_order_id'] === 'string' ? b['client_order_id'] : randomUUID();
    if (cid.length > 48) return { status: 422, body: { code: 40010001, message: 'client_order_id must be no more than 48 characters' } };
    // Any reuse, even of a filled or cancelled order's id.
    if (this.orders.some((o) => o.client_order_id === cid)) return { status: 422, body: { code: 40010001, message: 'client_order_id must be unique' } };
    const qty = Number(b['qty']);
    if (!(qty > 0)) return { status: 422, body: { code: 40010001, message: 'qty must be > 0' } };
    if (!a.fractionable && !Number.isInteger(qty)) return { status: 422, body: { code: 40010001, message: `fractional orders are not supported for ${a.symbol}` } };
    const type = b['type'] === 'limit' ? 'limit' : 'market';
    const limit = b['limit_price'] === undefined ? null : Number(b['limit_price']);
    if (type === 'limit' && (limit === null || Math.abs(limit * 100 - Math.round(limit * 100)) > 1e-6)) {
      return { status: 422, body: { code: 40010001, message: 'invalid limit_price. sub-penny increment does not fulfill minimum pricing criteria' } };
    }
    const side = b['side'] === 'sell' ? 'sell' : 'buy';
    if (side === 'buy' && qty * (limit ?? a.price) > this.cash) return { status: 403, body: { code: 40310000, message: 'insufficient buying power' } };
    const o: EmOrder = {
      id: randomUUID(), client_order_id: cid, symbol: a.symbol, side, type, qty, limit_price: limit,
      filled_qty: 0, filled_value: 0, status: 'accepted', created_at: new Date().toISOString(), parts: this.o.fillParts ?? 1,
    };
    this.orders.push(o);
    if (this.autoFill) this.scheduleFill(o);
    return ok(this.orderJson(o));
  }

  private scheduleFill(o: EmOrder): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!isOpen(o) || !this.autoFill) return;
      const a = this.assets.get(o.symbol)!;
      if (o.type === 'limit' && ((o.side === 'buy' && a.price > o.limit_price!) || (o.side === 'sell' && a.price < o.limit_price!))) return this.scheduleFill(o);
      const left = o.qty - o.filled_qty;
      const part = o.parts <= 1 ? left : a.fractionable ? Math.round((left / o.parts) * 1e9) / 1e9 : Math.max(1, Math.floor(left / o.parts));
      o.parts--;
      this.execute(o, part);
      if (isOpen(o)) this.scheduleFill(o);
    }, this.o.fillDelayMs ?? 20);
    this.timers.add(t);
  }

  private execute(o: EmOrder, qty: number): void {
    const a = this.assets.get(o.symbol)!;
    qty = Math.min(qty, o.qty - o.filled_qty);
    if (!(qty > 0)) return;
    const price = o.type === 'limit' ? o.limit_price! : a.price;
    o.filled_qty = Math.round((o.filled_qty + qty) * 1e9) / 1e9;
    o.filled_value += qty * price;
    o.status = o.filled_qty >= o.qty ? 'filled' : 'partially_filled';
    const sign = o.side === 'buy' ? 1 : -1;
    this.positions.set(o.symbol, Math.round(((this.positions.get(o.symbol) ?? 0) + sign * qty) * 1e9) / 1e9);
    this.cash -= sign * qty * price;
    this.seq++;
    const now = new Date();
    this.fills.push({
      id: `${now.toISOString().replace(/\D/g, '').slice(0, 17)}::${randomUUID()}`, order_id: o.id, symbol: o.symbol, side: o.side, qty, price,
      cum_qty: o.filled_qty, leaves_qty: o.qty - o.filled_qty, type: o.status === 'filled' ? 'fill' : 'partial_fill', transaction_time: now.toISOString(),
    });
  }

  private bars(q: URLSearchParams): Answer {
    const symbols = (q.get('symbols') ?? '').split(',').filter(Boolean);
    const tf = q.get('timeframe') ?? '1Min';
    const m = /^(\d+)(Min|Hour|Day)$/.exec(tf);
    if (m === null) return { status: 400, body: { code: 40010000, message: 'invalid timeframe' } };
    const ms = Number(m[1]) * { Min: 60_000, Hour: 3_600_000, Day: 86_400_000 }[m[2] as 'Min' | 'Hour' | 'Day'];
    const limit = Math.min(Number(q.get('limit') ?? 1000), 10_000);
    const closedEnd = Math.floor(Date.now() / ms) * ms - ms; // only closed bars
    const end = q.has('end') ? Math.min(Date.parse(q.get('end')!), closedEnd) : closedEnd;
    let start = q.has('start') ? Math.ceil(Date.parse(q.get('start')!) / ms) * ms : end - (limit - 1) * ms;
    const token = q.get('page_token');
    if (token !== null) start = Number(token);
    const out: Record<string, unknown[]> = {};
    let next: number | null = null;
    for (const s of symbols) {
      const a = this.assets.get(s);
      if (a === undefined) continue;
      const list: unknown[] = [];
      let t = start;
      for (; t <= end && list.length < limit; t += ms) {
        const c = Math.round(a.price * (1 + Math.sin(t / 600_000) * 0.01) * 100) / 100;
        list.push({ t: new Date(t).toISOString(), o: c, h: c * 1.001, l: c * 0.999, c, v: 100, n: 10, vw: c });
      }
      if (t <= end) next = t;
      out[s] = list;
    }
    return ok({ bars: out, next_page_token: next === null ? null : String(next) });
  }

  private orderJson(o: EmOrder): unknown {
    return {
      id: o.id, client_order_id: o.client_order_id, created_at: o.created_at, updated_at: new Date().toISOString(), submitted_at: o.created_at,
      filled_at: o.status === 'filled' ? new Date().toISOString() : null, asset_class: 'us_equity', symbol: o.symbol, qty: String(o.qty),
      filled_qty: String(o.filled_qty), filled_avg_price: o.filled_qty > 0 ? money(o.filled_value / o.filled_qty) : null, order_class: '', order_type: o.type,
      type: o.type, side: o.side, time_in_force: 'day', limit_price: o.limit_price === null ? null : money(o.limit_price), stop_price: null, status: o.status, extended_hours: false,
    };
  }
}

function isOpen(o: EmOrder): boolean {
  return o.status === 'accepted' || o.status === 'new' || o.status === 'partially_filled';
}

function money(x: number): string {
  return (Math.round(x * 10000) / 10000).toString();
}

