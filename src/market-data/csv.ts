import type { Bar } from '../domain/market.js';
import { ValidationError } from '../domain/errors.js';

export interface ParseBarsCsvOptions {
  /** Named in error messages (usually the file path). @defaultValue `'csv'` */
  source?: string;
  /** Symbol of every row when the file has no `symbol` column. */
  defaultSymbol?: string;
}

const REQUIRED_COLUMNS = ['time', 'open', 'high', 'low', 'close'] as const;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parses OHLCV bars from CSV text with a header row: `time,symbol,open,high,low,close,volume`
 * in any order, case-insensitive. `symbol` may be left out when `defaultSymbol` is given,
 * `volume` defaults to 0. `time` is epoch milliseconds or ISO-8601 (UTC when it has no offset).
 * Blank lines and lines starting with `#` are skipped. Rows come back in file order.
 * @throws ValidationError naming the source and line, e.g. `bars.csv:7: high 9 is below close 10`.
 */
export function parseBarsCsv(text: string, options: ParseBarsCsvOptions = {}): Bar[] {
  return parseBarsCsvRows(text, options).map((row) => row.bar);
}

/** A parsed bar with its 1-based line number in the source. */
export interface CsvBarRow {
  bar: Bar;
  line: number;
}

/** parseBarsCsv, keeping each bar's line number (for later errors, e.g. duplicates). */
export function parseBarsCsvRows(text: string, options: ParseBarsCsvOptions = {}): CsvBarRow[] {
  const source = options.source ?? 'csv';
  const lines = text.split(/\r?\n/);
  let headerLine = -1;
  let header: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (isSkipped(lines[i]!)) continue;
    headerLine = i;
    header = splitCsvLine(lines[i]!, source, i + 1).map((h) => h.toLowerCase());
    break;
  }
  if (headerLine < 0) throw new ValidationError(`${source}: no header row (expected time,symbol,open,high,low,close,volume)`);
  const column = (name: string): number => header.indexOf(name);
  for (const name of REQUIRED_COLUMNS) {
    if (column(name) < 0) throw new ValidationError(`${source}:${headerLine + 1}: header has no ${name} column`);
  }
  const symbolCol = column('symbol');
  const volumeCol = column('volume');
  if (symbolCol < 0 && options.defaultSymbol === undefined) {
    throw new ValidationError(`${source}:${headerLine + 1}: header has no symbol column and the session has several symbols`);
  }

  const rows: CsvBarRow[] = [];
  for (let i = headerLine + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (isSkipped(line)) continue;
    const lineNo = i + 1;
    const fields = splitCsvLine(line, source, lineNo);
    if (fields.length !== header.length) {
      throw new ValidationError(`${source}:${lineNo}: expected ${header.length} fields, got ${fields.length}`);
    }
    const at = (col: number): string => fields[col]!;
    const num = (name: string): number => parseNumber(at(column(name)), name, source, lineNo);
    const symbol = symbolCol >= 0 ? at(symbolCol) : options.defaultSymbol!;
    if (!/^[A-Za-z0-9._/-]{1,32}$/.test(symbol)) {
      throw new ValidationError(`${source}:${lineNo}: symbol ${JSON.stringify(symbol)} is not a valid symbol`);
    }
    const bar: Bar = {
      symbol,
      time: parseTime(at(column('time')), source, lineNo),
      open: num('open'),
      high: num('high'),
      low: num('low'),
      close: num('close'),
      volume: volumeCol >= 0 ? parseNumber(at(volumeCol), 'volume', source, lineNo) : 0,
    };
    checkBar(bar, source, lineNo);
    rows.push({ bar, line: lineNo });
  }
  return rows;
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
  if (!Number.isFinite(n)) throw new ValidationError(`${source}:${lineNo}: ${name} ${JSON.stringify(text)} is not a number`);
  return n;
}

function parseTime(text: string, source: string, lineNo: number): number {
  if (/^\d+$/.test(text)) return Number(text);
  const m = ISO_DATE.exec(text);
  // Date.parse reads a date-time without offset as local time; bars must not depend on the host's zone.
  const iso = m !== null && m[1] === undefined && text.length > 10 ? `${text.replace(' ', 'T')}Z` : text.replace(' ', 'T');
  const t = m === null ? NaN : Date.parse(iso);
  if (!Number.isFinite(t)) {
    throw new ValidationError(`${source}:${lineNo}: time ${JSON.stringify(text)} is neither epoch milliseconds nor ISO-8601`);
  }
  return t;
}

function checkBar(bar: Bar, source: string, lineNo: number): void {
  const fail = (why: string): never => {
    throw new ValidationError(`${source}:${lineNo}: ${why}`);
  };
  for (const name of ['open', 'high', 'low', 'close'] as const) {
    if (bar[name] <= 0) fail(`${name} ${bar[name]} must be positive`);
  }
  if (bar.volume < 0) fail(`volume ${bar.volume} must not be negative`);
  if (bar.high < bar.low) fail(`high ${bar.high} is below low ${bar.low}`);
  if (bar.high < bar.open) fail(`high ${bar.high} is below open ${bar.open}`);
  if (bar.high < bar.close) fail(`high ${bar.high} is below close ${bar.close}`);
  if (bar.low > bar.open) fail(`low ${bar.low} is above open ${bar.open}`);
  if (bar.low > bar.close) fail(`low ${bar.low} is above close ${bar.close}`);
}
