import type { Migration } from './types.js';

/**
 * Where each backtest came from: `run` by the daemon's backtest command (with the data file's hash, rows
 * and time range in `data`), or `recorded` through record-backtest (metrics computed elsewhere). Rows from
 * before this migration cannot show they were run: they become `recorded`.
 */
export const migration006: Migration = {
  version: 6,
  name: 'backtest provenance',
  up(db) {
    db.exec(`
      ALTER TABLE backtests ADD COLUMN source TEXT NOT NULL DEFAULT 'recorded' CHECK (source IN ('run','recorded'));
      ALTER TABLE backtests ADD COLUMN data TEXT; -- JSON BacktestDataProvenance of a run, NULL when recorded
    `);
  },
};
