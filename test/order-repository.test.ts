import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Fill, Position } from '../src/domain/order.js';
import BetterSqlite3 from 'better-sqlite3';
import { migrate, openDatabase, type Db } from '../src/persistence/database.js';
import { MIGRATIONS } from '../src/persistence/migrations/index.js';
import type { StoredOrder } from '../src/persistence/order-repository.js';
import { SqliteOrderRepository } from '../src/persistence/sqlite-order-repository.js';

const T0 = '2026-01-05T10:00:00.000Z';

function tempDb(t: { teardown(fn: () => void): void }): { db: Db; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiond-orders-'));
  const file = path.join(dir, 'sessiond.db');
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { db, file };
}

// Orders reference their session (foreign key); the session repository is someone else's, so a bare row.
function addSession(db: Db, id: string): void {
  db.prepare(
    `INSERT INTO sessions (id, kind, status, strategy_id, strategy, broker_id, account_id, symbols, execution_mode,
       risk_controls, created_at, updated_at)
     VALUES (?, 'paper', 'running', 's', '{"id":"s"}', 'paper', 'default', '["AAPL"]', 'auto', '{}', ?, ?)`,
  ).run(id, T0, T0);
}

function order(over: Partial<StoredOrder> = {}): StoredOrder {
  return {
    clientOrderId: 's1:AAPL:1:entry',
    sessionId: 's1',
    brokerId: 'paper',
    accountId: 'default',
    symbol: 'AAPL',
    side: 'buy',
    qty: 10,
    type: 'market',
    status: 'new',
    filledQty: 0,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

function fill(over: Partial<Fill> = {}): Fill {
  return {
    id: 'paper:s1:AAPL:1:entry:1',
    clientOrderId: 's1:AAPL:1:entry',
    sessionId: 's1',
    symbol: 'AAPL',
    side: 'buy',
    qty: 10,
    price: 100.05,
    commission: 0.1,
    at: '2026-01-05T10:01:00.000Z',
    ...over,
  };
}

test('an order round-trips and save upserts it, recording each status change', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);

  repo.save(order());
  t.deepEqual(repo.getByClientId('s1:AAPL:1:entry'), order());
  repo.save(order({ status: 'accepted', brokerOrderId: 'paper-1', updatedAt: '2026-01-05T10:00:01.000Z' }));
  repo.save(order({ status: 'accepted', brokerOrderId: 'paper-1', updatedAt: '2026-01-05T10:00:02.000Z' }));
  const filled = order({
    status: 'filled',
    brokerOrderId: 'paper-1',
    filledQty: 10,
    avgFillPrice: 100.05,
    updatedAt: '2026-01-05T10:01:00.000Z',
  });
  repo.save(filled);

  t.deepEqual(repo.getByClientId('s1:AAPL:1:entry'), filled);
  t.is(repo.listBySession('s1').length, 1);
  t.deepEqual(
    repo.history('s1:AAPL:1:entry').map((h) => [h.status, h.at]),
    [
      ['new', T0],
      ['accepted', '2026-01-05T10:00:01.000Z'],
      ['filled', '2026-01-05T10:01:00.000Z'],
    ],
  );
  t.is(repo.getByClientId('nope'), undefined);
});

test('a limit order keeps its limit price and a risk refusal keeps its reason', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order({ clientOrderId: 'l', type: 'limit', limitPrice: 99.5 }));
  repo.save(order({ clientOrderId: 'r', status: 'rejected', reason: 'RISK_LIMIT: maxOrderQty 10 exceeded by qty 25', qty: 25 }));
  t.like(repo.getByClientId('l'), { type: 'limit', limitPrice: 99.5 });
  t.like(repo.getByClientId('r'), { status: 'rejected', reason: 'RISK_LIMIT: maxOrderQty 10 exceeded by qty 25' });
  t.deepEqual(repo.history('r'), [{ clientOrderId: 'r', status: 'rejected', reason: 'RISK_LIMIT: maxOrderQty 10 exceeded by qty 25', at: T0 }]);
});

test('listBySession filters by status and symbol, and countOpen counts only open orders', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  addSession(db, 's2');
  const repo = new SqliteOrderRepository(db);
  const statuses = ['new', 'accepted', 'partially_filled', 'pending_approval', 'filled', 'cancelled', 'rejected', 'expired'] as const;
  statuses.forEach((status, i) =>
    repo.save(order({ clientOrderId: `o${i}`, status, symbol: i % 2 ? 'MSFT' : 'AAPL', createdAt: `2026-01-05T10:00:0${i}.000Z` })),
  );
  repo.save(order({ clientOrderId: 'other', sessionId: 's2' }));

  t.is(repo.countOpen('s1'), 4);
  t.is(repo.countOpen('s2'), 1);
  t.is(repo.countOpen('s3'), 0);
  t.deepEqual(repo.listBySession('s1').map((o) => o.clientOrderId), ['o0', 'o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7']);
  t.deepEqual(repo.listBySession('s1', { status: 'filled' }).map((o) => o.clientOrderId), ['o4']);
  t.deepEqual(repo.listBySession('s1', { status: ['cancelled', 'new'] }).map((o) => o.clientOrderId), ['o0', 'o5']);
  t.deepEqual(repo.listBySession('s1', { symbol: 'MSFT' }).map((o) => o.clientOrderId), ['o1', 'o3', 'o5', 'o7']);
  t.deepEqual(repo.listBySession('s1', { limit: 2 }).map((o) => o.clientOrderId), ['o6', 'o7']);
  t.deepEqual(repo.listBySession('s1', { status: [] }), []);
});

test('addFill is idempotent by fill id and listFills returns them in time order', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order());
  t.true(repo.addFill(fill({ id: 'f2', at: '2026-01-05T10:02:00.000Z', qty: 4 })));
  t.true(repo.addFill(fill({ id: 'f1', qty: 6 })));
  t.false(repo.addFill(fill({ id: 'f1', qty: 6 })));
  t.deepEqual(repo.listFills('s1'), [fill({ id: 'f1', qty: 6 }), fill({ id: 'f2', at: '2026-01-05T10:02:00.000Z', qty: 4 })]);
  t.deepEqual(repo.listFills('s2'), []);
});

// Two positions of session s1 that the position tests write and rewrite.
const msft: Position = { symbol: 'MSFT', qty: -5, avgPrice: 90, realizedPnl: 150, unrealizedPnl: 0, lastPrice: 90 };
const aapl: Position = { symbol: 'AAPL', qty: 10, avgPrice: 100.05, realizedPnl: -0.1, unrealizedPnl: 9.5, lastPrice: 101 };

/** Rows changed on the connection so far (SQLite's total_changes()). */
const totalChanges = (db: Db): number => db.prepare('SELECT total_changes()').pluck().get() as number;

test('savePositions replaces the session positions, which positions returns by symbol', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.savePositions('s1', [msft, aapl]);
  t.deepEqual(repo.positions('s1'), [aapl, msft]);
  repo.savePositions('s1', [{ ...aapl, qty: 0, avgPrice: 0, unrealizedPnl: 0, realizedPnl: 12 }]);
  t.deepEqual(repo.positions('s1'), [{ ...aapl, qty: 0, avgPrice: 0, unrealizedPnl: 0, realizedPnl: 12 }]);
  t.throws(() => repo.savePositions('s1', [aapl, aapl]), { message: 'positions of session s1 list AAPL twice' });
  t.is(repo.positions('s1').length, 1);
});

test('updatePositions writes the given positions in place and leaves the others; a moved one is one row change', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.savePositions('s1', [msft, aapl]);
  const before = totalChanges(db);
  const moved = { ...aapl, lastPrice: 102, unrealizedPnl: 19.5 };
  repo.updatePositions('s1', [moved]);
  t.is(totalChanges(db) - before, 1);
  t.deepEqual(repo.positions('s1'), [moved, msft], 'MSFT is left as it was');
  repo.updatePositions('s1', [moved]);
  t.is(totalChanges(db) - before, 1, 'an unchanged position is no row change');
  t.throws(() => repo.updatePositions('s1', [aapl, aapl]), { message: 'positions of session s1 list AAPL twice' });
  t.throws(() => repo.updatePositions('s1', [{ ...aapl, qty: Number.NaN }]), { code: 'VALIDATION_ERROR' });
  t.deepEqual(repo.positions('s1'), [moved, msft]);
});

test('savePositions updates positions in place: an unchanged one is no row change, a moved one is one', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  const changes = () => totalChanges(db);
  const rowids = () => db.prepare("SELECT symbol, rowid AS id FROM positions WHERE session_id = 's1' ORDER BY symbol").all();
  repo.savePositions('s1', [msft, aapl]);
  const ids = rowids();
  let c0 = changes();
  repo.savePositions('s1', [msft, aapl]);
  t.is(changes() - c0, 0, 'nothing moved: no row written');
  c0 = changes();
  repo.savePositions('s1', [msft, { ...aapl, lastPrice: 102, unrealizedPnl: 19.5 }]);
  t.is(changes() - c0, 1, 'one position moved: one row changed');
  t.deepEqual(rowids(), ids, 'updated in place, not deleted and inserted again');
  t.deepEqual(repo.positions('s1'), [{ ...aapl, lastPrice: 102, unrealizedPnl: 19.5 }, msft]);
});

test('transaction writes order, fill and positions together or not at all', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order({ status: 'accepted' }));
  const position: Position = { symbol: 'AAPL', qty: 10, avgPrice: 100.05, realizedPnl: -0.1, unrealizedPnl: 0, lastPrice: 100.05 };

  t.throws(
    () =>
      repo.transaction(() => {
        repo.save(order({ status: 'filled', filledQty: 10, avgFillPrice: 100.05 }));
        repo.addFill(fill());
        repo.savePositions('s1', [position]);
        throw new Error('crash before commit');
      }),
    { message: 'crash before commit' },
  );
  t.like(repo.getByClientId('s1:AAPL:1:entry'), { status: 'accepted' });
  t.deepEqual(repo.listFills('s1'), []);
  t.deepEqual(repo.positions('s1'), []);
  t.deepEqual(repo.history('s1:AAPL:1:entry').map((h) => h.status), ['accepted']);

  repo.transaction(() => {
    repo.save(order({ status: 'filled', filledQty: 10, avgFillPrice: 100.05 }));
    repo.addFill(fill());
    repo.savePositions('s1', [position]);
  });
  t.like(repo.getByClientId('s1:AAPL:1:entry'), { status: 'filled' });
  t.is(repo.listFills('s1').length, 1);
  t.deepEqual(repo.positions('s1'), [position]);
});

test('expirePendingApprovals expires only pending orders whose time has come', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order({ clientOrderId: 'due', status: 'pending_approval', expiresAt: '2026-01-05T10:05:00Z' }));
  repo.save(order({ clientOrderId: 'later', status: 'pending_approval', expiresAt: '2026-01-05T10:15:00.000Z' }));
  repo.save(order({ clientOrderId: 'forever', status: 'pending_approval' }));
  repo.save(order({ clientOrderId: 'done', status: 'filled', expiresAt: '2026-01-05T10:01:00.000Z' }));

  t.deepEqual(repo.expirePendingApprovals('2026-01-05T10:04:59.999Z'), []);
  const expired = repo.expirePendingApprovals(new Date('2026-01-05T10:10:00.000Z'));
  t.deepEqual(expired, [
    order({
      clientOrderId: 'due',
      status: 'expired',
      expiresAt: '2026-01-05T10:05:00.000Z',
      reason: 'approval expired at 2026-01-05T10:05:00.000Z',
      updatedAt: '2026-01-05T10:10:00.000Z',
    }),
  ]);
  t.deepEqual(repo.history('due').map((h) => h.status), ['pending_approval', 'expired']);
  t.deepEqual(repo.listBySession('s1', { status: 'pending_approval' }).map((o) => o.clientOrderId), ['later', 'forever']);
  t.is(repo.countOpen('s1'), 2);
  t.deepEqual(repo.expirePendingApprovals('2026-01-05T10:10:00.000Z'), []);
});

test('bad writes are validation errors naming the field, and corrupt rows are internal errors', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  t.throws(() => repo.save(order({ qty: -1 })), { message: /^order s1:AAPL:1:entry is invalid: qty / });
  t.throws(() => repo.save(order({ type: 'limit' })), { message: 'order s1:AAPL:1:entry is invalid: limitPrice is required for a limit order' });
  t.throws(() => repo.save(order({ status: 'pending_approval', expiresAt: 'soon' })), {
    message: 'order.expiresAt must be an ISO-8601 timestamp, got soon',
  });
  const err = t.throws(() => repo.addFill(fill({ price: Number.NaN })));
  t.is((err as { code?: string }).code, 'VALIDATION_ERROR');

  repo.save(order());
  // Only a hand-edited file gets past the CHECK constraints; the mapper must still refuse the row.
  db.pragma('ignore_check_constraints = ON');
  db.prepare("UPDATE orders SET side = 'hold' WHERE client_order_id = ?").run('s1:AAPL:1:entry');
  const corrupt = t.throws(() => repo.getByClientId('s1:AAPL:1:entry'));
  t.is((corrupt as { code?: string }).code, 'INTERNAL');
  t.regex(corrupt?.message ?? '', /^order row s1:AAPL:1:entry is invalid: side /);
});

test('orders, fills and positions survive closing and reopening the database file', (t) => {
  const { db, file } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order({ status: 'filled', filledQty: 10, avgFillPrice: 100.05 }));
  repo.addFill(fill());
  const position: Position = { symbol: 'AAPL', qty: 10, avgPrice: 100.05, realizedPnl: -0.1, unrealizedPnl: 0, lastPrice: 100.05 };
  repo.savePositions('s1', [position]);
  db.close();

  const db2 = openDatabase(file);
  t.teardown(() => db2.close());
  const repo2 = new SqliteOrderRepository(db2);
  t.like(repo2.getByClientId('s1:AAPL:1:entry'), { status: 'filled', filledQty: 10 });
  t.deepEqual(repo2.listFills('s1'), [fill()]);
  t.deepEqual(repo2.positions('s1'), [position]);
});

test('deleting a session removes its orders, fills and positions', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order());
  repo.addFill(fill());
  repo.savePositions('s1', [{ symbol: 'AAPL', qty: 1, avgPrice: 1, realizedPnl: 0, unrealizedPnl: 0, lastPrice: 1 }]);
  db.prepare('DELETE FROM sessions WHERE id = ?').run('s1');
  t.deepEqual(repo.listBySession('s1'), []);
  t.deepEqual(repo.listFills('s1'), []);
  t.deepEqual(repo.positions('s1'), []);
});

test('open orders read through memory follow every committed write, never a rolled-back one', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  const ids = (xs: StoredOrder[]) => xs.map((o) => `${o.clientOrderId}=${o.status}`);
  repo.save(order({ status: 'accepted' }));
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:1:entry=accepted']);
  // A caller changing what it got changes nothing for the next one.
  repo.listOpen('s1')[0]!.status = 'filled';
  t.deepEqual(ids(repo.listBySession('s1', { status: ['accepted', 'unknown'] })), ['s1:AAPL:1:entry=accepted']);

  // Filled, read inside the transaction, then rolled back: the order is open again.
  t.throws(() =>
    repo.transaction(() => {
      repo.save(order({ status: 'filled', filledQty: 10, updatedAt: '2026-01-05T10:01:00.000Z' }));
      t.deepEqual(ids(repo.listOpen('s1')), []);
      throw new Error('rolled back');
    }),
  );
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:1:entry=accepted']);

  // A committed second order, and a committed fill of the first.
  repo.transaction(() => {
    repo.save(order({ clientOrderId: 's1:AAPL:2:entry', status: 'new', createdAt: '2026-01-05T10:02:00.000Z' }));
    t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:1:entry=accepted', 's1:AAPL:2:entry=new']);
  });
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:1:entry=accepted', 's1:AAPL:2:entry=new']);
  repo.save(order({ status: 'filled', filledQty: 10, updatedAt: '2026-01-05T10:03:00.000Z' }));
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:2:entry=new']);
  t.deepEqual(ids(repo.listBySession('s1', { status: 'new' })), ['s1:AAPL:2:entry=new']);
  t.deepEqual(ids(repo.listBySession('s1', { status: ['accepted', 'partially_filled', 'unknown'] })), []);

  // An expired approval leaves the open list too.
  repo.save(order({ clientOrderId: 's1:AAPL:3:entry', status: 'pending_approval', expiresAt: '2026-01-05T10:05:00.000Z', createdAt: '2026-01-05T10:04:00.000Z' }));
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:2:entry=new', 's1:AAPL:3:entry=pending_approval']);
  t.is(repo.expirePendingApprovals('2026-01-05T10:06:00.000Z').length, 1);
  t.deepEqual(ids(repo.listOpen('s1')), ['s1:AAPL:2:entry=new']);
});

test('prefetchBooks answers each session\'s next listFills and positions as one read would, once, and a write drops its answer', (t) => {
  const { db } = tempDb(t);
  for (const id of ['s1', 's2', 's3']) addSession(db, id);
  const repo = new SqliteOrderRepository(db);
  const pos = (symbol: string, qty: number): Position => ({ symbol, qty, avgPrice: 100, realizedPnl: 0, unrealizedPnl: 0, lastPrice: 100 });
  for (const s of ['s1', 's2']) {
    repo.save(order({ sessionId: s, clientOrderId: `${s}:o` }));
    repo.addFill(fill({ sessionId: s, clientOrderId: `${s}:o`, id: `${s}:f2`, at: '2026-01-05T10:02:00.000Z' }));
    repo.addFill(fill({ sessionId: s, clientOrderId: `${s}:o`, id: `${s}:f1` }));
    repo.savePositions(s, [pos('MSFT', 1), pos('AAPL', 2)]);
  }
  const expected = (s: string) => ({ fills: repo.listFills(s), positions: repo.positions(s) });
  const before = { s1: expected('s1'), s2: expected('s2'), s3: expected('s3') };
  t.deepEqual(before.s1.fills.map((f) => f.id), ['s1:f1', 's1:f2']);
  repo.prefetchBooks(['s1', 's2', 's3']);
  // Writes after the read-ahead: s2's fills and positions.
  repo.addFill(fill({ sessionId: 's2', clientOrderId: 's2:o', id: 's2:f3', at: '2026-01-05T10:03:00.000Z' }));
  repo.savePositions('s2', [pos('AAPL', 3)]);
  t.deepEqual({ fills: repo.listFills('s1'), positions: repo.positions('s1') }, before.s1);
  t.deepEqual({ fills: repo.listFills('s3'), positions: repo.positions('s3') }, { fills: [], positions: [] });
  t.deepEqual(repo.listFills('s2').map((f) => f.id), ['s2:f1', 's2:f2', 's2:f3']);
  t.deepEqual(repo.positions('s2'), [pos('AAPL', 3)]);
  // Answered once: the next read is SQLite's.
  db.prepare("DELETE FROM fills WHERE session_id = 's1'").run();
  t.deepEqual(repo.listFills('s1'), []);
  repo.prefetchBooks([]);
  t.is(repo.positions('s1').length, 2);
});

test('prefetchBooks holds at most prefetchFillRows fills: sessions past the budget are read alone, with the same answer', (t) => {
  const { db } = tempDb(t);
  const repo = new SqliteOrderRepository(db, { prefetchFillRows: 3 });
  for (const [s, n] of [['a', 2], ['b', 2], ['c', 1]] as const) {
    addSession(db, s);
    repo.save(order({ sessionId: s, clientOrderId: `${s}:o` }));
    for (let i = 0; i < n; i++) repo.addFill(fill({ sessionId: s, clientOrderId: `${s}:o`, id: `${s}:f${i}`, at: `2026-01-05T10:0${i}:00.000Z` }));
  }
  const expected = Object.fromEntries(['a', 'b', 'c'].map((s) => [s, repo.listFills(s)]));
  repo.prefetchBooks(['a', 'b', 'c']);
  // a (2) and c (1) fit the budget of 3 and were read ahead; b (2) was not: removing its rows shows it is read now.
  db.prepare("DELETE FROM fills WHERE session_id IN ('a', 'b')").run();
  t.deepEqual(repo.listFills('a'), expected.a);
  t.deepEqual(repo.listFills('c'), expected.c);
  t.deepEqual(repo.listFills('b'), []);
});

test('migration 013 moves each order status history into its row, in order, and a status change is one row change', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiond-orders-013-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sessiond.db');
  // A database as version 12 left it: the history in its own table.
  const old = new BetterSqlite3(file);
  old.pragma('journal_mode = WAL');
  migrate(old, MIGRATIONS.filter((m) => m.version <= 12));
  addSession(old, 's1');
  old
    .prepare(
      `INSERT INTO orders (client_order_id, session_id, broker_id, account_id, symbol, side, qty, type, status, filled_qty, created_at, updated_at)
       VALUES ('o1', 's1', 'paper', 'default', 'AAPL', 'buy', 1, 'market', 'filled', 1, ?, ?), ('o2', 's1', 'paper', 'default', 'AAPL', 'sell', 1, 'market', 'new', 0, ?, ?)`,
    )
    .run(T0, T0, T0, T0);
  const addHistory = old.prepare('INSERT INTO order_status_history (client_order_id, status, reason, at) VALUES (?, ?, ?, ?)');
  addHistory.run('o1', 'new', null, '2026-01-05T10:00:00.000Z');
  addHistory.run('o2', 'new', null, '2026-01-05T10:00:01.000Z');
  addHistory.run('o1', 'accepted', null, '2026-01-05T10:00:02.000Z');
  addHistory.run('o1', 'filled', 'done', '2026-01-05T10:00:03.000Z');
  old.close();

  const db = openDatabase(file);
  t.teardown(() => db.close());
  t.is((db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'order_status_history'").get() as { n: number }).n, 0, 'the old table is gone');
  const repo = new SqliteOrderRepository(db);
  t.deepEqual(repo.history('o1'), [
    { clientOrderId: 'o1', status: 'new', at: '2026-01-05T10:00:00.000Z' },
    { clientOrderId: 'o1', status: 'accepted', at: '2026-01-05T10:00:02.000Z' },
    { clientOrderId: 'o1', status: 'filled', reason: 'done', at: '2026-01-05T10:00:03.000Z' },
  ]);
  t.deepEqual(repo.history('o2').map((h) => h.status), ['new']);
  t.deepEqual(repo.history('unknown'), []);

  // After the migration: a status change changes one row (the order's); saving an unchanged status adds no entry.
  const o2 = repo.getByClientId('o2')!;
  const before = totalChanges(db);
  repo.save({ ...o2, status: 'accepted', updatedAt: '2026-01-05T10:00:04.000Z' });
  t.is(totalChanges(db) - before, 1);
  repo.save({ ...o2, status: 'accepted', updatedAt: '2026-01-05T10:00:05.000Z' });
  t.deepEqual(repo.history('o2').map((h) => [h.status, h.at]), [
    ['new', '2026-01-05T10:00:01.000Z'],
    ['accepted', '2026-01-05T10:00:04.000Z'],
  ]);
});

test('a corrupt status history is an INTERNAL error naming the order, never a silent default', (t) => {
  const { db } = tempDb(t);
  addSession(db, 's1');
  const repo = new SqliteOrderRepository(db);
  repo.save(order({ clientOrderId: 'bad' }));
  db.prepare("UPDATE orders SET status_history = '[{\"status\":\"teleported\",\"reason\":null,\"at\":\"x\"}]' WHERE client_order_id = 'bad'").run();
  t.throws(() => repo.history('bad'), { code: 'INTERNAL', message: /status history of order bad/ });
  db.prepare("UPDATE orders SET status_history = 'not json' WHERE client_order_id = 'bad'").run();
  t.throws(() => repo.history('bad'), { code: 'INTERNAL', message: /status history of order bad is not valid JSON/ });
});
