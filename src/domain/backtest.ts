import { z } from 'zod';
import type { PrerequisiteCheck } from './errors.js';

export const BacktestMetricsSchema = z
  .object({
    returnPct: z.number().finite(),
    maxDrawdownPct: z.number().finite().min(0),
    /** Per step (one step = one bar interval), risk-free rate 0. */
    sharpe: z.number().finite(),
    /** Closed round trips + positions still open at the end. */
    trades: z.number().int().min(0),
    /** `sharpe x sqrt(steps per year)`, steps per year from the median bar interval (365-day year). */
    sharpeAnnualized: z.number().finite().optional(),
    /** Of `trades`, the positions still open at the end (marked at the last close). */
    openTrades: z.number().int().min(0).optional(),
    /** Unrealized PnL of those open positions at the last close. */
    openPnl: z.number().finite().optional(),
  })
  .strict();
export type BacktestMetrics = z.infer<typeof BacktestMetricsSchema>;

/** The bar file a daemon-run backtest read. */
export interface BacktestDataProvenance {
  /** The real path read. */
  file: string;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Bar rows in the file. */
  rows: number;
  /** First and last bar time in the file (ISO-8601). */
  from: string;
  to: string;
}

/** `run`: the daemon's backtest command ran it (with `data`); `recorded`: record-backtest stored metrics computed elsewhere. */
export type BacktestSource = 'run' | 'recorded';

export interface BacktestRecord {
  id: string;
  strategyId: string;
  params: Record<string, unknown>;
  /** Where the bars came from (a file path, "synthetic:seed", ...). */
  dataRef: string;
  source: BacktestSource;
  /** Runs only: the file the daemon read. */
  data?: BacktestDataProvenance | undefined;
  metrics: BacktestMetrics;
  passed: boolean;
  checks: PrerequisiteCheck[];
  createdAt: string;
}

export interface BacktestThresholds {
  minReturnPct: number;
  maxDrawdownPct: number;
  minSharpe: number;
  minTrades: number;
  /** Whether a `recorded` backtest (record-backtest) may pass the live gate; else only daemon runs. @defaultValue false */
  acceptRecorded?: boolean;
}

export interface PaperThresholds {
  minRunSeconds: number;
  minReturnPct: number;
  maxDrawdownPct: number;
}

/** Judges backtest metrics against thresholds; every check is listed, passed or not. */
export function judgeBacktest(m: BacktestMetrics, t: BacktestThresholds): PrerequisiteCheck[] {
  return [
    check('backtest.return', m.returnPct >= t.minReturnPct, `return ${fmt(m.returnPct)}% vs min ${t.minReturnPct}%`),
    check('backtest.drawdown', m.maxDrawdownPct <= t.maxDrawdownPct, `max drawdown ${fmt(m.maxDrawdownPct)}% vs max ${t.maxDrawdownPct}%`),
    check('backtest.sharpe', m.sharpe >= t.minSharpe, `sharpe ${fmt(m.sharpe)} vs min ${t.minSharpe}`),
    check('backtest.trades', m.trades >= t.minTrades, `${m.trades} trades vs min ${t.minTrades}`),
  ];
}

export function check(name: string, passed: boolean, reason: string): PrerequisiteCheck {
  return { name, passed, reason };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}
