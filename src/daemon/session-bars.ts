import type { Bar } from '../domain/market.js';
import { createFeed } from '../market-data/feed.js';
import { feedConfigOf } from '../runners/runner-service.js';
import type { BarSource } from '../sessions/session-book.js';

/**
 * A session's bars for the price chart: its own feed (same config, seed and start time as its runner)
 * replayed up to the runner's cursor, keeping the newest `limit` bar times. Nothing is stored twice.
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
    feed.seek(Math.max(0, record.cursor - limit));
    const bars: Bar[] = [];
    while (feed.cursor < record.cursor) {
      const batch = feed.next();
      if (batch === null) break;
      bars.push(...batch);
    }
    return bars;
  };
}
