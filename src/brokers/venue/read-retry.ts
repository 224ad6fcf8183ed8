import { VenueError } from './venue-client.js';

export interface ReadRetryOptions {
  /** @defaultValue 3 */
  attempts?: number;
  /** First wait; doubles each attempt. @defaultValue 100 */
  baseMs?: number;
  /** Wait after a 429 / DDoSProtection answer. @defaultValue 1000 */
  rateLimitedMs?: number;
}

/**
 * Runs a READ again after an answer that says nothing about the data (timeout, reset, 5xx, 429), with
 * backoff. Never wrap a placement in this: a placement whose outcome is unknown is resolved by lookups.
 */
export async function withReadRetry<T>(fn: () => Promise<T>, o: ReadRetryOptions = {}): Promise<T> {
  const attempts = o.attempts ?? 3;
  let wait = o.baseMs ?? 100;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const retryable = err instanceof VenueError && (err.kind === 'unknown' || err.kind === 'rate_limited' || err.kind === 'unavailable');
      if (!retryable || i >= attempts) throw err;
      const ms = (err as VenueError).kind === 'rate_limited' ? Math.max(wait, o.rateLimitedMs ?? 1000) : wait;
      await new Promise((r) => setTimeout(r, ms));
      wait *= 2;
    }
  }
}
