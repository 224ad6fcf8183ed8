export interface UntilOptions {
  /** @defaultValue 20 */
  pollMs?: number;
  /** Treat a throw as "not yet" (e.g. a file another process has not created). @defaultValue false */
  retryOnError?: boolean;
}

export type Until = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs?: number) => Promise<T>;

/** A poller that resolves with fn's first value other than undefined/false (fn may be async), or fails naming what it waited for. */
export function untilWithin(defaultTimeoutMs: number, options: UntilOptions = {}): Until {
  const pollMs = options.pollMs ?? 20;
  return async (what, fn, timeoutMs = defaultTimeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let v;
      try {
        v = await fn();
      } catch (err) {
        if (!options.retryOnError) throw err;
        v = undefined;
      }
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };
}
