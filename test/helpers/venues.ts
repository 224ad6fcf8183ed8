import { join } from 'node:path';
import type { SessionManager } from '../../src/sessions/session-manager.js';
import type { StoredOrder } from '../../src/persistence/order-repository.js';
import type { TradingRig } from './trading.js';
import { ROOT } from './daemon.js';

export const VENUE_BUYER = join(ROOT, 'test/fixtures/strategies/venue-buyer.ts');

/** A passing backtest and a paper session of the strategy: what a live start requires (open thresholds). */
export async function passPrerequisites(manager: SessionManager, strategyId: string, params: Record<string, unknown>, symbol: string): Promise<void> {
  await manager.recordBacktest({ strategyId, params, metrics: { returnPct: 1, maxDrawdownPct: 1, sharpe: 1, trades: 1 } });
  const id = `paper-${strategyId}-${Math.random().toString(36).slice(2, 8)}`;
  await manager.startSession({ id, kind: 'paper', strategy: { id: strategyId, params }, symbols: [symbol], feed: { type: 'synthetic', seed: 1, intervalMs: 20, startPrice: 100 } });
  await new Promise((r) => setTimeout(r, 100));
  await manager.stopSession(id);
}

export function ordersOf(rig: TradingRig, sessionId: string): StoredOrder[] {
  return rig.services.orders.listBySession(sessionId);
}

/** The reasons a session was paused with, oldest first (transition history). */
export function pauseReasons(rig: TradingRig, sessionId: string): string[] {
  return rig.manager
    .history(sessionId)
    .filter((h) => h.to === 'paused')
    .map((h) => h.reason ?? '');
}
