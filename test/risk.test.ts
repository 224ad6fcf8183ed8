import test from 'ava';
import { checkOrderRisk, isDailyLossBreached, toRiskLimitError, type RiskExposure, type RiskOrder } from '../src/domain/risk.js';

const flat: RiskExposure = { positionQty: 0, openOrders: 0, dailyPnl: 0 };
const buy = (qty: number, price = 100): RiskOrder => ({ symbol: 'AAPL', side: 'buy', qty, price });
const sell = (qty: number, price = 100): RiskOrder => ({ symbol: 'AAPL', side: 'sell', qty, price });

test('an order passes when no controls are set', (t) => {
  t.deepEqual(checkOrderRisk(buy(1_000_000), {}, { positionQty: 5_000, openOrders: 999, dailyPnl: -1e9 }), { ok: true });
});

test('maxOrderQty refuses an order above the limit and allows one at the limit', (t) => {
  t.deepEqual(checkOrderRisk(buy(25), { maxOrderQty: 10 }, flat), {
    ok: false,
    rule: 'maxOrderQty',
    reason: 'maxOrderQty 10 exceeded by qty 25',
    limit: 10,
    value: 25,
  });
  t.deepEqual(checkOrderRisk(buy(10), { maxOrderQty: 10 }, flat), { ok: true });
  t.deepEqual(checkOrderRisk(sell(9.99), { maxOrderQty: 10 }, flat), { ok: true });
});

test('maxOrderNotional refuses qty x reference price above the limit and allows just under it', (t) => {
  const r = checkOrderRisk(buy(60, 100), { maxOrderNotional: 5000 }, flat);
  t.like(r, { ok: false, rule: 'maxOrderNotional', limit: 5000, value: 6000 });
  t.is(r.ok ? '' : r.reason, 'maxOrderNotional 5000 exceeded by notional 6000 (qty 60 x price 100)');
  t.deepEqual(checkOrderRisk(buy(49, 100), { maxOrderNotional: 5000 }, flat), { ok: true });
  t.deepEqual(checkOrderRisk(buy(50, 100), { maxOrderNotional: 5000 }, flat), { ok: true });
});

test('maxPositionQty refuses an order whose resulting absolute position exceeds the limit', (t) => {
  const long = checkOrderRisk(buy(30), { maxPositionQty: 100 }, { ...flat, positionQty: 80 });
  t.like(long, { ok: false, rule: 'maxPositionQty', limit: 100, value: 110 });
  t.is(long.ok ? '' : long.reason, 'maxPositionQty 100 exceeded by resulting position 110 in AAPL');
  t.deepEqual(checkOrderRisk(buy(20), { maxPositionQty: 100 }, { ...flat, positionQty: 80 }), { ok: true });

  // Selling through flat into a short is checked on the short side.
  const short = checkOrderRisk(sell(200), { maxPositionQty: 100 }, { ...flat, positionQty: 80 });
  t.like(short, { ok: false, rule: 'maxPositionQty', value: 120 });
  t.is(short.ok ? '' : short.reason, 'maxPositionQty 100 exceeded by resulting position -120 in AAPL');
  t.deepEqual(checkOrderRisk(sell(179), { maxPositionQty: 100 }, { ...flat, positionQty: 80 }), { ok: true });
});

test('maxPositionQty lets an order that only reduces an oversized position through', (t) => {
  t.deepEqual(checkOrderRisk(sell(20), { maxPositionQty: 100 }, { ...flat, positionQty: 150 }), { ok: true });
  t.like(checkOrderRisk(buy(1), { maxPositionQty: 100 }, { ...flat, positionQty: 150 }), { ok: false, rule: 'maxPositionQty' });
});

test('maxOpenOrders refuses when the open orders reach the limit and allows one under it', (t) => {
  const r = checkOrderRisk(buy(1), { maxOpenOrders: 5 }, { ...flat, openOrders: 5 });
  t.deepEqual(r, { ok: false, rule: 'maxOpenOrders', reason: 'maxOpenOrders 5 reached with 5 open orders', limit: 5, value: 5 });
  t.deepEqual(checkOrderRisk(buy(1), { maxOpenOrders: 5 }, { ...flat, openOrders: 4 }), { ok: true });
});

test('maxDailyLoss refuses new orders once the daily loss reaches the limit', (t) => {
  const r = checkOrderRisk(buy(1), { maxDailyLoss: 1000 }, { ...flat, dailyPnl: -1000 });
  t.deepEqual(r, { ok: false, rule: 'maxDailyLoss', reason: 'maxDailyLoss 1000 reached with daily pnl -1000', limit: 1000, value: -1000 });
  t.like(checkOrderRisk(sell(1), { maxDailyLoss: 1000 }, { ...flat, dailyPnl: -1250.5 }), { ok: false, rule: 'maxDailyLoss', value: -1250.5 });
  t.deepEqual(checkOrderRisk(buy(1), { maxDailyLoss: 1000 }, { ...flat, dailyPnl: -999.99 }), { ok: true });
  t.deepEqual(checkOrderRisk(buy(1), { maxDailyLoss: 1000 }, { ...flat, dailyPnl: 5000 }), { ok: true });
});

test('maxDailyLoss still allows closing a position, but not flipping it', (t) => {
  const exposure = { ...flat, positionQty: 10, dailyPnl: -2000 };
  t.deepEqual(checkOrderRisk(sell(10), { maxDailyLoss: 1000 }, exposure), { ok: true });
  t.like(checkOrderRisk(sell(11), { maxDailyLoss: 1000 }, exposure), { ok: false, rule: 'maxDailyLoss' });
  t.like(checkOrderRisk(buy(1), { maxDailyLoss: 1000 }, exposure), { ok: false, rule: 'maxDailyLoss' });
});

test('isDailyLossBreached is true at and beyond the limit only', (t) => {
  t.false(isDailyLossBreached(-999, { maxDailyLoss: 1000 }));
  t.true(isDailyLossBreached(-1000, { maxDailyLoss: 1000 }));
  t.true(isDailyLossBreached(-1001, { maxDailyLoss: 1000 }));
  t.false(isDailyLossBreached(-1e9, {}));
});

test('the first violated control in check order is reported', (t) => {
  const controls = { maxOrderQty: 10, maxOrderNotional: 500, maxOpenOrders: 1, maxDailyLoss: 100, maxPositionQty: 5 };
  t.like(checkOrderRisk(buy(20), controls, { positionQty: 0, openOrders: 1, dailyPnl: -100 }), { rule: 'maxDailyLoss' });
  t.like(checkOrderRisk(buy(20), controls, { positionQty: 0, openOrders: 1, dailyPnl: 0 }), { rule: 'maxOpenOrders' });
  t.like(checkOrderRisk(buy(20), controls, flat), { rule: 'maxOrderQty' });
  t.like(checkOrderRisk(buy(8), controls, flat), { rule: 'maxOrderNotional' });
  t.like(checkOrderRisk(buy(4), controls, { ...flat, positionQty: 2 }), { rule: 'maxPositionQty' });
});

test('a refusal becomes a RISK_LIMIT error whose wire form is the order reason', (t) => {
  const r = checkOrderRisk(buy(25), { maxOrderQty: 10 }, flat);
  if (r.ok) return t.fail();
  const err = toRiskLimitError(r);
  t.is(err.code, 'RISK_LIMIT');
  t.is(err.toWire(), 'RISK_LIMIT: maxOrderQty 10 exceeded by qty 25');
  t.deepEqual(err.details, { rule: 'maxOrderQty', limit: 10, value: 25 });
});

test('an order with a non-positive qty or a missing price is a validation error, not a pass', (t) => {
  t.throws(() => checkOrderRisk(buy(0), {}, flat), { message: 'order qty must be a positive number, got 0' });
  t.throws(() => checkOrderRisk(buy(1, Number.NaN), { maxOrderNotional: 1 }, flat), {
    message: 'order reference price must be a positive number, got NaN',
  });
  const err = t.throws(() => checkOrderRisk(buy(1), {}, { ...flat, dailyPnl: Number.NaN }));
  t.is((err as { code?: string }).code, 'VALIDATION_ERROR');
});
