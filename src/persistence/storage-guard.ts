import { isStorageFault } from '../domain/errors.js';
import type { Db } from './database.js';

export interface StorageGuardOptions {
  /** How often a write is tried while SQLite cannot write. @defaultValue 1000 */
  probeMs?: number;
  logger?: { error(obj: object, msg: string): void; info(obj: object, msg: string): void } | undefined;
}

export interface StorageFault {
  /** The SQLite result code, e.g. `SQLITE_FULL`. */
  code: string;
  message: string;
  /** ISO time it was first seen. */
  since: string;
}

/**
 * Knows whether SQLite can write (its probe row is table `storage_probe`, created if missing). Whoever meets a storage fault (disk full, I/O error: see isStorageFault)
 * reports it; the guard then tries a one-row write every `probeMs` and, once one commits, says so and calls
 * the `whenWritable` waiters (the runners, which were holding). `/readyz` reads `fault`.
 *
 * @example
 * const storage = new StorageGuard(db, { logger });
 * try { commit() } catch (err) { if (storage.report(err)) storage.whenWritable(() => retry()) }
 */
export class StorageGuard {
  private current: StorageFault | undefined;
  private readonly waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly probeMs: number;
  private readonly probeStmt: ReturnType<Db['prepare']>;

  constructor(
    private readonly db: Db,
    private readonly options: StorageGuardOptions = {},
  ) {
    this.probeMs = options.probeMs ?? 1000;
    if (!Number.isInteger(this.probeMs) || this.probeMs < 1) throw new Error('options.probeMs must be a positive integer');
    // Its own one-row table, made here rather than in a numbered migration: nothing else depends on it, and
    // it must exist whatever order migrations landed in.
    db.exec('CREATE TABLE IF NOT EXISTS storage_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL)');
    this.probeStmt = db.prepare('INSERT INTO storage_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at');
  }

  /** The fault SQLite is in, or undefined while it writes. */
  get fault(): StorageFault | undefined {
    return this.current;
  }

  /**
   * Records a storage fault (anything else is ignored) and starts probing.
   * @returns whether `err` is a storage fault
   */
  report(err: unknown): boolean {
    if (!isStorageFault(err)) return false;
    const e = err as { code?: unknown; message?: unknown; sqliteCode?: unknown };
    const code = typeof e.sqliteCode === 'string' ? e.sqliteCode : typeof e.code === 'string' ? e.code : 'SQLITE_IOERR';
    if (this.current === undefined) {
      this.current = { code, message: typeof e.message === 'string' ? e.message : String(err), since: new Date().toISOString() };
      this.options.logger?.error({ code, err: this.current.message }, 'SQLite cannot write: commands fail with STORAGE_UNAVAILABLE and runners hold until it can');
    }
    this.schedule();
    return true;
  }

  /** Calls `fn` once SQLite writes again (on the next turn when it already does). */
  whenWritable(fn: () => void): void {
    if (this.current === undefined) {
      setImmediate(fn);
      return;
    }
    this.waiters.push(fn);
  }

  /** Tries one write now; true when it committed (and the fault, if any, is over). */
  probe(): boolean {
    try {
      this.probeStmt.run(new Date().toISOString());
    } catch (err) {
      // Not a storage fault (nothing else should fail here): still not writable, and said so.
      if (!this.report(err)) this.options.logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'storage probe failed');
      return false;
    }
    if (this.current !== undefined) {
      this.options.logger?.info({ code: this.current.code, since: this.current.since }, 'SQLite writes again: resuming');
      this.current = undefined;
      for (const fn of this.waiters.splice(0)) fn();
    }
    return true;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.waiters.length = 0;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed || !this.db.open) return;
      if (!this.probe()) this.schedule();
    }, this.probeMs);
    this.timer.unref();
  }
}
