import type BetterSqlite3 from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  up(db: BetterSqlite3.Database): void;
  /**
   * Idempotent check-and-fix run on every open once user_version is at or past this version: a migration
   * numbered below one that shipped before it would otherwise never run on such a database.
   */
  repair?(db: BetterSqlite3.Database): void;
}
