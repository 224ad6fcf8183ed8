/**
 * Runs tasks one at a time per key, in the order they were enqueued; different keys run in parallel.
 * Enqueueing is synchronous, so callers that enqueue in submission order get submission order.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T> | T): Promise<T> {
    const prev = this.tails.get(key);
    const result = prev ? prev.then(task) : Promise.resolve().then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  keys(): string[] {
    return [...this.tails.keys()];
  }

  /** Resolves when everything queued so far has settled. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
