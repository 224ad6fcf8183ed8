import type { LiveEvent } from '../sessions/live-events.js';

export type { LiveEvent, OrderLiveEvent, TransitionEvent } from '../sessions/live-events.js';

export type LiveListener = (event: LiveEvent) => void;

/**
 * Fan-out of committed transitions and order changes to open pages (server-sent events) and to the
 * Redis channel `sessionctl watch` reads. Publishing never throws: a failing listener is dropped, and the
 * command that caused the event is already committed, so it must not be affected.
 */
export class EventBus {
  private readonly listeners = new Set<LiveListener>();

  /** Returns the unsubscribe function. */
  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: LiveEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        this.listeners.delete(l);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
