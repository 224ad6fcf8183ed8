import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createBacktestHandler } from '../../src/commands/backtest-command.js';
import type { StoredOrder } from '../../src/persistence/order-repository.js';
import type { TradingRig } from './trading.js';
import { ROOT } from './daemon.js';

export const VENUE_BUYER = join(ROOT, 'test/fixtures/strategies/venue-buyer.ts');

/** Replay bars around `price` for one symbol, in the replay CSV format. */
export function writeBars(file: string, symbol: string, price: number, n = 30): string {
  const rows = Array.from({ length: n }, (_, i) => {
    const p = price * (1 + 0.01 * Math.sin(i / 3));
    return `${Date.UTC(2024, 0, 2) + i * 60_000},${symbol},${p},${p * 1.001},${p * 0.999},${p},1`;
  });
  writeFileSync(file, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
  return file;
}

/**
 * What a live start requires (open thresholds): a backtest the daemon ran (here, in the rig's pool, on
 * bars in its data directory) and a paper session of the strategy.
 */
export async function passPrerequisites(rig: TradingRig, strategyId: string, params: Record<string, unknown>, symbol: string, price = 100): Promise<void> {
  const { manager, services } = rig;
  const data = writeBars(join(dirname(rig.file), `bars-${strategyId}.csv`), symbol, price);
  await createBacktestHandler({ manager, catalog: services.catalog, pool: services.pool, files: services.barFiles })({ strategyId, data, params }, { commandId: `bt-${Math.random().toString(36).slice(2, 8)}` });
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

/**
 * Writes `config.json` in `dir` for a daemon whose live broker `bn` is the Binance emulator at `ccxtUrls`
 * (credentials from env BN_KEY / BN_SECRET): HTTP on a free port, the venue-buyer strategy, open prerequisite
 * thresholds, no periodic reconciliation, a long client timeout (the emulator may hold an answer). `extra`
 * keys are added at the top level. Returns the file's path.
 */
export function writeVenueDaemonConfig(dir: string, ccxtUrls: unknown, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      http: { enabled: true, host: '127.0.0.1', port: 0 },
      strategies: { modules: [VENUE_BUYER] },
      marketData: { dirs: [dir], maxFileBytes: 1_000_000 },
      prerequisites: { backtest: { minReturnPct: -100, maxDrawdownPct: 100, minSharpe: -100, minTrades: 0 }, paper: { minRunSeconds: 0, minReturnPct: -100, maxDrawdownPct: 100 } },
      brokers: { bn: { type: 'ccxt', exchange: 'binance', apiKeyEnv: 'BN_KEY', secretEnv: 'BN_SECRET', urls: ccxtUrls, timeoutMs: 60_000 } },
      reconcile: { intervalMs: 0, unknownTimeoutMs: 60_000 },
      ...extra,
    }),
  );
  return file;
}
