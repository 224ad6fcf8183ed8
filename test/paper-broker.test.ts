import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import {
  BrokerRegistry,
  DEFAULT_PAPER_BROKER_OPTIONS,
  PaperBroker,
  type BrokerOrderRequest,
  type PaperBrokerOptions,
} from '../src/brokers/index.js';
import type { Bar } from '../src/domain/market.js';
import { openDatabase, type Db } from '../src/persistence/database.js';

const DAY = Date.parse('2026-01-05T14:30:00.000Z');
const MIN = 60_000;
const close = (a: number, b: number, eps = 1e-9): boolean => Math.abs(a - b) <= eps;

function tempDbFile(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiond-paper-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'sessiond.db');
}

function setup(t: { teardown(fn: () => void): void }, options: PaperBrokerOptions = {}): { db: Db; file: string; broker: PaperBroker } {
  const file = tempDbFile(t);
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
  });
  return { db, file, broker: new PaperBroker(db, { now: () => new Date(DAY), ...options }) };
}

function bar(i: number, open: number, over: Partial<Bar> = {}): Bar {
  return { symbol: 'AAPL', time: DAY + i * MIN, open, high: open + 2, low: open - 2, close: open + 1, volume: 1000, ...over };
}

function req(over: Partial<BrokerOrderRequest> = {}): BrokerOrderRequest {
  return { clientOrderId: 's1:AAPL:1:entry', sessionId: 's1', accountId: 'acc', symbol: 'AAPL', side: 'buy', qty: 10, type: 'market', ...over };
}

test('defaults are 5 bps slippage, 1 bps commission, no fixed commission and 100000 cash', (t) => {
  const { broker } = setup(t);
  t.like(broker.settings, { id: 'paper', slippageBps: 5, commissionBps: 1, commissionPerOrder: 0, initialCash: 100_000 });
  t.is(DEFAULT_PAPER_BROKER_OPTIONS.slippageBps, 5);
  t.true(broker.simulated);
});

test('a market order fills at the next bar open with slippage and commission; cash and position follow', async (t) => {
  const { broker } = setup(t, { commissionPerOrder: 1 });
  t.deepEqual(await broker.onBar(bar(0, 99)), []);

  const ack = await broker.submit(req());
  t.false(ack.duplicate);
  t.is(ack.brokerOrderId, 'paper-1');
  t.like(ack.order, { status: 'accepted', filledQty: 0, brokerId: 'paper', accountId: 'acc' });

  const [exec, ...rest] = await broker.onBar(bar(1, 100));
  t.is(rest.length, 0);
  const price = 100 * 1.0005; // buy pays 5 bps more
  const commission = 1 + 10 * price * 0.0001; // fixed + 1 bps of notional
  t.true(close(exec!.fill!.price, price));
  t.true(close(exec!.fill!.commission, commission));
  t.like(exec!.fill, { id: 'paper:s1:AAPL:1:entry:1', qty: 10, side: 'buy', sessionId: 's1', at: new Date(DAY + MIN).toISOString() });
  t.like(exec!.order, { status: 'filled', filledQty: 10 });
  t.true(close(exec!.order.avgFillPrice!, price));

  const account = await broker.account('acc');
  t.true(close(account.cash, 100_000 - 10 * price - commission));
  t.true(close(account.marketValue, 10 * 101)); // marked to the bar close
  t.true(close(account.equity, account.cash + 1010));
  t.true(close(account.realizedPnl, -commission));
  t.true(close(account.unrealizedPnl, 10 * (101 - price)));

  const [pos] = await broker.positions('acc');
  t.like(pos, { symbol: 'AAPL', qty: 10, lastPrice: 101 });
  t.true(close(pos!.avgPrice, price));

  // Sell it back: the seller receives 5 bps less.
  await broker.submit(req({ clientOrderId: 's1:AAPL:2:exit', side: 'sell' }));
  const [sold] = await broker.onBar(bar(2, 110));
  const sellPrice = 110 * 0.9995;
  t.true(close(sold!.fill!.price, sellPrice));
  const sellCommission = 1 + 10 * sellPrice * 0.0001;
  const after = await broker.account('acc');
  t.true(close(after.cash, 100_000 - 10 * price - commission + 10 * sellPrice - sellCommission));
  t.true(close(after.equity, after.cash));
  t.true(close(after.realizedPnl, 10 * (sellPrice - price) - commission - sellCommission));
  t.deepEqual(await broker.positions('acc'), []);
});

test('an order never fills on the bar it was decided on, nor on an older bar replayed', async (t) => {
  const { broker } = setup(t);
  await broker.onBar(bar(5, 100));
  await broker.submit(req());
  t.deepEqual(await broker.onBar(bar(5, 100)), []);
  t.deepEqual(await broker.onBar(bar(4, 100)), []);
  t.is((await broker.onBar(bar(6, 103))).length, 1);
});

test('a market order submitted before any bar fills at the first bar', async (t) => {
  const { broker } = setup(t, { slippageBps: 0, commissionBps: 0, allowShort: true });
  await broker.submit(req({ side: 'sell', qty: 3 }));
  const [exec] = await broker.onBar(bar(0, 50));
  t.is(exec!.fill!.price, 50);
  t.like((await broker.positions('acc'))[0], { qty: -3, avgPrice: 50 });
  const account = await broker.account('acc');
  t.is(account.cash, 100_150);
  t.is(account.marketValue, -3 * 51);
  t.is(account.equity, 100_150 - 153);
});

test('a buy whose cost with commission exceeds the available cash is rejected with INSUFFICIENT_FUNDS and the numbers', async (t) => {
  const { broker } = setup(t, { initialCash: 1000, commissionPerOrder: 1 });
  await broker.onBar(bar(0, 99)); // close 100
  const big = await broker.submit(req({ clientOrderId: 'big', qty: 10 }));
  t.is(big.order.status, 'rejected');
  // 10 x 100 x 1.0005 = 1000.5, commission 1 + 1 bps = 1.10005
  t.is(big.order.reason, 'INSUFFICIENT_FUNDS: buy 10 AAPL costs about 1001.60005 (qty x 100.05 + commission 1.10005) > available cash 1000 (cash 1000 - open buys 0)');
  // Open buys hold their estimated cost: the second half does not fit beside the first.
  t.is((await broker.submit(req({ clientOrderId: 'half-1', qty: 5 }))).order.status, 'accepted');
  const second = await broker.submit(req({ clientOrderId: 'half-2', qty: 5 }));
  t.is(second.order.status, 'rejected');
  t.regex(second.order.reason!, /^INSUFFICIENT_FUNDS: buy 5 AAPL costs about 501\.300\d* .* > available cash 498\.69\d* \(cash 1000 - open buys 501\.30\d*\)$/);
  // Only the accepted one fills; cash stays at or above zero.
  const execs = await broker.onBar(bar(1, 100));
  t.deepEqual(execs.map((e) => e.order.clientOrderId), ['half-1']);
  t.true((await broker.account('acc')).cash >= 0);
  t.is((await broker.getOrder('big'))!.status, 'rejected');
});

test('a buy that a gap made unaffordable is rejected at the fill, reported without a fill', async (t) => {
  const { broker } = setup(t, { initialCash: 1000, slippageBps: 0, commissionBps: 0 });
  await broker.onBar(bar(0, 89)); // close 90
  t.is((await broker.submit(req({ qty: 10 }))).order.status, 'accepted'); // about 900
  const [event, ...rest] = await broker.onBar(bar(1, 150)); // 1500 > 1000
  t.is(rest.length, 0);
  t.is(event!.fill, undefined);
  t.like(event!.order, { status: 'rejected', filledQty: 0, reason: 'INSUFFICIENT_FUNDS: buy 10 AAPL at 150 costs 1500 with commission > cash 1000 at the fill' });
  t.is((await broker.account('acc')).cash, 1000);
  t.deepEqual(await broker.positions('acc'), []);
  t.deepEqual(await broker.onBar(bar(2, 80)), [], 'a rejected order never fills later');
});

test('a sell beyond the position is rejected with INSUFFICIENT_POSITION unless allowShort', async (t) => {
  const { broker } = setup(t, { slippageBps: 0, commissionBps: 0 });
  await broker.onBar(bar(0, 100));
  const naked = await broker.submit(req({ clientOrderId: 'naked', side: 'sell', qty: 3 }));
  t.like(naked.order, { status: 'rejected', reason: 'INSUFFICIENT_POSITION: sell 3 AAPL > position 0 (shorting is off: paperBroker.allowShort)' });
  await broker.submit(req({ clientOrderId: 'buy', qty: 5 }));
  await broker.onBar(bar(1, 100));
  t.is((await broker.submit(req({ clientOrderId: 'sell-3', side: 'sell', qty: 3 }))).order.status, 'accepted');
  const more = await broker.submit(req({ clientOrderId: 'sell-3b', side: 'sell', qty: 3 }));
  t.like(more.order, { status: 'rejected', reason: 'INSUFFICIENT_POSITION: sell 3 AAPL > position 5 less open sells 3 (shorting is off: paperBroker.allowShort)' });
  t.is((await broker.submit(req({ clientOrderId: 'sell-2', side: 'sell', qty: 2 }))).order.status, 'accepted');
  await broker.onBar(bar(2, 100));
  t.deepEqual(await broker.positions('acc'), [], 'sold exactly what it held');

  const shorts = setup(t, { slippageBps: 0, commissionBps: 0, allowShort: true }).broker;
  await shorts.onBar(bar(0, 100));
  t.is((await shorts.submit(req({ clientOrderId: 'short', side: 'sell', qty: 3 }))).order.status, 'accepted');
  await shorts.onBar(bar(1, 100));
  t.like((await shorts.positions('acc'))[0], { qty: -3 });
});

test('bars of other symbols do not fill an order', async (t) => {
  const { broker } = setup(t);
  await broker.submit(req());
  t.deepEqual(await broker.onBar(bar(1, 100, { symbol: 'MSFT' })), []);
  t.like(await broker.getOrder('s1:AAPL:1:entry'), { status: 'accepted' });
});

test('a buy limit waits until a bar trades through it and fills at the limit or better', async (t) => {
  const { broker } = setup(t, { slippageBps: 5, commissionBps: 0 });
  await broker.onBar(bar(0, 100));
  await broker.submit(req({ type: 'limit', limitPrice: 95 }));

  // Low exactly at the limit: touched, not traded through.
  t.deepEqual(await broker.onBar(bar(1, 97, { low: 95, high: 98 })), []);
  // Trades through: fills at the limit (the open was above it).
  const [exec] = await broker.onBar(bar(2, 96, { low: 94, high: 97 }));
  t.is(exec!.fill!.price, 95);
  t.like(exec!.order, { status: 'filled', limitPrice: 95, type: 'limit' });

  // A gap below the limit fills at the (better) open, slippage included but capped at the limit.
  await broker.submit(req({ clientOrderId: 'gap', type: 'limit', limitPrice: 95 }));
  const [gap] = await broker.onBar(bar(3, 90, { low: 89, high: 91 }));
  t.true(close(gap!.fill!.price, 90 * 1.0005));
  await broker.submit(req({ clientOrderId: 'cap', type: 'limit', limitPrice: 90.02 }));
  const [cap] = await broker.onBar(bar(4, 90, { low: 89, high: 91 }));
  t.is(cap!.fill!.price, 90.02);
});

test('a sell limit fills when the bar trades above it, at the limit or a better open', async (t) => {
  const { broker } = setup(t, { slippageBps: 0, commissionBps: 0, allowShort: true });
  await broker.onBar(bar(0, 100));
  await broker.submit(req({ side: 'sell', type: 'limit', limitPrice: 105 }));
  t.deepEqual(await broker.onBar(bar(1, 103, { high: 105, low: 102 })), []);
  const [exec] = await broker.onBar(bar(2, 104, { high: 106, low: 103 }));
  t.is(exec!.fill!.price, 105);
  await broker.submit(req({ clientOrderId: 'gap', side: 'sell', type: 'limit', limitPrice: 105 }));
  const [gap] = await broker.onBar(bar(3, 108, { high: 109, low: 107 }));
  t.is(gap!.fill!.price, 108);
});

test('submitting the same clientOrderId twice returns the existing order and places nothing new', async (t) => {
  const { broker } = setup(t, { slippageBps: 0, commissionBps: 0 });
  await broker.onBar(bar(0, 100));
  const first = await broker.submit(req());
  const again = await broker.submit(req({ qty: 999 }));
  t.true(again.duplicate);
  t.is(again.brokerOrderId, first.brokerOrderId);
  t.deepEqual(again.order, first.order);

  const execs = await broker.onBar(bar(1, 100));
  t.is(execs.length, 1);
  t.is(execs[0]!.fill!.qty, 10);

  // Resubmitting after the fill (a runner recovering from a crash) returns the filled order, no second fill.
  const late = await broker.submit(req());
  t.true(late.duplicate);
  t.like(late.order, { status: 'filled', filledQty: 10 });
  t.deepEqual(await broker.onBar(bar(2, 100)), []);
  t.is((await broker.listFills({ accountId: 'acc' })).length, 1);
  t.like((await broker.positions('acc'))[0], { qty: 10 });
});

test('state survives closing and reopening the database with a new PaperBroker', async (t) => {
  const { db, file, broker } = setup(t, { slippageBps: 0, commissionBps: 0 });
  await broker.onBar(bar(0, 100));
  await broker.submit(req({ clientOrderId: 'a' }));
  await broker.onBar(bar(1, 100)); // a fills at 100
  await broker.submit(req({ clientOrderId: 'open-limit', type: 'limit', limitPrice: 90 }));
  await broker.submit(req({ clientOrderId: 'pending-market', side: 'sell', qty: 4 }));
  const before = await broker.account('acc');
  await broker.close();
  db.close();

  const db2 = openDatabase(file);
  t.teardown(() => db2.close());
  const reopened = new PaperBroker(db2, { slippageBps: 0, commissionBps: 0, now: () => new Date(DAY) });
  t.deepEqual(await reopened.account('acc'), before);
  t.like((await reopened.positions('acc'))[0], { qty: 10, avgPrice: 100 });

  // The bar the pending orders were decided on does not fill them after the restart either.
  t.deepEqual(await reopened.onBar(bar(1, 100)), []);
  const execs = await reopened.onBar(bar(2, 95, { low: 89, high: 96 }));
  t.deepEqual(
    execs.map((e) => [e.order.clientOrderId, e.fill!.price]),
    [
      ['open-limit', 90],
      ['pending-market', 95],
    ],
  );
  t.like((await reopened.positions('acc'))[0], { qty: 16 });
  t.is((await reopened.submit(req({ clientOrderId: 'next' }))).brokerOrderId, 'paper-4');
  t.true((await reopened.submit(req({ clientOrderId: 'a' }))).duplicate);
  t.deepEqual(
    (await reopened.listFills()).map((f) => f.id),
    ['paper:a:1', 'paper:open-limit:1', 'paper:pending-market:1'],
  );
});

test('cancel of an open order cancels it; it then never fills; cancel of a filled or unknown order changes nothing', async (t) => {
  const { broker } = setup(t);
  await broker.onBar(bar(0, 100));
  await broker.submit(req({ clientOrderId: 'limit', type: 'limit', limitPrice: 50 }));
  const cancelled = await broker.cancel('limit');
  t.like(cancelled, { status: 'cancelled', reason: 'cancelled by client', filledQty: 0 });
  t.deepEqual(await broker.onBar(bar(1, 40, { low: 39, high: 41 })), []);
  t.like(await broker.cancel('limit'), { status: 'cancelled' });

  await broker.submit(req({ clientOrderId: 'mkt' }));
  await broker.onBar(bar(2, 100));
  t.like(await broker.cancel('mkt'), { status: 'filled' });
  t.is(await broker.cancel('nope'), undefined);
  t.is((await broker.account('acc')).cash < 100_000, true);
});

test('accounts are separate and open with the initial cash on first use', async (t) => {
  const { broker } = setup(t, { initialCash: 5000, slippageBps: 0, commissionBps: 0, allowShort: true });
  t.deepEqual(await broker.account('new'), { accountId: 'new', cash: 5000, equity: 5000, marketValue: 0, realizedPnl: 0, unrealizedPnl: 0 });
  await broker.submit(req({ clientOrderId: 'x', accountId: 'a1' }));
  await broker.submit(req({ clientOrderId: 'y', accountId: 'a2', side: 'sell', qty: 2 }));
  await broker.onBar(bar(0, 100));
  t.is((await broker.account('a1')).cash, 4000);
  t.is((await broker.account('a2')).cash, 5200);
  t.deepEqual((await broker.listFills({ accountId: 'a2' })).map((f) => f.clientOrderId), ['y']);
});

test('a scoped bar fills only its own session orders', async (t) => {
  const { broker } = setup(t, { slippageBps: 0, commissionBps: 0 });
  await broker.onBar(bar(0, 100), 's1');
  await broker.onBar(bar(0, 500), 's2');
  await broker.submit(req({ clientOrderId: 'one', sessionId: 's1' }));
  await broker.submit(req({ clientOrderId: 'two', sessionId: 's2' }));
  const s1 = await broker.onBar(bar(1, 101), 's1');
  t.deepEqual(s1.map((e) => [e.order.clientOrderId, e.fill!.price]), [['one', 101]]);
  const s2 = await broker.onBar(bar(1, 505), 's2');
  t.deepEqual(s2.map((e) => [e.order.clientOrderId, e.fill!.price]), [['two', 505]]);
  t.deepEqual((await broker.listFills({ sessionId: 's2' })).map((f) => f.clientOrderId), ['two']);
});

test('a malformed order is rejected and recorded; a missing id is a validation error', async (t) => {
  const { broker } = setup(t);
  const ack = await broker.submit(req({ clientOrderId: 'bad-limit', type: 'limit' }));
  t.like(ack.order, { status: 'rejected', reason: 'a limit order needs a positive limitPrice, got undefined' });
  t.true((await broker.submit(req({ clientOrderId: 'bad-limit', type: 'limit' }))).duplicate);
  t.like((await broker.submit(req({ clientOrderId: 'zero', qty: 0 }))).order, { status: 'rejected', reason: 'qty must be a positive number, got 0' });
  t.deepEqual(await broker.onBar(bar(0, 100)), []);
  await t.throwsAsync(broker.submit(req({ clientOrderId: '' })), { message: 'order.clientOrderId must be a non-empty string' });
  await t.throwsAsync(broker.onBar(bar(1, 100, { low: 200 })), { message: /has low 200 above high 102/ });
});

test('allowShort is off by default and must be a boolean', (t) => {
  t.false(DEFAULT_PAPER_BROKER_OPTIONS.allowShort);
  const db = openDatabase(':memory:');
  t.teardown(() => db.close());
  t.throws(() => new PaperBroker(db, { allowShort: 'yes' as unknown as boolean }), { message: 'options.allowShort must be a boolean' });
});

test('bad options fail at construction with the option named', (t) => {
  const { db } = setup(t);
  t.throws(() => new PaperBroker(db, { slippageBps: -1 }), { message: 'options.slippageBps must be a non-negative number' });
  t.throws(() => new PaperBroker(db, { initialCash: 0 }), { message: 'options.initialCash must be a positive number' });
  t.throws(() => new PaperBroker(db, { id: '' }), { message: 'options.id must be a non-empty string of at most 128 characters' });
});

test('close is idempotent and a closed broker refuses work', async (t) => {
  const { broker } = setup(t);
  await Promise.all([broker.close(), broker.close()]);
  await broker.close();
  const err = await t.throwsAsync(broker.submit(req()), { message: 'paper broker paper is closed' });
  t.is((err as { code?: string }).code, 'INTERNAL');
});

test('two paper brokers with different ids share one database without seeing each other', async (t) => {
  const { db, broker } = setup(t, { slippageBps: 0, commissionBps: 0 });
  const other = new PaperBroker(db, { id: 'paper-slow', slippageBps: 100, commissionBps: 0 });
  await broker.submit(req());
  await other.submit(req());
  const [fast] = await broker.onBar(bar(0, 100));
  const [slow] = await other.onBar(bar(0, 100));
  t.is(fast!.fill!.price, 100);
  t.true(close(slow!.fill!.price, 101));
  t.is(slow!.order.brokerId, 'paper-slow');
  t.is((await broker.account('acc')).cash, 99_000);
});

test('the registry finds registered brokers and refuses unknown ids with BROKER_NOT_FOUND', (t) => {
  const { broker } = setup(t);
  const registry = new BrokerRegistry().register(broker);
  t.is(registry.get('paper'), broker);
  t.true(registry.has('paper'));
  t.false(registry.has('ibkr'));
  t.deepEqual(registry.ids(), ['paper']);
  t.deepEqual(registry.list(), [broker]);
  const err = t.throws(() => registry.get('ibkr'));
  t.is((err as { code?: string }).code, 'BROKER_NOT_FOUND');
  t.is(err?.message, 'broker ibkr is not registered');
  t.throws(() => registry.register(broker), { message: 'broker paper is already registered' });
  t.notThrows(() => registry.register(broker, { replace: true }));
  t.true(registry.unregister('paper'));
  t.false(registry.has('paper'));
});

test('bars without an order to fill write nothing; the marks are written at close', async (t) => {
  const { db, broker } = setup(t);
  const marks = () => (db.prepare('SELECT COUNT(*) AS n FROM paper_marks').get() as { n: number }).n;
  const before = db.prepare('SELECT total_changes() AS n').pluck().get() as number;
  for (let i = 0; i < 20; i++) await broker.onBar(bar(i, 100 + i), 's1');
  t.is(db.prepare('SELECT total_changes() AS n').pluck().get() as number, before, 'no row changed by 20 bars');
  t.is(marks(), 0);
  await broker.close();
  t.deepEqual(db.prepare('SELECT scope, symbol, bar_time, price FROM paper_marks').all(), [{ scope: 's1', symbol: 'AAPL', bar_time: DAY + 19 * MIN, price: 120 }]);
});

test('a crash with open orders and a position: a new PaperBroker has the same book and fills the next bars as the first would have', async (t) => {
  // The same trading on two databases; one broker is abandoned without close (a crash) and replaced.
  const scenario = async (broker: PaperBroker) => {
    await broker.onBar(bar(0, 100), 's1');
    await broker.submit(req({ clientOrderId: 'a', qty: 10 }));
    await broker.onBar(bar(1, 100), 's1'); // a fills
    await broker.submit(req({ clientOrderId: 'open-limit', type: 'limit', limitPrice: 95 }));
    await broker.submit(req({ clientOrderId: 'pending-sell', side: 'sell', qty: 4 }));
    await broker.submit(req({ clientOrderId: 'other-session', sessionId: 's2', qty: 1 }));
  };
  const book = async (b: PaperBroker) => ({
    orders: await Promise.all(['a', 'open-limit', 'pending-sell', 'other-session'].map((id) => b.getOrder(id))),
    positions: (await b.positions('acc')).map((p) => ({ symbol: p.symbol, qty: p.qty, avgPrice: p.avgPrice, realizedPnl: p.realizedPnl })),
    cash: (await b.account('acc')).cash,
  });
  const control = setup(t);
  await scenario(control.broker);
  const crashed = setup(t);
  await scenario(crashed.broker);
  // No close: nothing is flushed. A second connection, as a restarted daemon opens.
  const db2 = openDatabase(crashed.file);
  t.teardown(() => db2.close());
  const restarted = new PaperBroker(db2, { now: () => new Date(DAY) });
  t.deepEqual(await book(restarted), await book(control.broker));
  // The bar the open orders were decided on fills none of them after the restart either; later bars do.
  t.deepEqual(await restarted.onBar(bar(1, 100), 's1'), await control.broker.onBar(bar(1, 100), 's1'));
  const next = bar(2, 96, { low: 94, high: 97 });
  const [a, b] = [await restarted.onBar(next, 's1'), await control.broker.onBar(next, 's1')];
  t.deepEqual(
    a.map((e) => [e.order.clientOrderId, e.order.status, e.fill?.price]),
    b.map((e) => [e.order.clientOrderId, e.order.status, e.fill?.price]),
  );
  t.deepEqual(a.map((e) => e.order.clientOrderId), ['open-limit', 'pending-sell']);
  t.deepEqual(await restarted.onBar(bar(2, 96), 's2'), await control.broker.onBar(bar(2, 96), 's2'));
  t.deepEqual(await book(restarted), await book(control.broker));
  t.like((await restarted.positions('acc'))[0], { qty: 17 });
});

test('accounts and positions are read through memory, and a transaction that rolls back leaves memory as the file', async (t) => {
  const { db, broker } = setup(t, { commissionBps: 0 });
  await broker.onBar(bar(0, 99));
  // The first order of an account opens it (a row) and then fails to be written: both roll back.
  db.exec("CREATE TEMP TRIGGER boom BEFORE INSERT ON paper_orders BEGIN SELECT RAISE(ABORT, 'injected'); END");
  await t.throwsAsync(broker.submit(req()), { any: true, code: 'SQLITE_CONSTRAINT_TRIGGER' });
  t.is((db.prepare('SELECT COUNT(*) AS n FROM paper_accounts').get() as { n: number }).n, 0);
  db.exec('DROP TRIGGER boom');
  // Memory did not keep the account that was rolled back: it is opened again, and the fill moves its cash.
  t.like(await broker.submit(req()), { duplicate: false, order: { status: 'accepted' } });
  const [exec] = await broker.onBar(bar(1, 100));
  t.like(exec!.order, { status: 'filled' });
  const row = db.prepare("SELECT cash FROM paper_accounts WHERE account_id = 'acc'").get() as { cash: number };
  t.true(close(row.cash, 100_000 - 10 * 100 * 1.0005));
  t.true(close((await broker.account('acc')).cash, row.cash), 'the cash read through memory is the one in the file');
  // A sell is checked against the position as written by the fill (no read of the file needed, same answer).
  t.like(await broker.submit(req({ clientOrderId: 's1:AAPL:2:exit', side: 'sell', qty: 11 })), { order: { status: 'rejected' } });
  t.like(await broker.submit(req({ clientOrderId: 's1:AAPL:3:exit', side: 'sell', qty: 10 })), { order: { status: 'accepted' } });
  // A new broker on the file (a restart after a clean close, which writes the marks) reads the same account and position.
  const account = await broker.account('acc');
  const positions = await broker.positions('acc');
  await broker.close();
  const again = new PaperBroker(db, { now: () => new Date(DAY), commissionBps: 0 });
  t.deepEqual(await again.account('acc'), account);
  t.deepEqual(await again.positions('acc'), positions);
});
