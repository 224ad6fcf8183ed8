import { z } from 'zod';

/** Size limits on command data (VALIDATION_ERROR naming the field and the limit when exceeded). */
export const LIMITS = {
  /** The whole job data, as the JSON BullMQ stored. */
  jobDataBytes: 64 * 1024,
  /** Free-form JSON objects: strategy params, backtest params. */
  paramsBytes: 16 * 1024,
  /** Nesting depth of those objects. */
  paramsDepth: 16,
  /** reason, stopReason texts. */
  reasonChars: 1000,
  /** dataRef of a recorded backtest. */
  dataRefChars: 1024,
  /** symbols of one session. */
  symbols: 100,
} as const;

/** Bytes of a value as JSON (UTF-8), or Infinity when it cannot be serialized. */
export function jsonBytes(value: unknown): number {
  try {
    const s = JSON.stringify(value);
    return s === undefined ? 0 : Buffer.byteLength(s, 'utf8');
  } catch {
    return Infinity;
  }
}

/** Nesting depth of a JSON-like value, walked without recursion (a deep value must not overflow the stack). */
export function jsonDepth(value: unknown, stopAt = Infinity): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > stopAt) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) stack.push([child, depth]);
  }
  return max;
}

/** A JSON object of bounded size and depth: params of strategies and backtests. */
export function boundedParams(maxBytes: number = LIMITS.paramsBytes, maxDepth: number = LIMITS.paramsDepth) {
  return z
    .record(z.string(), z.unknown())
    .superRefine((v, ctx) => {
      const depth = jsonDepth(v, maxDepth);
      if (depth > maxDepth) ctx.addIssue({ code: 'custom', message: `nests deeper than the limit of ${maxDepth} levels` });
      else {
        const bytes = jsonBytes(v);
        if (bytes > maxBytes) ctx.addIssue({ code: 'custom', message: `is ${Number.isFinite(bytes) ? bytes : 'unserializable'} bytes as JSON; the limit is ${maxBytes}` });
      }
    });
}
