/**
 * One definition of the equity curve, for paper sessions and backtests alike: one point per step, after the
 * step's bars reached the broker, with every position marked at its symbol's last close
 * (`equity = starting equity + realized PnL + unrealized PnL at the closes`). Never a point right after a
 * fill: a fill is valued at the next close, like everything else.
 */
export interface EquityStats {
  /** The last point. */
  equity: number;
  /** Highest point so far (the starting equity counts as the first point). */
  peakEquity: number;
  /** Largest fall from a running peak, in percent of that peak, over every point so far (>= 0). */
  maxDrawdownPct: number;
}

/** `(peak - equity) / peak x 100`, 0 at or above the peak (or for a non-positive peak). */
export function drawdownPct(peak: number, equity: number): number {
  return peak > 0 && equity < peak ? ((peak - equity) / peak) * 100 : 0;
}

/** The stats after one more point of the curve. */
export function markEquity(stats: EquityStats, equity: number): EquityStats {
  const peakEquity = Math.max(stats.peakEquity, equity);
  return { equity, peakEquity, maxDrawdownPct: Math.max(stats.maxDrawdownPct, drawdownPct(peakEquity, equity)) };
}

/** Milliseconds in a year of 365 days: annualizes per-step figures from the bar interval. */
export const MS_PER_YEAR = 365 * 24 * 60 * 60 * 1000;

/**
 * Steps per year from the typical time between steps (the median gap of `times`, epoch ms): the factor the
 * annualized Sharpe ratio uses (`sqrt(periodsPerYear)`). Undefined with fewer than two distinct times.
 */
export function periodsPerYearOf(times: readonly number[]): number | undefined {
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) if (times[i]! > times[i - 1]!) gaps.push(times[i]! - times[i - 1]!);
  if (gaps.length === 0) return undefined;
  gaps.sort((a, b) => a - b);
  const mid = gaps.length >> 1;
  const median = gaps.length % 2 === 1 ? gaps[mid]! : (gaps[mid - 1]! + gaps[mid]!) / 2;
  return MS_PER_YEAR / median;
}
