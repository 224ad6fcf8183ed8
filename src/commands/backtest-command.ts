import { z } from 'zod';
import type { BacktestDataProvenance } from '../domain/backtest.js';
import { ValidationError } from '../domain/errors.js';
import { RiskControlsSchema } from '../domain/session.js';
import { BarFiles, type BarTable } from '../market-data/bar-files.js';
import { createFeed } from '../market-data/feed.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { zodIssues } from '../sessions/zod-issues.js';
import type { StrategyCatalog } from '../strategies/catalog.js';
import { runBacktest, type BacktestRunOptions } from '../runners/backtest-runner.js';
import type { CommandHandler } from './command-consumer.js';

/** `backtest` job data: run a strategy over replay bars and record the result. */
export const BacktestCommandSchema = z
  .object({
    strategyId: z.string().min(1).max(128),
    /**
     * A CSV (`time,symbol,open,high,low,close,volume`) under the daemon's data directories
     * (`marketData.dirs`); a relative path resolves against the first of them.
     */
    data: z.string().min(1).max(4096),
    params: z.record(z.string(), z.unknown()).default({}),
    /** Default: every symbol in the file. */
    symbols: z.array(z.string().min(1)).min(1).optional(),
    riskControls: RiskControlsSchema.default({}),
  })
  .strict();

export interface BacktestCommandDeps {
  manager: SessionManager;
  catalog: StrategyCatalog;
  /** The daemon's worker pool: the backtest's steps run isolated, like a session's. */
  pool: BacktestRunOptions['pool'];
  paperBroker?: BacktestRunOptions['paperBroker'];
  /** Where `data` may be read from (the daemon's config.marketData). @defaultValue new BarFiles() */
  files?: BarFiles;
}

/**
 * The `backtest` command: runs the strategy over the file's bars as fast as possible, in the worker pool, with
 * a paper broker, then records the result through the manager (judged against the thresholds; exactly once
 * per command id: a redelivered job returns the recorded result without running again).
 */
export function createBacktestHandler(deps: BacktestCommandDeps): CommandHandler {
  const files = deps.files ?? new BarFiles();
  return async (data, { commandId }) => {
    const parsed = BacktestCommandSchema.safeParse(data);
    if (!parsed.success) throw new ValidationError(`invalid backtest job: ${zodIssues(parsed.error)}`);
    const d = parsed.data;
    const strategy = deps.catalog.get(d.strategyId);
    // Read once, checked and without blocking the event loop (see BarFiles); the same rules as a replay session's.
    const table = await files.load(d.data, 'data');
    if (d.symbols === undefined && !table.hasSymbolColumn) {
      throw new ValidationError(`${d.data}:${table.headerLine}: header has no symbol column: name the symbol (symbols)`);
    }
    const symbols = d.symbols ?? [...table.symbols];
    const feed = createFeed({ type: 'replay', file: d.data }, symbols, { accelerated: true, table });
    const run = await runBacktest({
      strategy,
      params: d.params,
      feed,
      pool: deps.pool,
      paperBroker: deps.paperBroker,
      riskControls: d.riskControls,
      id: `backtest-${commandId}`,
    });
    const record = await deps.manager.recordBacktest(
      { strategyId: d.strategyId, params: run.params, dataRef: run.dataRef, metrics: run.metrics },
      { commandId, source: 'command' },
      { source: 'run', data: provenanceOf(table) },
    );
    return {
      ...record,
      steps: run.steps,
      bars: run.bars,
      orders: run.orders.length,
      fills: run.fills.length,
      ...(run.equityExhaustedAt === undefined ? {} : { equityExhaustedAt: new Date(run.equityExhaustedAt).toISOString() }),
    };
  };
}

/** What a daemon-run backtest records about its file: real path, SHA-256, rows and time range. */
export function provenanceOf(table: BarTable): BacktestDataProvenance {
  let from = Infinity;
  let to = -Infinity;
  for (const { bar } of table.rows) {
    if (bar.time < from) from = bar.time;
    if (bar.time > to) to = bar.time;
  }
  const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : '');
  return { file: table.path, sha256: table.sha256, rows: table.rows.length, from: iso(from), to: iso(to) };
}
