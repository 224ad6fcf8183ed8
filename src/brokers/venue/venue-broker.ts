import { ValidationError } from '../../domain/errors.js';
import type { Fill, Order, Position } from '../../domain/order.js';
import type {
  Broker,
  BrokerAccount,
  BrokerBarSource,
  BrokerFillFilter,
  BrokerOpenOrder,
  BrokerOrderAck,
  BrokerOrderRequest,
  BrokerOrderUpdate,
  BrokerSubmitOptions,
} from '../broker.js';
import { sessionTagOf, venueClientOrderId } from './client-order-id.js';
import { withReadRetry, type ReadRetryOptions } from './read-retry.js';
import { VenueError, type MarketRules, type VenueClient, type VenueOrder, type VenueTrade } from './venue-client.js';
import type { SqliteVenueOrderStore, VenueOrderRecord } from './venue-order-store.js';

export interface VenueBrokerLogger {
  warn(obj: object, msg: string): void;
}

export interface VenueBrokerOptions {
  /** Prefix of every client order id this daemon sends (`[A-Za-z0-9]{1,6}-`). @defaultValue 'sd-' */
  clientIdPrefix?: string;
  readRetry?: ReadRetryOptions;
  logger?: VenueBrokerLogger | undefined;
  now?: () => Date;
}

/**
 * A live venue behind the Broker port: one VenueClient (ccxt or Alpaca) plus what every venue needs the same
 * way: markets checked and orders rounded to them before anything is sent, deterministic venue client ids
 * stored beside the internal ones, placements never retried (an outcome not seen is `unknown`), duplicate-id
 * answers read as "already placed" and looked up, fills recorded by the venue's trade id.
 */
export class VenueBroker implements Broker {
  readonly simulated = false;
  private markets: Map<string, MarketRules> | undefined;
  private loading: Promise<Map<string, MarketRules>> | undefined;
  private readonly prefix: string;
  private readonly traded = new Set<string>();

  constructor(
    readonly id: string,
    private readonly client: VenueClient,
    private readonly store: SqliteVenueOrderStore,
    private readonly o: VenueBrokerOptions = {},
  ) {
    this.prefix = o.clientIdPrefix ?? 'sd-';
  }

  get venue(): string {
    return this.client.venue;
  }

  /** The venue's bars for venue feeds (history reads retried like every read; the stream where the client has one). */
  get bars(): BrokerBarSource | undefined {
    const c = this.client;
    if (c.fetchBars === undefined || c.timeframeMs === undefined) return undefined;
    const fetchBars = c.fetchBars.bind(c);
    const timeframeMs = c.timeframeMs.bind(c);
    const watch = c.watchBars?.bind(c);
    return {
      brokerId: this.id,
      pageLimit: c.barPageLimit ?? 500,
      timeframeMs: (tf) => {
        try {
          return timeframeMs(tf);
        } catch (err) {
          throw new ValidationError(`broker ${this.id}: ${(err as Error).message}`);
        }
      },
      fetchBars: async (symbol, tf, since, limit) => {
        await this.loadMarkets();
        return withReadRetry(() => fetchBars(symbol, tf, since, limit), this.o.readRetry);
      },
      ...(watch !== undefined ? { watchBars: (symbol: string, tf: string, l: Parameters<NonNullable<BrokerBarSource['watchBars']>>[2]) => watch(symbol, tf, l) } : {}),
    };
  }

  async connect(): Promise<void> {
    await this.loadMarkets();
    // Venues whose markets load per symbol prove they answer with the account.
    if (this.client.perSymbolMarkets) await withReadRetry(() => this.client.fetchBalance(), this.o.readRetry);
  }

  async validateSymbols(symbols: readonly string[]): Promise<void> {
    for (const s of symbols) await this.rules(s);
  }

  async submit(req: BrokerOrderRequest, options: BrokerSubmitOptions = {}): Promise<BrokerOrderAck> {
    let rules: MarketRules;
    try {
      // Known markets are read without a turn of the event loop, so the venue id below is recorded inside
      // the caller's transaction (the runners send a batch's orders in one: one commit, not one per order).
      rules = this.markets?.get(req.symbol) ?? (await this.rules(req.symbol));
    } catch (err) {
      if (err instanceof ValidationError) return this.refused(req, `VALIDATION_ERROR: ${err.message}`);
      throw err; // nothing was sent: the step is retried
    }
    const qty = rules.roundQty(req.qty);
    const limitPrice = req.type === 'limit' && req.limitPrice !== undefined ? rules.roundPrice(req.limitPrice) : undefined;
    if (!(qty > 0) || (rules.minQty !== undefined && qty < rules.minQty)) {
      return this.refused(req, `RISK_LIMIT: qty ${num(qty)} (from ${num(req.qty)}) is under the venue's minimum amount ${num(rules.minQty ?? 0)} for ${req.symbol}`);
    }
    const price = limitPrice ?? req.refPrice;
    if (rules.minCost !== undefined && price !== undefined && qty * price < rules.minCost) {
      return this.refused(req, `RISK_LIMIT: cost ${num(qty * price)} is under the venue's minimum cost ${num(rules.minCost)} for ${req.symbol}`);
    }
    const rec = this.record(req);
    this.traded.add(req.symbol);
    if (options.maybePlaced) {
      const existing = await this.lookup(rec);
      if (existing !== undefined) return this.ack(req, rec, existing, true);
    }
    let placed: VenueOrder;
    try {
      placed = await this.client.place({ venueClientOrderId: rec.venueClientOrderId, symbol: req.symbol, side: req.side, type: req.type, qty, limitPrice });
    } catch (err) {
      const e = err instanceof VenueError ? err : new VenueError('unknown', message(err));
      if (e.kind === 'rejected') return this.refused(req, `venue rejected: ${e.message}`, { qty, limitPrice });
      if (e.kind === 'duplicate') {
        // The venue has an order with this id: it was placed (by us, before a crash or a lost answer).
        const existing = await this.lookup(rec).catch(() => undefined);
        if (existing !== undefined) return this.ack(req, rec, existing, true);
      }
      this.o.logger?.warn({ brokerId: this.id, clientOrderId: req.clientOrderId, venueClientOrderId: rec.venueClientOrderId, kind: e.kind, err: e.message }, 'submit outcome unknown: resolving by lookup');
      return { order: this.orderOf(req, { status: 'unknown', filledQty: 0, qty, limitPrice, reason: `submit outcome unknown (${e.kind}): ${e.message}` }), brokerOrderId: '', duplicate: false };
    }
    return this.ack(req, rec, placed, false);
  }

  async getOrder(clientOrderId: string): Promise<Order | undefined> {
    const rec = this.store.byClientId(clientOrderId);
    if (rec === undefined) return undefined;
    const vo = await this.lookup(rec);
    return vo === undefined ? undefined : this.orderFromVenue(rec, vo);
  }

  async cancel(clientOrderId: string): Promise<Order | undefined> {
    const rec = this.store.byClientId(clientOrderId);
    if (rec === undefined) return undefined;
    let vo: VenueOrder | undefined;
    try {
      vo = await this.client.cancel(rec.symbol, rec.venueClientOrderId);
    } catch (err) {
      // Already done (filled, cancelled) answers "unknown order" on Binance: read what it is.
      if (!(err instanceof VenueError) || (err.kind !== 'not_found' && err.kind !== 'rejected')) throw err;
      vo = undefined;
    }
    vo ??= await this.lookup(rec);
    return vo === undefined ? undefined : this.orderFromVenue(rec, vo);
  }

  async listFills(filter: BrokerFillFilter = {}): Promise<Fill[]> {
    if (filter.clientOrderId === undefined) return [];
    const rec = this.store.byClientId(filter.clientOrderId);
    if (rec === undefined) return [];
    const vo = await this.lookup(rec);
    if (vo === undefined || vo.filledQty === 0) return [];
    const trades = await withReadRetry(() => this.client.fetchOrderTrades(vo), this.o.readRetry);
    return trades.map((t) => this.fillOf(rec, t));
  }

  async refreshOrders(orders: readonly Order[]): Promise<BrokerOrderUpdate[]> {
    const out: BrokerOrderUpdate[] = [];
    for (const o of orders) {
      const rec = this.store.byClientId(o.clientOrderId);
      if (rec === undefined) continue;
      const vo = await this.lookup(rec);
      if (vo === undefined) continue;
      let fills: Fill[] = [];
      if (vo.filledQty > o.filledQty || (o.status === 'unknown' && vo.filledQty > 0)) {
        const trades = vo.trades ?? (await withReadRetry(() => this.client.fetchOrderTrades(vo), this.o.readRetry));
        fills = trades.map((t) => this.fillOf(rec, t));
      }
      this.store.setVenueOrderId(rec.clientOrderId, vo.venueOrderId);
      out.push({ order: this.orderFromVenue(rec, vo), brokerOrderId: vo.venueOrderId, fills });
    }
    return out;
  }

  async openOrders(symbols: readonly string[]): Promise<BrokerOpenOrder[]> {
    const open = await withReadRetry(() => this.client.fetchOpenOrders(symbols), this.o.readRetry);
    const out: BrokerOpenOrder[] = [];
    for (const vo of open) {
      const tag = sessionTagOf(this.prefix, vo.venueClientOrderId);
      if (tag === undefined) continue;
      const rec = this.store.byVenueClientId(this.id, vo.venueClientOrderId);
      out.push({
        clientOrderId: rec?.clientOrderId,
        venueClientOrderId: vo.venueClientOrderId,
        brokerOrderId: vo.venueOrderId,
        sessionTag: tag,
        symbol: vo.symbol,
        side: vo.side,
        type: vo.type,
        qty: vo.qty,
        limitPrice: vo.limitPrice,
        status: vo.status,
        filledQty: vo.filledQty,
      });
    }
    return out;
  }

  /** Records an order found at the venue that SQLite never had, under the internal id the caller chose. */
  adoptVenueId(rec: VenueOrderRecord): void {
    this.store.record(rec);
  }

  venuePositions(symbols: readonly string[]): Promise<Map<string, number>> {
    return withReadRetry(() => this.client.fetchPositions(symbols), this.o.readRetry);
  }

  async positions(_accountId: string): Promise<Position[]> {
    const qty = await this.venuePositions([...this.traded]);
    return [...qty].filter(([, q]) => q !== 0).map(([symbol, q]) => ({ symbol, qty: q, avgPrice: 0, realizedPnl: 0, unrealizedPnl: 0, lastPrice: 0 }));
  }

  async account(accountId: string): Promise<BrokerAccount> {
    const b = await withReadRetry(() => this.client.fetchBalance(), this.o.readRetry);
    return { accountId, cash: b.cash, equity: b.equity, marketValue: b.equity - b.cash, realizedPnl: 0, unrealizedPnl: 0 };
  }

  async close(): Promise<void> {
    await this.client.close?.();
  }

  /** Markets rules of a symbol; VALIDATION_ERROR naming it when the venue has no such market. */
  async rules(symbol: string): Promise<MarketRules> {
    const markets = await this.loadMarkets();
    let m = markets.get(symbol);
    if (m === undefined && this.client.perSymbolMarkets) {
      m = (await withReadRetry(() => this.client.loadMarkets([symbol]), this.o.readRetry)).get(symbol);
      if (m !== undefined) markets.set(symbol, m);
    }
    if (m === undefined) throw new ValidationError(`symbol ${symbol} is not a market of broker ${this.id} (${this.client.venue})`);
    return m;
  }

  private loadMarkets(): Promise<Map<string, MarketRules>> {
    if (this.markets !== undefined) return Promise.resolve(this.markets);
    this.loading ??= withReadRetry(() => this.client.loadMarkets(), this.o.readRetry).then(
      (m) => {
        this.markets = m;
        return m;
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  private record(req: BrokerOrderRequest): VenueOrderRecord {
    const existing = this.store.byClientId(req.clientOrderId);
    if (existing !== undefined) return existing;
    const rec: VenueOrderRecord = {
      clientOrderId: req.clientOrderId,
      brokerId: this.id,
      venueClientOrderId: venueClientOrderId(this.prefix, req.sessionId, req.clientOrderId),
      sessionId: req.sessionId,
      symbol: req.symbol,
      createdAt: this.iso(),
    };
    this.store.record(rec);
    return rec;
  }

  /** The venue's order by our client id, or undefined when it says it has none. Retried: it is a read. */
  private lookup(rec: VenueOrderRecord): Promise<VenueOrder | undefined> {
    return withReadRetry(() => this.client.fetchOrder(rec.symbol, rec.venueClientOrderId), this.o.readRetry);
  }

  private ack(req: BrokerOrderRequest, rec: VenueOrderRecord, vo: VenueOrder, duplicate: boolean): BrokerOrderAck {
    this.store.setVenueOrderId(rec.clientOrderId, vo.venueOrderId);
    const ack: BrokerOrderAck = { order: this.orderFromVenue(rec, vo, req), brokerOrderId: vo.venueOrderId, duplicate };
    if (vo.trades !== undefined && vo.trades.length > 0) ack.fills = vo.trades.map((t) => this.fillOf(rec, t));
    return ack;
  }

  private refused(req: BrokerOrderRequest, reason: string, rounded: { qty?: number; limitPrice?: number | undefined } = {}): BrokerOrderAck {
    return { order: this.orderOf(req, { status: 'rejected', filledQty: 0, reason, ...rounded }), brokerOrderId: '', duplicate: false };
  }

  private orderOf(req: BrokerOrderRequest, over: Partial<Order> & Pick<Order, 'status' | 'filledQty'>): Order {
    const at = this.iso();
    const o: Order = {
      clientOrderId: req.clientOrderId,
      sessionId: req.sessionId,
      brokerId: this.id,
      accountId: req.accountId,
      symbol: req.symbol,
      side: req.side,
      qty: req.qty,
      type: req.type,
      createdAt: at,
      updatedAt: at,
      ...stripUndefined(over),
      status: over.status,
      filledQty: over.filledQty,
    };
    if (req.type === 'limit' && o.limitPrice === undefined && req.limitPrice !== undefined) o.limitPrice = req.limitPrice;
    return o;
  }

  private orderFromVenue(rec: VenueOrderRecord, vo: VenueOrder, req?: BrokerOrderRequest): Order {
    const at = this.iso();
    const o: Order = {
      clientOrderId: rec.clientOrderId,
      sessionId: rec.sessionId,
      brokerId: this.id,
      accountId: req?.accountId ?? '',
      symbol: rec.symbol,
      side: vo.side,
      qty: vo.qty,
      type: vo.type,
      status: vo.status,
      filledQty: vo.filledQty,
      createdAt: new Date(vo.createdAt).toISOString(),
      updatedAt: at,
    };
    if (vo.limitPrice !== undefined) o.limitPrice = vo.limitPrice;
    if (vo.avgFillPrice !== undefined && vo.filledQty > 0) o.avgFillPrice = vo.avgFillPrice;
    return o;
  }

  private fillOf(rec: VenueOrderRecord, t: VenueTrade): Fill {
    return {
      id: `${this.id}:${t.symbol}:${t.tradeId}`,
      clientOrderId: rec.clientOrderId,
      sessionId: rec.sessionId,
      symbol: rec.symbol,
      side: t.side,
      qty: t.qty,
      price: t.price,
      commission: t.commission,
      at: new Date(t.at).toISOString(),
    };
  }

  private iso(): string {
    return (this.o.now?.() ?? new Date()).toISOString();
  }
}

function num(x: number): string {
  return String(Number(x.toPrecision(12)));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
