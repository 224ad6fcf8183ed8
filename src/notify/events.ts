/** Events a webhook can subscribe to (`notify.webhooks[].events`). */
export const NOTIFY_EVENTS = [
  'risk_breach',
  'runner_failed',
  'reconcile_mismatch',
  'order_rejected',
  'kill_switch',
  'daemon_started',
  'daemon_stopping',
] as const;
export type NotifyEventType = (typeof NOTIFY_EVENTS)[number];

/** What a webhook receives as its JSON body. */
export interface NotifyPayload {
  /** Unique per alert: receivers can drop a retried duplicate. */
  id: string;
  event: NotifyEventType;
  at: string;
  sessionId?: string | undefined;
  /** One human line, ready for chat: Slack incoming webhooks and Telegram's sendMessage both read `text`. */
  text: string;
  /** Event details (session view, order, reason, ...). */
  data: Record<string, unknown>;
  source: { service: 'sessiond'; host: string; pid: number };
}
