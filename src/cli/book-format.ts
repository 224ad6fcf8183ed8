import type { LiveEvent } from '../sessions/live-events.js';
import { money, pct, qty, table } from './format.js';

type Row = Record<string, unknown>;

const none = (rows: unknown[]): string | undefined => (rows.length === 0 ? '(none)' : undefined);

export function renderOrders(result: unknown): string {
  const r = result as { total: number; offset: number; orders: Row[] };
  const rows = r.orders.map((o) => ({
    id: o.clientOrderId,
    symbol: o.symbol,
    side: o.side,
    qty: qty(o.qty),
    type: o.type,
    limit: qty(o.limitPrice),
    status: o.status,
    filled: qty(o.filledQty),
    avgFill: qty(o.avgFillPrice),
    reason: o.reason,
    expires: o.status === 'pending_approval' ? o.expiresAt : undefined,
    updatedAt: o.updatedAt,
  }));
  const cols = ['id', 'symbol', 'side', 'qty', 'type', 'limit', 'status', 'filled', 'avgFill', 'reason', 'expires', 'updatedAt'];
  const shown = r.orders.length === 0 ? '(none)' : table(rows, cols);
  const from = r.orders.length === 0 ? 0 : r.offset + 1;
  return `${shown}\n${from}-${r.offset + r.orders.length} of ${r.total} (newest first; --offset/--limit for more)`;
}

export function renderFills(result: unknown): string {
  const fills = (result as { fills: Row[] }).fills;
  return (
    none(fills) ??
    table(
      fills.map((f) => ({ at: f.at, order: f.clientOrderId, symbol: f.symbol, side: f.side, qty: qty(f.qty), price: qty(f.price), commission: money(f.commission) })),
      ['at', 'order', 'symbol', 'side', 'qty', 'price', 'commission'],
    )
  );
}

export function renderPositions(result: unknown): string {
  const positions = (result as { positions: Row[] }).positions;
  return (
    none(positions) ??
    table(
      positions.map((p) => ({
        symbol: p.symbol,
        qty: qty(p.qty),
        avgPrice: qty(p.avgPrice),
        lastPrice: qty(p.lastPrice),
        realized: money(p.realizedPnl),
        unrealized: money(p.unrealizedPnl),
      })),
      ['symbol', 'qty', 'avgPrice', 'lastPrice', 'realized', 'unrealized'],
    )
  );
}

export function renderPnl(result: unknown): string {
  const r = result as { sessions: Row[]; totals: Row };
  const row = (s: Row) => ({
    session: s.sessionId,
    status: s.status,
    realized: money(s.realizedPnl),
    unrealized: money(s.unrealizedPnl),
    equity: money(s.equity),
    cash: money(s.cash),
    drawdown: pct(s.drawdownPct),
    maxDrawdown: pct(s.maxDrawdownPct),
    fills: s.fills,
  });
  const t = r.totals;
  const rows = [
    ...r.sessions.map(row),
    { session: `TOTAL (${String(t.sessions)})`, status: '', realized: money(t.realizedPnl), unrealized: money(t.unrealizedPnl), equity: money(t.equity), cash: money(t.cash), drawdown: '', maxDrawdown: '', fills: '' },
  ];
  return table(rows, ['session', 'status', 'realized', 'unrealized', 'equity', 'cash', 'drawdown', 'maxDrawdown', 'fills']);
}

export function renderHistory(result: unknown): string {
  const history = (result as { history: Row[] }).history;
  return (
    none(history) ??
    table(
      history.map((h) => ({ at: h.at, transition: `${String(h.from ?? '-')} -> ${String(h.to)}`, event: h.event, source: h.source, commandId: h.commandId, reason: h.reason })),
      ['at', 'transition', 'event', 'source', 'commandId', 'reason'],
    )
  );
}

/** One line per live event: `sessionctl watch`. */
export function renderLiveEvent(e: LiveEvent): string {
  if (e.type === 'transition') {
    const t = e.transition;
    return [t.at, e.session.id, 'transition', `${t.from ?? '-'} -> ${t.to}`, t.event, t.source, t.reason ?? ''].join('  ').trimEnd();
  }
  const o = e.order;
  const detail = o
    ? `${o.side} ${qty(o.qty)} ${o.symbol} ${o.type}${o.limitPrice !== undefined ? ` @ ${qty(o.limitPrice)}` : ''} filled ${qty(o.filledQty)}${o.avgFillPrice !== undefined ? ` @ ${qty(o.avgFillPrice)}` : ''}${o.reason ? ` (${o.reason})` : ''}`
    : '';
  return [e.at, e.sessionId, 'order', e.clientOrderId, e.status, detail].join('  ').trimEnd();
}
