/** The queue contract's default names, and the live-events channel derived from them (no zod: the CLI imports it). */
export const DEFAULT_QUEUE_NAME = 'session-commands';
export const DEFAULT_QUEUE_PREFIX = 'sessiond';

/**
 * The Redis pub/sub channel the daemon publishes live events on (JSON: transitions and order changes),
 * read by `sessionctl watch`. Best effort: a subscriber sees what happens while it is subscribed.
 */
export function liveChannel(prefix: string, queueName: string): string {
  return `${prefix}:${queueName}:live`;
}
