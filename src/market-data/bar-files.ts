import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve as resolvePath, sep } from 'node:path';
import { ValidationError } from '../domain/errors.js';
import { BarsCsvParser, type CsvBarRow } from './csv.js';

export interface BarFilesOptions {
  /**
   * The directories bar files may be read from. Relative entries resolve against the daemon's working
   * directory; a relative file name resolves against the first entry.
   * @defaultValue ['./data/bars']
   */
  dirs?: readonly string[];
  /** Largest file read, in bytes. @defaultValue 67108864 (64 MiB) */
  maxFileBytes?: number;
  /** Parsed files kept for reuse (sessions on one file share it); a changed file is read again. @defaultValue 8 */
  cacheSize?: number;
}

export const DEFAULT_BAR_FILES_OPTIONS = Object.freeze({
  dirs: Object.freeze(['./data/bars']) as readonly string[],
  maxFileBytes: 64 * 1024 * 1024,
  cacheSize: 8,
});

/** Longest line accepted: a file without line breaks is refused early, not buffered whole. */
const MAX_LINE_CHARS = 64 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** A parsed, checked bar file. */
export interface BarTable {
  /** The name the command gave (used in messages). */
  name: string;
  /** The real path read (symbolic links resolved). */
  path: string;
  rows: readonly CsvBarRow[];
  /** Without a symbol column every row's symbol is `''`: the file is for a single-symbol session. */
  hasSymbolColumn: boolean;
  /** 1-based line of the header row. */
  headerLine: number;
  /** Distinct symbols in order of first appearance (`['']` without a symbol column). */
  symbols: readonly string[];
  bytes: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
}

interface CacheEntry {
  identity: string;
  table: BarTable;
}

/**
 * Reads the bar files that commands name (a replay feed's `file`, a backtest's `data`), and only those
 * under the configured data directories: the path is resolved, checked, resolved again through symbolic
 * links and checked again; only a regular file no larger than `maxFileBytes` is opened, and it is read in
 * chunks with async I/O, parsed as it streams in, so the event loop keeps running (a FIFO, a device or a
 * huge file never stalls the daemon). Errors name the file and line, never the file's content.
 *
 * @example
 * const files = new BarFiles({ dirs: ['./data/bars'] });
 * const table = await files.load('spy-2024.csv', 'feed.file'); // ./data/bars/spy-2024.csv
 */
export class BarFiles {
  readonly dirs: readonly string[];
  readonly maxFileBytes: number;
  private readonly cacheSize: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly loading = new Map<string, Promise<BarTable>>();

  constructor(options: BarFilesOptions = {}) {
    const o = { ...DEFAULT_BAR_FILES_OPTIONS, ...stripUndefined(options) };
    if (!Array.isArray(o.dirs) || o.dirs.length === 0 || o.dirs.some((d) => typeof d !== 'string' || d === '')) {
      throw new ValidationError('options.dirs must be a non-empty list of directories');
    }
    if (!Number.isInteger(o.maxFileBytes) || o.maxFileBytes < 1) throw new ValidationError('options.maxFileBytes must be a positive integer');
    if (!Number.isInteger(o.cacheSize) || o.cacheSize < 0) throw new ValidationError('options.cacheSize must be a non-negative integer');
    this.dirs = Object.freeze(o.dirs.map((d) => resolvePath(d)));
    this.maxFileBytes = o.maxFileBytes;
    this.cacheSize = o.cacheSize;
  }

  /**
   * The real path of a bar file the rules allow, with its stats.
   * @param field what the path is, for messages (`feed.file`, `data`)
   * @throws ValidationError when it is outside the data directories (before or after symbolic links),
   * missing, not a regular file or over the size limit.
   */
  async resolve(file: string, field = 'file'): Promise<{ path: string; stats: Stats }> {
    if (typeof file !== 'string' || file === '' || file.includes('\0')) throw new ValidationError(`${field}: must be a file path`);
    const name = JSON.stringify(file);
    const outside = (how = ''): ValidationError =>
      new ValidationError(`${field}: ${name} is outside the data directories${how} (marketData.dirs)`);
    const lexical = resolvePath(this.dirs[0]!, file);
    const realDirs = await this.realDirs();
    // Nothing outside is even looked at: the answer does not tell whether such a file exists.
    if (!this.dirs.some((d) => within(d, lexical)) && !realDirs.some((d) => within(d, lexical))) throw outside();
    let real: string;
    try {
      real = await realpath(lexical);
    } catch (err) {
      throw new ValidationError(`${field}: ${name} cannot be read (${errnoOf(err)})`);
    }
    if (!realDirs.some((d) => within(d, real))) throw outside(' once symbolic links are resolved');
    const stats = await lstat(real).catch((err: unknown) => {
      throw new ValidationError(`${field}: ${name} cannot be read (${errnoOf(err)})`);
    });
    this.checkStats(stats, field, name);
    return { path: real, stats };
  }

  /**
   * Resolves (see `resolve`), reads and parses a bar file; a file unchanged since its last load comes from
   * the cache. Each symbol's rows must be in time order; see parseBarsCsv for the format.
   * @throws ValidationError naming the file (and the line for a bad row).
   */
  async load(file: string, field = 'file'): Promise<BarTable> {
    const { path, stats } = await this.resolve(file, field);
    const identity = identityOf(stats);
    const cached = this.cache.get(path);
    if (cached !== undefined && cached.identity === identity) {
      this.cache.delete(path);
      this.cache.set(path, cached);
      return cached.table.name === file ? cached.table : { ...cached.table, name: file };
    }
    const key = `${path}\0${identity}\0${file}`;
    let pending = this.loading.get(key);
    if (pending === undefined) {
      pending = this.read(file, field, path, stats).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    const table = await pending;
    if (this.cacheSize > 0) {
      this.cache.delete(path);
      this.cache.set(path, { identity, table });
      while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    }
    return table;
  }

  private async read(file: string, field: string, path: string, expected: Stats): Promise<BarTable> {
    const name = JSON.stringify(file);
    // O_NONBLOCK: opening a FIFO swapped in since the check returns at once instead of waiting for a writer;
    // O_NOFOLLOW: nor may the last component have become a symbolic link. The opened file is checked again.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW).catch((err: unknown) => {
      throw new ValidationError(`${field}: ${name} cannot be read (${errnoOf(err)})`);
    });
    try {
      const stats = await handle.stat();
      this.checkStats(stats, field, name);
      if (stats.ino !== expected.ino || stats.dev !== expected.dev) throw new ValidationError(`${field}: ${name} changed while it was opened`);
      const parser = new BarsCsvParser({ source: file, allowNoSymbolColumn: true });
      const decoder = new TextDecoder('utf-8');
      const hash = createHash('sha256');
      const buffer = Buffer.alloc(CHUNK_BYTES);
      let bytes = 0;
      let carried = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        if (bytes > this.maxFileBytes) throw new ValidationError(`${field}: ${name} is larger than marketData.maxFileBytes (${this.maxFileBytes} bytes)`);
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        const text = decoder.decode(chunk, { stream: true });
        const nl = text.lastIndexOf('\n');
        carried = nl < 0 ? carried + text.length : text.length - nl - 1;
        if (carried > MAX_LINE_CHARS) throw new ValidationError(`${field}: ${name} has a line longer than ${MAX_LINE_CHARS} characters`);
        parser.push(text);
      }
      parser.push(decoder.decode());
      const rows = parser.end();
      if (rows.length === 0) throw new ValidationError(`${file}:${parser.headerLineNo}: no bars after the header`);
      const symbols = [...new Set(rows.map((r) => r.bar.symbol))];
      return {
        name: file,
        path,
        rows,
        hasSymbolColumn: parser.hasSymbolColumn,
        headerLine: parser.headerLineNo,
        symbols,
        bytes,
        sha256: hash.digest('hex'),
      };
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  private checkStats(stats: Stats, field: string, name: string): void {
    if (!stats.isFile()) throw new ValidationError(`${field}: ${name} is not a regular file (${kindOf(stats)})`);
    if (stats.size > this.maxFileBytes) {
      throw new ValidationError(`${field}: ${name} is ${stats.size} bytes, larger than marketData.maxFileBytes (${this.maxFileBytes})`);
    }
  }

  /** The data directories after symbolic links; one that does not exist (yet) allows nothing. */
  private async realDirs(): Promise<string[]> {
    const out: string[] = [];
    for (const d of this.dirs) {
      try {
        out.push(await realpath(d));
      } catch {
        // Missing: nothing under it can be read.
      }
    }
    return out;
  }
}

function within(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function identityOf(s: Stats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  if (s.isSymbolicLink()) return 'a symbolic link';
  return 'not a file';
}

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
