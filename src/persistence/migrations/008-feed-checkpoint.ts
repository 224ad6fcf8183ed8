import type BetterSqlite3 from 'better-sqlite3';
import type { Migration } from './types.js';

function addFeedCheckpoint(db: BetterSqlite3.Database): void {
  const columns = db.prepare('PRAGMA table_info(runner_state)').all() as { name: string }[];
  if (columns.some((c) => c.name === 'feed_checkpoint')) return;
  // JSON of a feed's restore point at `cursor` (a synthetic feed's log closes): a restart seeks there in
  // O(1) instead of replaying every bar since the session started. NULL: replay (older rows, other feeds).
  db.exec('ALTER TABLE runner_state ADD COLUMN feed_checkpoint TEXT');
}

/** runner_state.feed_checkpoint. Idempotent: `repair` adds it to a database whose user_version passed 8 before this landed. */
export const migration008: Migration = {
  version: 8,
  name: 'feed checkpoint',
  up: addFeedCheckpoint,
  repair: addFeedCheckpoint,
};
