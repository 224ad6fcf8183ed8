/** Something the scheduler can hold: the scheduler owns `scheduleToken`, nothing else touches it. */
export interface Schedulable {
  /** Bumped on every schedule/cancel: heap entries with an older token are dead. @internal */
  scheduleToken: number;
}

interface Entry<T> {
  at: number;
  seq: number;
  item: T;
  token: number;
}

/**
 * One timer for thousands of runners: a min-heap of due times. When the earliest entry is due, every
 * entry due by then is handed to `onDue` at once, so the caller can batch them into pool tasks.
 * Cancelling is lazy (a token), so reschedule and cancel are O(log n) and O(1).
 * @internal
 */
export class StepScheduler<T extends Schedulable> {
  readonly #heap: Entry<T>[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #armedAt = Infinity;
  #closed = false;

  /**
   * @param coalesceMs fire this long after the earliest due time, so entries due within that window are
   * handed over together (bigger batches, fewer transactions) at the cost of that much latency.
   */
  constructor(
    private readonly onDue: (items: T[]) => void,
    private readonly coalesceMs = 0,
    private readonly now: () => number = Date.now,
  ) {}

  /** Number of live and dead entries (dead ones are dropped as they surface). */
  get size(): number {
    return this.#heap.length;
  }

  /** (Re)schedules `item` at `at` (epoch ms); replaces any earlier schedule of it. */
  schedule(item: T, at: number): void {
    if (this.#closed) return;
    const token = ++item.scheduleToken;
    this.#push({ at, seq: this.#seq++, item, token });
    this.#arm(at);
  }

  /**
   * Due now, without the coalescing window: for a wake-up that many items get in the same turn of the event
   * loop (a venue stream's bar reaching every session on it), so they are handed over together anyway.
   */
  scheduleNow(item: T): void {
    this.schedule(item, this.now() - this.coalesceMs);
  }

  cancel(item: T): void {
    item.scheduleToken++;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#heap.length = 0;
  }

  #arm(at: number): void {
    if (at >= this.#armedAt) return;
    this.#armedAt = at;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const delay = at + this.coalesceMs - this.now();
    if (delay <= 0) {
      this.#immediate ??= setImmediate(() => this.#fire());
    } else {
      this.#timer = setTimeout(() => this.#fire(), delay);
    }
  }

  #fire(): void {
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#armedAt = Infinity;
    if (this.#closed) return;
    const now = this.now();
    const due: T[] = [];
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (top.token !== top.item.scheduleToken) {
        this.#pop();
        continue;
      }
      // Timers fire up to a millisecond early or late: treat "due within 1 ms" as due.
      if (top.at > now + 1) break;
      this.#pop();
      top.item.scheduleToken++;
      due.push(top.item);
    }
    if (this.#heap.length > 0) this.#arm(this.#heap[0]!.at);
    if (due.length > 0) this.onDue(due);
  }

  #push(e: Entry<T>): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): Entry<T> | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less<T>(a: Entry<T>, b: Entry<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
