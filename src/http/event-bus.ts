import type { SessionView } from '../domain/session.js';
import type { TransitionRecord } from '../persistence/ports.js';

/** What the live view receives: a committed transition and the session as it now is. */
export interface TransitionEvent {
  type: 'transition';
  session: SessionView;
  transition: TransitionRecord;
}

export type LiveEvent = TransitionEvent;

export type LiveListener = (event: LiveEvent) => void;

/**
 * Fan-out of committed transitions to open visualizer pages (server-sent events).
 * Publishing never throws: a failing listener is dropped, and the command that caused the event is
 * already committed, so it must not be affected.
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
