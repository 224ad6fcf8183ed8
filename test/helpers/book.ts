import BetterSqlite3 from 'better-sqlite3';
import { applyFills } from '../../src/domain/pnl.js';
import type { Fill } from '../../src/domain/order.js';

interface FillRow {
  id: string;
  client_order_id: string;
  session_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  qty: number;
  price: number;
  commission: number;
  at: string;
}

/**
 * Whether a SQLite file is whole and each session's book adds up: `PRAGMA integrity_check` is ok, every
 * order is at the paper broker once, no order is filled twice, the book's fills are the broker's, and the
 * positions are what the fills add up to. Returns the problems found (none: []).
 */
export function bookProblems(file: string): string[] {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  const problems: string[] = [];
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') problems.push(`integrity_check: ${String(integrity)}`);
    const sessions = (db.prepare('SELECT id FROM sessions').all() as { id: string }[]).map((r) => r.id);
    for (const id of sessions) {
      const orders = (db.prepare('SELECT client_order_id, status FROM orders WHERE session_id = ?').all(id) as { client_order_id: string; status: string }[]);
      const atBroker = (db.prepare('SELECT client_order_id FROM paper_orders WHERE session_id = ?').all(id) as { client_order_id: string }[]).map((o) => o.client_order_id);
      const fills = db.prepare('SELECT * FROM fills WHERE session_id = ? ORDER BY at, rowid').all(id) as FillRow[];
      const brokerFills = (db.prepare('SELECT id FROM paper_fills WHERE session_id = ?').all(id) as { id: string }[]).map((f) => f.id);
      const positions = db.prepare('SELECT symbol, qty FROM positions WHERE session_id = ? ORDER BY symbol').all(id) as { symbol: string; qty: number }[];
      const sent = orders.filter((o) => o.status !== 'new' && o.status !== 'pending_approval' && !(o.status === 'rejected' && !atBroker.includes(o.client_order_id)));
      if (new Set(atBroker).size !== atBroker.length) problems.push(`${id}: an order reached the broker twice`);
      for (const o of sent) if (!atBroker.includes(o.client_order_id)) problems.push(`${id}: order ${o.client_order_id} (${o.status}) is not at the broker`);
      for (const o of orders) if (fills.filter((f) => f.client_order_id === o.client_order_id).length > 1) problems.push(`${id}: order ${o.client_order_id} filled twice`);
      if ([...brokerFills].sort().join() !== fills.map((f) => f.id).sort().join()) problems.push(`${id}: the book's fills are not the broker's`);
      const expected = applyFills(
        fills.map((f): Fill => ({ id: f.id, clientOrderId: f.client_order_id, sessionId: f.session_id, symbol: f.symbol, side: f.side, qty: f.qty, price: f.price, commission: f.commission, at: f.at })),
      ).map((p) => `${p.symbol}:${p.qty}`);
      const actual = positions.map((p) => `${p.symbol}:${p.qty}`);
      if (expected.join() !== actual.join()) problems.push(`${id}: positions ${actual.join()} but fills add up to ${expected.join()}`);
    }
  } finally {
    db.close();
  }
  return problems;
}
