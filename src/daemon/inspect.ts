import { createWebSocketInspector } from '@statelyai/inspect';
import type { Logger } from 'pino';
import type { InspectionEvent } from 'xstate';

export interface InspectRelayOptions {
  /** The port of the operator's Stately inspector WebSocket server (config `inspect.port`). */
  port: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  logger?: Logger | undefined;
}

export interface InspectRelay {
  /** Pass as the daemon's `inspect` hook: every session actor's inspection events go through it. */
  inspect(event: InspectionEvent): void;
  /** Idempotent. */
  close(): void;
}

/**
 * Relays XState inspection events of every session actor to a Stately inspector over WebSocket
 * (`createWebSocketInspector` connects out to ws://host:port, e.g. a server started with
 * `createInspectorServer({ port })` from '@statelyai/inspect/server'). While nothing listens there,
 * the inspector keeps the latest events in memory (bounded) and retries every few seconds;
 * the daemon is never slowed or stopped by it.
 *
 * Snapshots carry the session context only (ids, timestamps, reasons): broker credentials never
 * enter a session actor, so nothing secret is relayed.
 */
export function createInspectRelay(options: InspectRelayOptions): InspectRelay {
  const url = `ws://${options.host ?? '127.0.0.1'}:${options.port}`;
  const inspector = createWebSocketInspector({ url, autoStart: true, maxDeferredEvents: 500 });
  options.logger?.info({ url }, 'relaying XState inspection events');
  let closed = false;
  return {
    inspect(event) {
      if (closed) return;
      try {
        inspector.inspect.next?.(event);
      } catch (err) {
        // An inspector problem must never fail a command: the event is dropped.
        options.logger?.debug({ err: (err as Error).message }, 'inspection event dropped');
      }
    },
    close() {
      if (closed) return;
      closed = true;
      inspector.stop();
    },
  };
}
