import type { LiveEvent } from '../sessions/live-events.js';
import type { WebhookNotifier } from './webhook-notifier.js';

/**
 * Which daemon happenings become alerts, and their text:
 * - a transition with event RISK_BREACH: `risk_breach`; RUNNER_FAILED: `runner_failed`;
 * - a transition whose source is `reconcile` (a venue reconciliation that paused or stopped a session):
 *   `reconcile_mismatch`;
 * - an order moving to `rejected`: `order_rejected`;
 * - a completed `kill-switch` command: `kill_switch`;
 * - the daemon ready and the daemon stopping: `daemon_started`, `daemon_stopping`.
 */
export class Alerts {
  constructor(private readonly notifier: WebhookNotifier) {}

  live(e: LiveEvent): void {
    if (!this.notifier.enabled) return;
    if (e.type === 'transition') {
      const t = e.transition;
      const session = e.session;
      const data = { session, transition: t };
      if (t.event === 'RISK_BREACH') {
        this.notifier.notify('risk_breach', { sessionId: session.id, text: `session ${session.id} paused on a risk breach: ${t.reason ?? ''}`.trim(), data });
      } else if (t.event === 'RUNNER_FAILED') {
        this.notifier.notify('runner_failed', { sessionId: session.id, text: `session ${session.id} stopped: runner failed: ${session.error ?? t.reason ?? ''}`.trim(), data });
      } else if (t.source === 'reconcile') {
        this.notifier.notify('reconcile_mismatch', { sessionId: session.id, text: `session ${session.id} ${t.to} after reconciliation: ${t.reason ?? ''}`.trim(), data });
      }
      return;
    }
    if (e.status === 'rejected') {
      const o = e.order;
      const what = o ? `${o.side} ${o.qty} ${o.symbol}` : e.clientOrderId;
      this.notifier.notify('order_rejected', {
        sessionId: e.sessionId,
        text: `session ${e.sessionId}: order ${what} rejected${o?.reason ? `: ${o.reason}` : ''}`,
        data: { clientOrderId: e.clientOrderId, order: o },
      });
    }
  }

  /** A command finished (daemon hook onOutcome). */
  outcome(o: { name: string; outcome: string; commandId: string }): void {
    if (o.name === 'kill-switch' && o.outcome === 'ok') {
      this.notifier.notify('kill_switch', { text: `kill-switch applied (command ${o.commandId})`, data: { commandId: o.commandId } });
    }
  }

  daemonStarted(data: Record<string, unknown>): void {
    this.notifier.notify('daemon_started', { text: `daemon started: ${String(data.recovered ?? 0)} sessions recovered`, data });
  }

  daemonStopping(data: Record<string, unknown>): void {
    this.notifier.notify('daemon_stopping', { text: `daemon stopping (${String(data.signal ?? 'signal')})`, data });
  }
}
