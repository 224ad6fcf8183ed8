import { RiskLimitError, ValidationError } from './errors.js';
import type { Side } from './market.js';
import type { RiskControls } from './session.js';

/** The name of the control that refused an order. */
export type RiskRule = 'maxOrderQty' | 'maxOrderNotional' | 'maxPositionQty' | 'maxOpenOrders' | 'maxDailyLoss';

/** The order being checked; `price` is the reference price (last close, or the limit price of a limit order). */
export interface RiskOrder {
  symbol: string;
  side: Side;
  qty: number;
  price: number;
}

/** What the session already holds when the order is checked. */
export interface RiskExposure {
  /** Signed position in the order's symbol: > 0 long, < 0 short. */
  positionQty: number;
  /** The session's open orders (new, accepted, partially_filled, pending_approval). */
  openOrders: number;
  /** Realized + unrealized PnL since the start of the UTC day; negative is a loss. */
  dailyPnl: number;
}

export type RiskCheckResult =
  | { ok: true }
  | {
      ok: false;
      rule: RiskRule;
      /** Names the limit and the value, e.g. `maxOrderQty 10 exceeded by qty 25`. */
      reason: string;
      limit: number;
      value: number;
    };

/**
 * Checks one order against a session's risk controls. Controls left undefined are not checked.
 *
 * Order of the checks: maxDailyLoss, maxOpenOrders, maxOrderQty, maxOrderNotional, maxPositionQty; the
 * first refusal wins. An order that only brings the position closer to flat (never past it) is exempt from
 * maxDailyLoss and maxPositionQty, so a session can always get out of a position after a breach.
 *
 * Throws VALIDATION_ERROR for a non-positive qty or price: a NaN price would otherwise pass every limit.
 *
 * @example
 * const r = checkOrderRisk({ symbol: 'AAPL', side: 'buy', qty: 25, price: 100 }, { maxOrderQty: 10 },
 *   { positionQty: 0, openOrders: 0, dailyPnl: 0 });
 * // { ok: false, rule: 'maxOrderQty', reason: 'maxOrderQty 10 exceeded by qty 25', limit: 10, value: 25 }
 */
export function checkOrderRisk(order: RiskOrder, controls: RiskControls, exposure: RiskExposure): RiskCheckResult {
  if (!(Number.isFinite(order.qty) && order.qty > 0)) {
    throw new ValidationError(`order qty must be a positive number, got ${order.qty}`);
  }
  if (!(Number.isFinite(order.price) && order.price > 0)) {
    throw new ValidationError(`order reference price must be a positive number, got ${order.price}`);
  }
  for (const [name, value] of Object.entries(exposure) as [keyof RiskExposure, number][]) {
    if (!Number.isFinite(value)) throw new ValidationError(`exposure.${name} must be a finite number, got ${value}`);
  }

  const signedQty = order.side === 'buy' ? order.qty : -order.qty;
  const current = exposure.positionQty;
  const resulting = current + signedQty;
  const reduceOnly = current !== 0 && Math.sign(signedQty) !== Math.sign(current) && order.qty <= Math.abs(current);

  const { maxDailyLoss, maxOpenOrders, maxOrderQty, maxOrderNotional, maxPositionQty } = controls;

  if (maxDailyLoss !== undefined && !reduceOnly && exposure.dailyPnl <= -maxDailyLoss) {
    return refuse('maxDailyLoss', maxDailyLoss, exposure.dailyPnl, `maxDailyLoss ${n(maxDailyLoss)} reached with daily pnl ${n(exposure.dailyPnl)}`);
  }
  if (maxOpenOrders !== undefined && exposure.openOrders >= maxOpenOrders) {
    return refuse('maxOpenOrders', maxOpenOrders, exposure.openOrders, `maxOpenOrders ${maxOpenOrders} reached with ${exposure.openOrders} open orders`);
  }
  if (maxOrderQty !== undefined && order.qty > maxOrderQty) {
    return refuse('maxOrderQty', maxOrderQty, order.qty, `maxOrderQty ${n(maxOrderQty)} exceeded by qty ${n(order.qty)}`);
  }
  const notional = order.qty * order.price;
  if (maxOrderNotional !== undefined && notional > maxOrderNotional) {
    return refuse(
      'maxOrderNotional',
      maxOrderNotional,
      notional,
      `maxOrderNotional ${n(maxOrderNotional)} exceeded by notional ${n(notional)} (qty ${n(order.qty)} x price ${n(order.price)})`,
    );
  }
  if (maxPositionQty !== undefined && !reduceOnly && Math.abs(resulting) > maxPositionQty) {
    return refuse(
      'maxPositionQty',
      maxPositionQty,
      Math.abs(resulting),
      `maxPositionQty ${n(maxPositionQty)} exceeded by resulting position ${n(resulting)} in ${order.symbol}`,
    );
  }
  return { ok: true };
}

/** True when the session's loss today reached maxDailyLoss: the runner pauses the session. */
export function isDailyLossBreached(dailyPnl: number, controls: RiskControls): boolean {
  return controls.maxDailyLoss !== undefined && dailyPnl <= -controls.maxDailyLoss;
}

/**
 * A refusal as a RISK_LIMIT error; `toWire()` gives the order's `reason`, e.g.
 * `RISK_LIMIT: maxOrderQty 10 exceeded by qty 25`.
 */
export function toRiskLimitError(result: Extract<RiskCheckResult, { ok: false }>): RiskLimitError {
  return new RiskLimitError(result.reason, { rule: result.rule, limit: result.limit, value: result.value });
}

function refuse(rule: RiskRule, limit: number, value: number, reason: string): RiskCheckResult {
  return { ok: false, rule, reason, limit, value };
}

// Enough digits for money, without binary noise such as 2500.0000000000005.
function n(x: number): string {
  return String(Number(x.toPrecision(12)));
}
