import { join } from 'node:path';
import { startCheckpointer, type Checkpointer } from '../../src/persistence/checkpointer.js';
import { openDatabase, type Db } from '../../src/persistence/database.js';
import { SqliteBacktestRepository } from '../../src/persistence/sqlite-backtest-repository.js';
import { SqliteCommandLog, SqliteSessionStore } from '../../src/persistence/sqlite-session-store.js';
import { RecordingRunner } from '../../src/runners/recording-runner.js';
import { SessionManager, type PrerequisiteThresholds, type SessionManagerOptions } from '../../src/sessions/session-manager.js';
import { tempDir } from './daemon.js';

export const THRESHOLDS: PrerequisiteThresholds = {
  backtest: { minReturnPct: 5, maxDrawdownPct: 20, minSharpe: 0.5, minTrades: 10 },
  paper: { minRunSeconds: 60, minReturnPct: 0, maxDrawdownPct: 20 },
};

export interface TestManager {
  manager: SessionManager;
  runner: RecordingRunner;
  store: SqliteSessionStore;
  db: Db;
  file: string;
  /** Closes the manager and the db, then opens a new manager on the same file (a restart). */
  restart(): Promise<TestManager>;
  close(): Promise<void>;
}

/** A SessionManager over a real SQLite file in a temp dir, with a RecordingRunner. */
export function buildManager(
  opts: { file?: string; now?: () => Date; extra?: Partial<SessionManagerOptions>; backgroundCheckpoints?: boolean } = {},
): TestManager {
  const file = opts.file ?? join(tempDir(), 'sessiond.db');
  const db = openDatabase(file);
  const store = new SqliteSessionStore(db);
  const checkpointer: Checkpointer | undefined = opts.backgroundCheckpoints ? startCheckpointer(db) : undefined;
  const runner = new RecordingRunner();
  const manager = new SessionManager({
    store,
    commands: new SqliteCommandLog(store),
    backtests: new SqliteBacktestRepository(db),
    brokers: { has: (id) => id === 'paper' || id === 'alpaca' },
    runner,
    thresholds: THRESHOLDS,
    performance: { performanceOf: () => ({ returnPct: 1, maxDrawdownPct: 2, trades: 3 }) },
    now: opts.now,
    ...opts.extra,
  });
  const self: TestManager = {
    manager,
    runner,
    store,
    db,
    file,
    async restart() {
      await self.close();
      return buildManager({ ...opts, file });
    },
    async close() {
      await manager.close();
      await checkpointer?.close();
      if (db.open) db.close();
    },
  };
  return self;
}

export const paperConfig = (extra: Record<string, unknown> = {}) => ({
  kind: 'paper',
  strategy: { id: 'sma-crossover', name: 'SMA crossover', params: { fast: 5, slow: 20 } },
  symbols: ['AAPL', 'MSFT'],
  riskControls: { maxOrderQty: 100 },
  ...extra,
});
