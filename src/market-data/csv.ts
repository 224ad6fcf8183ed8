import type { Bar } from '../domain/market.js';
import { ValidationError } from '../domain/errors.js';

export interface ParseBarsCsvOptions {
  /** Named in error messages (usually the file path). @defaultValue `'csv'` */
  source?: string;
  /**
   * Symbol of every row when the file has no `symbol` column. Without it such a file still parses (for
   * BarFiles, which learns the symbol from the session later): its rows have the symbol `''`.
   */
  defaultSymbol?: string;
  /** Accept a file without a `symbol` column even when no defaultSymbol is given. @defaultValue false */
  allowNoSymbolColumn?: boolean;
}

const REQUIRED_COLUMNS = ['time', 'open', 'high', 'low', 'close'] as const;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const SYMBOL = /^[A-Za-z0-9._/-]{1,32}$/;

/**
 * Parses OHLCV bars from CSV text with a header row: `time,symbol,open,high,low,close,volume`
 * in any order, case-insensitive. `symbol` may be left out when `defaultSymbol` is given,
 * `volume` defaults to 0. `time` is epoch milliseconds or ISO-8601 (UTC when it has no offset).
 * Blank lines and lines starting with `#` are skipped. Rows come back in file order; each symbol's
 * rows must be in strictly increasing time order (a second row at the same time is a duplicate).
 * Error messages name the source, the line and the rule, never a field's content.
 * @throws ValidationError naming the source and line, e.g. `bars.csv:7: high is below close`.
 */
export function parseBarsCsv(text: string, options: ParseBarsCsvOptions = {}): Bar[] {
  return parseBarsCsvRows(text, options).map((row) => row.bar);
}

/** A parsed bar with its 1-based line number in the source. */
export interface CsvBarRow {
  bar: Bar;
  line: number;
}

/** parseBarsCsv, keeping each bar's line number (for later errors). */
export function parseBarsCsvRows(text: string, options: ParseBarsCsvOptions = {}): CsvBarRow[] {
  const parser = new BarsCsvParser(options);
  parser.push(text);
  return parser.end();
}

/**
 * An incremental parseBarsCsv: `push()` text as it is read (any chunking), then `end()`. A file is then
 * parsed while it streams in, a chunk per turn of the event loop, instead of in one blocking call.
 */
export class BarsCsvParser {
  readonly source: string;
  private readonly options: ParseBarsCsvOptions;
  private carry = '';
  private lineNo = 0;
  private header: string[] | undefined;
  private headerLine = 0;
  private cols = { time: -1, open: -1, high: -1, low: -1, close: -1, symbol: -1, volume: -1 };
  private readonly rows: CsvBarRow[] = [];
  /** Per symbol: the time and line of its latest row (order and duplicate checks). */
  private readonly last = new Map<string, { time: number; line: number }>();

  constructor(options: ParseBarsCsvOptions = {}) {
    this.options = options;
    this.source = options.source ?? 'csv';
  }

  /** Whether the header has a `symbol` column (known after the header line). */
  get hasSymbolColumn(): boolean {
    return this.cols.symbol >= 0;
  }

  /** 1-based line of the header (0 before it is read). */
  get headerLineNo(): number {
    return this.headerLine;
  }

  push(chunk: string): void {
    const text = this.carry + chunk;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.carry = text.slice(start);
  }

  end(): CsvBarRow[] {
    if (this.carry !== '') {
      this.line(this.carry);
      this.carry = '';
    }
    if (this.header === undefined) throw new ValidationError(`${this.source}: no header row (expected time,symbol,open,high,low,close,volume)`);
    return this.rows;
  }

  private line(raw: string): void {
    this.lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (isSkipped(line)) return;
    if (this.header === undefined) {
      this.readHeader(line);
      return;
    }
    const source = this.source;
    const lineNo = this.lineNo;
    const fields = splitCsvLine(line, source, lineNo);
    if (fields.length !== this.header.length) {
      throw new ValidationError(`${source}:${lineNo}: expected ${this.header.length} fields, got ${fields.length}`);
    }
    const c = this.cols;
    const num = (name: keyof typeof c): number => parseNumber(fields[c[name]]!, name, source, lineNo);
    const symbol = c.symbol >= 0 ? fields[c.symbol]! : (this.options.defaultSymbol ?? '');
    if (c.symbol >= 0 && !SYMBOL.test(symbol)) {
      throw new ValidationError(`${source}:${lineNo}: symbol is not a valid symbol (1-32 of A-Z a-z 0-9 . _ / -)`);
    }
    const bar: Bar = {
      symbol,
      time: parseTime(fields[c.time]!, source, lineNo),
      open: num('open'),
      high: num('high'),
      low: num('low'),
      close: num('close'),
      volume: c.volume >= 0 ? num('volume') : 0,
    };
    checkBar(bar, source, lineNo);
    const prev = this.last.get(symbol);
    if (prev !== undefined && bar.time <= prev.time) {
      throw new ValidationError(
        bar.time === prev.time
          ? `${source}:${lineNo}: a second bar for the same symbol and time as line ${prev.line}`
          : `${source}:${lineNo}: older than the same symbol's bar on line ${prev.line} (each symbol's rows must be in time order)`,
      );
    }
    this.last.set(symbol, { time: bar.time, line: lineNo });
    this.rows.push({ bar, line: lineNo });
  }

  private readHeader(line: string): void {
    const source = this.source;
    const header = splitCsvLine(line, source, this.lineNo).map((h) => h.toLowerCase());
    this.header = header;
    this.headerLine = this.lineNo;
    for (const name of REQUIRED_COLUMNS) {
      if (!header.includes(name)) throw new ValidationError(`${source}:${this.lineNo}: header has no ${name} column`);
    }
    for (const name of Object.keys(this.cols) as (keyof typeof this.cols)[]) this.cols[name] = header.indexOf(name);
    if (this.cols.symbol < 0 && this.options.defaultSymbol === undefined && !this.options.allowNoSymbolColumn) {
      throw new ValidationError(`${source}:${this.lineNo}: header has no symbol column and the session has several symbols`);
    }
  }
}

/**
 * Splits one CSV line; fields may be double-quoted (`""` is a quote inside one). Fields are trimmed.
 * @internal
 */
export function splitCsvLine(line: string, source = 'csv', lineNo = 1): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new ValidationError(`${source}:${lineNo}: unterminated quoted field`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (i < line.length && line[i] !== ',') throw new ValidationError(`${source}:${lineNo}: text after a quoted field`);
    } else {
      const end = line.indexOf(',', i);
      field = (end < 0 ? line.slice(i) : line.slice(i, end)).trim();
      i = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

function isSkipped(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#');
}

function parseNumber(text: string, name: string, source: string, lineNo: number): number {
  // Number('') is 0: an empty field must not pass as a price.
  const n = text === '' ? NaN : Number(text);
  if (!Number.isFinite(n)) throw new ValidationError(`${source}:${lineNo}: ${name} is ${text === '' ? 'empty' : 'not a number'}`);
  return n;
}

function parseTime(text: string, source: string, lineNo: number): number {
  if (/^\d+$/.test(text)) return Number(text);
  const m = ISO_DATE.exec(text);
  // Date.parse reads a date-time without offset as local time; bars must not depend on the host's zone.
  const iso = m !== null && m[1] === undefined && text.length > 10 ? `${text.replace(' ', 'T')}Z` : text.replace(' ', 'T');
  const t = m === null ? NaN : Date.parse(iso);
  if (!Number.isFinite(t)) throw new ValidationError(`${source}:${lineNo}: time is neither epoch milliseconds nor ISO-8601`);
  return t;
}

function checkBar(bar: Bar, source: string, lineNo: number): void {
  const fail = (why: string): never => {
    throw new ValidationError(`${source}:${lineNo}: ${why}`);
  };
  for (const name of ['open', 'high', 'low', 'close'] as const) {
    if (bar[name] <= 0) fail(`${name} must be positive`);
  }
  if (bar.volume < 0) fail('volume must not be negative');
  if (bar.high < bar.low) fail('high is below low');
  if (bar.high < bar.open) fail('high is below open');
  if (bar.high < bar.close) fail('high is below close');
  if (bar.low > bar.open) fail('low is above open');
  if (bar.low > bar.close) fail('low is above close');
}
