import { createHash } from 'node:crypto';

/** Characters every venue here accepts in a client order id (Binance allows `[A-Za-z0-9._:/-]`, at most 36). */
export const CLIENT_ID_PREFIX_PATTERN = /^[A-Za-z0-9]{1,6}-$/;

/** Total length of the ids made here: fits Binance (36) and Alpaca (48). */
export const VENUE_CLIENT_ID_LENGTH = 32;

const SESSION_TAG_LENGTH = 8;

function hex(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** The session part of a venue client id: lets reconciliation attribute an order it never recorded. */
export function sessionTag(sessionId: string): string {
  return hex(`session:${sessionId}`, SESSION_TAG_LENGTH);
}

/**
 * The id an order carries at its venue: `<prefix><session tag 8 hex>-<hash of the internal id>`, 32
 * characters of `[A-Za-z0-9-]`. Deterministic: the same internal order always gets the same venue id, so a
 * lookup after a crash finds what was sent. The internal id (`${sessionId}:${signal.key}`) may be 256+
 * characters; the venue id is stored beside it.
 *
 * @example
 * venueClientOrderId('sd-', 's1', 's1:buy-1'); // 'sd-3b1f5c2a-9e0d1c7b5a4f3e2d1c0b'
 */
export function venueClientOrderId(prefix: string, sessionId: string, clientOrderId: string): string {
  const head = `${prefix}${sessionTag(sessionId)}-`;
  return head + hex(`order:${clientOrderId}`, VENUE_CLIENT_ID_LENGTH - head.length);
}

/** The session tag inside a venue client id made with this prefix, or undefined when it is not ours. */
export function sessionTagOf(prefix: string, venueClientOrderId: string): string | undefined {
  if (!venueClientOrderId.startsWith(prefix) || venueClientOrderId.length !== VENUE_CLIENT_ID_LENGTH) return undefined;
  const tag = venueClientOrderId.slice(prefix.length, prefix.length + SESSION_TAG_LENGTH);
  return /^[0-9a-f]{8}$/.test(tag) && venueClientOrderId[prefix.length + SESSION_TAG_LENGTH] === '-' ? tag : undefined;
}
