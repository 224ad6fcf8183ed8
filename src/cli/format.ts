/** Renders rows as an aligned text table. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

/** One record as `key  value` lines. */
export function record(r: Record<string, unknown>): string {
  const keys = Object.keys(r);
  const w = Math.max(...keys.map((k) => k.length));
  return keys.map((k) => `${k.padEnd(w)}  ${cell(r[k])}`).join('\n');
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.every((x) => typeof x !== 'object') ? v.join(',') : JSON.stringify(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Money: two decimals, thousands unseparated (scripts parse it), `-` when absent. */
export function money(v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : '-';
}

/** A quantity or price as the venue gave it: no float noise (up to 8 decimals, trailing zeros dropped). */
export function qty(v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '-';
  return String(Number(v.toFixed(8)));
}

/** A percentage with two decimals. */
export function pct(v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(2)}%` : '-';
}
