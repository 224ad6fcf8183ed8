import type { FeedConfig, Session } from '../domain/session.js';
import { fnv1a } from '../market-data/synthetic-feed.js';

/** The feed a session trades on: its own config, or a synthetic market seeded from its id. */
export function feedConfigOf(session: Pick<Session, 'id' | 'feed'>, defaultBarIntervalMs: number): FeedConfig {
  const seed = fnv1a(session.id) | 0;
  const f = session.feed;
  if (f === undefined) return { type: 'synthetic', seed, intervalMs: defaultBarIntervalMs, barsPerStep: 1 };
  if (f.type === 'synthetic') return { ...f, seed: f.seed ?? seed, intervalMs: f.intervalMs ?? defaultBarIntervalMs, barsPerStep: f.barsPerStep ?? 1 };
  return f;
}
