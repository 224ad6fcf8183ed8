import { dirname } from 'node:path';
import type { Config } from '../../src/daemon/config.js';
import { createTradingServices, type CreateTradingServicesOptions, type TradingServices } from '../../src/daemon/trading.js';
import { openDatabase, type Db } from '../../src/persistence/database.js';
import { SqliteBacktestRepository } from '../../src/persistence/sqlite-backtest-repository.js';
import { SqliteCommandLog, SqliteSessionStore } from '../../src/persistence/sqlite-session-store.js';
import { SessionManager, type PrerequisiteThresholds } from '../../src/sessions/session-manager.js';

/** Runner config for tests: the daemon's defaults, with a short backoff so failures settle quickly. */
export const TEST_RUNNERS: Config['runners'] = {
  enabled: true,
  poolSize: 2,
  stepTimeoutMs: 1000,
  maxRestarts: 2,
  restartBackoffMs: 50,
  approvalTtlMs: 60_000,
  stateCommitMs: 0,
  batchWindowMs: 2,
  maxBatchSize: 64,
  maxCatchUpSteps: 3,
  defaultBarIntervalMs: 1000,
};

export const TEST_PAPER_BROKER: Config['paperBroker'] = { initialCash: 100_000, slippageBps: 5, commissionBps: 1, commissionPerOrder: 0, allowShort: false };

/** Thresholds nothing fails: for tests about trading, not prerequisites. */
export const OPEN_THRESHOLDS: PrerequisiteThresholds = {
  backtest: { minReturnPct: -100, maxDrawdownPct: 100, minSharpe: -100, minTrades: 0 },
  paper: { minRunSeconds: 0, minReturnPct: -100, maxDrawdownPct: 100 },
};

export interface TradingRigOptions {
  /** The SQLite file (reopen the same file for a restart). */
  file: string;
  modules?: string[];
  runners?: Partial<Config['runners']>;
  paperBroker?: Partial<Config['paperBroker']>;
  /** Where replay and backtest files may be read from. @defaultValue the SQLite file's directory, 64 MiB */
  marketData?: Partial<Config['marketData']>;
  thresholds?: PrerequisiteThresholds;
  runnerOptions?: CreateTradingServicesOptions['runnerOptions'];
  /** Recover persisted sessions before returning. @defaultValue true */
  recover?: boolean;
  /** Live venue brokers (config.brokers) and the environment their credentials come from. */
  brokers?: Config['brokers'];
  env?: NodeJS.ProcessEnv;
  reconcile?: Config['reconcile'];
}

export interface TradingRig {
  file: string;
  db: Db;
  store: SqliteSessionStore;
  manager: SessionManager;
  services: TradingServices;
  close(): Promise<void>;
}

/** A SessionManager over a real SQLite file with the daemon's real trading side (pool, paper broker, runners). */
export async function buildTradingRig(o: TradingRigOptions): Promise<TradingRig> {
  const db = openDatabase(o.file);
  const store = new SqliteSessionStore(db);
  const services = await createTradingServices({
    db,
    store,
    config: {
      runners: { ...TEST_RUNNERS, ...o.runners },
      strategies: { modules: o.modules ?? [] },
      paperBroker: { ...TEST_PAPER_BROKER, ...o.paperBroker },
      marketData: { dirs: [dirname(o.file)], maxFileBytes: 64 * 1024 * 1024, ...o.marketData },
      brokers: o.brokers ?? {},
      reconcile: o.reconcile ?? { intervalMs: 0, unknownTimeoutMs: 60_000 },
    },
    env: o.env,
    runnerOptions: o.runnerOptions,
  });
  const manager = new SessionManager({
    store,
    commands: new SqliteCommandLog(store),
    backtests: new SqliteBacktestRepository(db),
    brokers: services.brokers,
    strategies: services.strategies,
    runner: services.runners,
    performance: services.runners,
    thresholds: o.thresholds ?? OPEN_THRESHOLDS,
  });
  services.runners.attach(manager);
  if (o.recover ?? true) {
    await manager.recover();
    // As the daemon does before READY.
    if (services.venues.length > 0) await services.runners.reconcileVenues();
  }
  return {
    file: o.file,
    db,
    store,
    manager,
    services,
    async close() {
      await manager.close();
      await services.close();
      db.close();
    },
  };
}
