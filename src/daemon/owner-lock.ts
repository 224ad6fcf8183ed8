import BetterSqlite3 from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** Another process holds the database: the daemon refuses to start. */
export class OwnerLockError extends Error {
  readonly code = 'OWNER_LOCKED';
  constructor(
    readonly file: string,
    readonly lockFile: string,
  ) {
    super(
      `another sessiond already owns the database ${file} (it holds ${lockFile}); ` +
        'stop it first, or give this daemon its own database.file (SESSIOND_DB)',
    );
    this.name = this.constructor.name;
  }
}

export interface OwnerLock {
  readonly lockFile: string;
  /** Releases the lock. Idempotent. */
  release(): void;
}

/**
 * One daemon per SQLite file, for the life of the process. The lock is `<db>.lock`, a small SQLite file held by
 * its own connection in `locking_mode=EXCLUSIVE` after a write: SQLite keeps the OS file lock until the
 * connection closes, and the OS drops it when the process dies, even by SIGKILL, so a crashed daemon never
 * leaves a stale lock behind. A second daemon's write fails at once with SQLITE_BUSY and it refuses to start.
 */
export function acquireOwnerLock(dbFile: string): OwnerLock | undefined {
  if (dbFile === ':memory:') return undefined;
  const lockFile = `${dbFile}.lock`;
  mkdirSync(dirname(lockFile), { recursive: true });
  const conn = new BetterSqlite3(lockFile, { timeout: 0 });
  try {
    conn.pragma('journal_mode = DELETE');
    conn.pragma('locking_mode = EXCLUSIVE');
    // One transaction (one commit: two fsyncs fewer than creating the table on its own); its first write takes the lock.
    conn.transaction(() => {
      conn.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, started_at TEXT NOT NULL)');
      conn.prepare('DELETE FROM owner').run();
      conn.prepare('INSERT INTO owner (pid, started_at) VALUES (?, ?)').run(process.pid, new Date().toISOString());
    })();
  } catch (err) {
    conn.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') || (err as { code?: string }).code === 'SQLITE_LOCKED') {
      throw new OwnerLockError(dbFile, lockFile);
    }
    throw err;
  }
  let released = false;
  return {
    lockFile,
    release() {
      if (released) return;
      released = true;
      conn.close();
    },
  };
}
