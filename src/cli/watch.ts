import { Redis } from 'ioredis';
import { liveChannel } from '../commands/queue-names.js';
import type { LiveEvent } from '../sessions/live-events.js';

export interface WatchOptions {
  redisUrl: string;
  queueName: string;
  prefix: string;
  /** Only this session's events. */
  sessionId?: string | undefined;
  /** Resolve after this many events (default: until SIGINT/SIGTERM). */
  max?: number | undefined;
  onEvent(event: LiveEvent): void;
  /** Called once subscribed (tests wait for it before causing events). */
  onReady?: () => void;
}

function sessionOf(e: LiveEvent): string {
  return e.type === 'transition' ? e.session.id : e.sessionId;
}

/** Subscribes to the daemon's live channel and reports each event until `max` or a signal. */
export async function watchLive(o: WatchOptions): Promise<void> {
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.subscribe(liveChannel(o.prefix, o.queueName));
    process.stderr.write(`watching ${o.sessionId ?? 'every session'} (Ctrl-C to end)\n`);
    o.onReady?.();
    await new Promise<void>((resolve) => {
      let seen = 0;
      const end = () => resolve();
      process.once('SIGINT', end);
      process.once('SIGTERM', end);
      redis.on('message', (_channel: string, text: string) => {
        let event: LiveEvent;
        try {
          event = JSON.parse(text) as LiveEvent;
        } catch {
          return;
        }
        if (o.sessionId !== undefined && sessionOf(event) !== o.sessionId) return;
        o.onEvent(event);
        if (o.max !== undefined && ++seen >= o.max) end();
      });
    });
  } finally {
    redis.disconnect();
  }
}
