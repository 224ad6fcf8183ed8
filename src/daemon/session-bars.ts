import type { Bar } from '../domain/market.js';
import { createFeed } from '../market-data/feed.js';
import { feedConfigOf } from '../runners/runner-service.js';
import type { BarSource } from '../sessions/session-book.js';

/**
 * A session's bars for the price chart: its own feed (same config, seed and start time as its runner)
 * replayed up to the runner's cursor, keeping the newest `limit` bar times. Nothing is stored twice. A
 * synthetic feed counts back from the runner's checkpoint (Feed.seekBack): its prices equal the traded
 * ones to floating-point rounding, about 1e-12 relative.
 */
export function sessionBars(options: { defaultBarIntervalMs: number; baseDir?: string }): BarSource {
  return (session, record, limit) => {
    // A venue feed's bars are the venue's (not replayable here): the chart shows none for it.
    if (session.feed?.type === 'venue') return [];
    const feed = createFeed(feedConfigOf(session, options.defaultBarIntervalMs), session.symbols, {
      startTime: record.startTime,
      accelerated: true,
      ...(options.baseDir !== undefined ? { baseDir: options.baseDir } : {}),
    });
    // From the runner's checkpoint (at or near its cursor), counting back: not from bar 0, so a chart of a
    // session that ran for weeks costs `limit` bars, not every bar since it started.
    const from = Math.max(0, record.cursor - limit);
    if (feed.seekBack !== undefined && record.feedCheckpoint !== undefined) feed.seekBack(from, record.feedCheckpoint);
    else feed.seek(from);
    const bars: Bar[] = [];
    while (feed.cursor < record.cursor) {
      const batch = feed.next();
      if (batch === null) break;
      bars.push(...batch);
    }
    return bars;
  };
}
