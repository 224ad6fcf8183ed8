import type { OrderStatus } from '../domain/order.js';
import type { SessionView } from '../domain/session.js';
import type { StoredOrder } from '../persistence/order-repository.js';
import type { TransitionRecord } from '../persistence/ports.js';

/** A committed transition and the session as it now is. */
export interface TransitionEvent {
  type: 'transition';
  session: SessionView;
  transition: TransitionRecord;
}

/** An order of a session changed status (placed, held for approval, filled, rejected, ...). */
export interface OrderLiveEvent {
  type: 'order';
  sessionId: string;
  clientOrderId: string;
  status: OrderStatus;
  /** The order as persisted after the change, when it could be read. */
  order?: StoredOrder | undefined;
  at: string;
}

/** What the page (server-sent events) and `sessionctl watch` (Redis pub/sub) receive. */
export type LiveEvent = TransitionEvent | OrderLiveEvent;
