import type { Bar, BarSource } from '../domain/market.js';
import type { Fill, Order, Position } from '../domain/order.js';

/** What a broker needs of an order to place it (a full domain Order fits). */
export type BrokerOrderRequest = Pick<
  Order,
  'clientOrderId' | 'sessionId' | 'accountId' | 'symbol' | 'side' | 'qty' | 'type' | 'limitPrice'
> & {
  /** The last price the session saw: live brokers check a market order's cost against the venue's minimum. */
  refPrice?: number | undefined;
};

export interface BrokerSubmitOptions {
  /**
   * The order may already be at the broker (found `new` after a restart, or a resubmit): a live broker looks
   * it up by client order id before sending anything. @defaultValue false
   */
  maybePlaced?: boolean;
}

/** An order's state at a live venue and the fills of it the venue reports (all of them; recorded once by id). */
export interface BrokerOrderUpdate {
  order: Order;
  brokerOrderId?: string | undefined;
  fills: Fill[];
}

/** An open order at a live venue that carries this daemon's client-id prefix. */
export interface BrokerOpenOrder {
  /** The internal id when SQLite knows the order (through the venue id stored beside it). */
  clientOrderId?: string | undefined;
  venueClientOrderId: string;
  brokerOrderId: string;
  /** The session part of the venue id (attributes an order SQLite never recorded). */
  sessionTag: string;
  symbol: string;
  side: Order['side'];
  type: Order['type'];
  qty: number;
  limitPrice?: number | undefined;
  status: Order['status'];
  filledQty: number;
}

export interface BrokerOrderAck {
  /** The broker's view of the order after the submit: `accepted`, or `rejected` with a reason. */
  order: Order;
  brokerOrderId: string;
  /**
   * True when the broker already had this clientOrderId: nothing new was placed and `order` is the existing
   * one (possibly filled by now). Resubmitting after a crash is therefore safe.
   */
  duplicate: boolean;
  /** Fills the broker reported with its answer (a market order filled at once); recorded once by id. */
  fills?: Fill[] | undefined;
}

/** One fill and the order as it stands after it. */
export interface BrokerExecution {
  order: Order;
  fill: Fill;
}

/**
 * What a simulated broker reports for a bar: a fill, or an order that ended on it without one (`fill`
 * absent: e.g. `rejected` at the fill price with `INSUFFICIENT_FUNDS: ...`).
 */
export type BrokerBarEvent = BrokerExecution | { order: Order; fill?: undefined };

export interface BrokerAccount {
  accountId: string;
  cash: number;
  /** cash + marketValue */
  equity: number;
  /** Sum of signed qty x last price over open positions (shorts count negative). */
  marketValue: number;
  /** Since the account opened, commissions included. */
  realizedPnl: number;
  unrealizedPnl: number;
}

export interface BrokerFillFilter {
  accountId?: string | undefined;
  sessionId?: string | undefined;
  clientOrderId?: string | undefined;
}

/**
 * A venue that takes a session's orders. Paper and live adapters implement it; the runner talks only to this.
 * Every method may be called again with the same arguments after a crash: `submit` is idempotent by
 * clientOrderId and fills carry stable ids, so a runner reconciles by resubmitting and re-reading fills.
 */
export interface Broker {
  readonly id: string;
  /** True for brokers that fill against the bars passed to `onBar` instead of a market. */
  readonly simulated: boolean;
  /**
   * Live brokers never throw for an outcome they did not see: they answer status `unknown`. They throw only
   * when nothing was sent (e.g. the venue's markets could not be loaded).
   */
  submit(order: BrokerOrderRequest, options?: BrokerSubmitOptions): Promise<BrokerOrderAck>;
  /**
   * Cancels an open order and returns it as `cancelled`. An order already done (filled, cancelled, rejected)
   * is returned unchanged; an unknown one gives undefined.
   */
  cancel(clientOrderId: string): Promise<Order | undefined>;
  getOrder(clientOrderId: string): Promise<Order | undefined>;
  /** Fills oldest first. */
  listFills(filter?: BrokerFillFilter): Promise<Fill[]>;
  /** The account's open (non-flat) positions, marked to the last price the broker knows. */
  positions(accountId: string): Promise<Position[]>;
  account(accountId: string): Promise<BrokerAccount>;
  /**
   * Simulated brokers only: the market moved. Fills the open orders this bar executes and returns them, with
   * any order that ended on this bar without a fill.
   * `scope` names the market the bar belongs to (a session id when sessions have their own feeds); a bar
   * without scope is the shared market for every session. Call it for a bar BEFORE submitting the orders a
   * strategy decided on that bar, so they fill on the next one.
   */
  onBar?(bar: Bar, scope?: string): Promise<BrokerBarEvent[]>;
  /** Live brokers: reaches the venue and loads its markets; throws when it cannot be reached. */
  connect?(): Promise<void>;
  /** Live brokers: every symbol must be a market of the venue (VALIDATION_ERROR naming the first that is not). */
  validateSymbols?(symbols: readonly string[]): Promise<void>;
  /**
   * Live brokers: the venue's current state of these orders (open or `unknown` ones) with their fills. An
   * order the venue says it does not have is left out.
   */
  refreshOrders?(orders: readonly Order[]): Promise<BrokerOrderUpdate[]>;
  /** Live brokers: the venue's open orders in these symbols that carry this daemon's client-id prefix. */
  openOrders?(symbols: readonly string[]): Promise<BrokerOpenOrder[]>;
  /** Live brokers: the venue's signed position in each symbol (0 when flat). */
  venuePositions?(symbols: readonly string[]): Promise<Map<string, number>>;
  /** Live brokers: the venue's bars (history, and its stream where the adapter has one), for venue feeds. */
  readonly bars?: BrokerBarSource | undefined;
  /** Releases what the adapter holds; idempotent. */
  close?(): Promise<void>;
  /** A broker that keeps state in memory (the paper broker): reread it from the database, after a storage fault rolled writes back. */
  reload?(): void;
}

/** A venue's bars (history pages, maybe a stream): the domain's BarSource. */
export type BrokerBarSource = BarSource;
