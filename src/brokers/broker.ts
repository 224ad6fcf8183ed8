import type { Bar } from '../domain/market.js';
import type { Fill, Order, Position } from '../domain/order.js';

/** What a broker needs of an order to place it (a full domain Order fits). */
export type BrokerOrderRequest = Pick<
  Order,
  'clientOrderId' | 'sessionId' | 'accountId' | 'symbol' | 'side' | 'qty' | 'type' | 'limitPrice'
>;

export interface BrokerOrderAck {
  /** The broker's view of the order after the submit: `accepted`, or `rejected` with a reason. */
  order: Order;
  brokerOrderId: string;
  /**
   * True when the broker already had this clientOrderId: nothing new was placed and `order` is the existing
   * one (possibly filled by now). Resubmitting after a crash is therefore safe.
   */
  duplicate: boolean;
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
  submit(order: BrokerOrderRequest): Promise<BrokerOrderAck>;
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
  /** Releases what the adapter holds; idempotent. */
  close?(): Promise<void>;
}
