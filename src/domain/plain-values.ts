/**
 * Checks of values as JSON.parse makes them, for the fast paths that stand beside a zod schema (a restart checks
 * 10,000 rows): each accepts only what the schema would, the schema decides everything else.
 */

/** An object literal: not null, not an array, Object's own prototype. */
export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** A number that is not NaN or infinite. */
export const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
