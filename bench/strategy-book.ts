/**
 * What building a session's book costs the main thread per step (src/runners/session-book.ts): the open
 * orders read from SQLite (a prepared statement, rows validated) plus buildBook over the positions.
 * Target: under 100 us per step with a few open orders, so 1,000 sessions stepping every second spend
 * under 10% of the main thread on their books.
 *
 *   node --import=tsx bench/strategy-book.ts
 */
import { buildBook } from '../src/domain/book.js';
import { applyFills } from '../src/domain/pnl.js';
import { openDatabase } from '../src/persistence/database.js';
import { SqliteOrderRepository } from '../src/persistence/sqlite-order-repository.js';

const N = 50_000;
const TARGET_US = 100;
const db = openDatabase(':memory:');
db.pragma('foreign_keys = OFF'); // orders without session rows: only the read path is measured
const orders = new SqliteOrderRepository(db);
const positions = applyFills([
  { symbol: 'AAA', side: 'buy', qty: 5, price: 100 },
  { symbol: 'BBB', side: 'buy', qty: 2, price: 50 },
]);
let failed = false;
for (const open of [0, 1, 3]) {
  const id = `s${open}`;
  for (let i = 0; i < open; i++) {
    orders.save({ clientOrderId: `${id}:${i}`, sessionId: id, brokerId: 'paper', accountId: 'default', symbol: 'AAA', side: 'buy', qty: 1, type: 'market', status: 'accepted', filledQty: 0, createdAt: 't', updatedAt: 't' });
  }
  for (let i = 0; i < 1000; i++) buildBook({ initialEquity: 1e5, positions, lastPrices: { AAA: 101, BBB: 51 }, openOrders: orders.listOpen(id) });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) buildBook({ initialEquity: 1e5, positions, lastPrices: { AAA: 101, BBB: 51 }, openOrders: orders.listOpen(id) });
  const us = ((performance.now() - t0) / N) * 1000;
  const ok = us < TARGET_US;
  if (!ok) failed = true;
  console.log(`book per step, 2 positions, ${open} open order(s): ${us.toFixed(1)} us (target < ${TARGET_US} us) ${ok ? 'ok' : 'MISSED'}`);
}
db.close();
process.exitCode = failed ? 1 : 0;
