/**
 * The one rule every id a command carries or derives obeys: command ids (BullMQ job ids), session ids
 * (given, or `s-<commandId>` derived by a `start` without one), the ids of orders and backtests made from
 * them. Letters, digits and `. _ : -`, starting with a letter or digit, at most 128 characters: no HTML,
 * no `../`, no quotes, no whitespace or control characters, no bidi overrides, nothing long.
 * (BullMQ itself refuses custom job ids containing `:` or made only of digits; numeric ids are BullMQ's own.)
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const ID_MAX_LENGTH = 128;
export const ID_RULE = 'letters, digits and . _ : - only, starting with a letter or digit, at most 128 characters';

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** The session id a `start` without `id` gets from its command id. */
export function derivedSessionId(commandId: string): string {
  return `s-${commandId}`;
}

/** A short, printable form of an untrusted id for error messages and logs (never echoes 100 kB or controls). */
export function describeId(id: unknown): string {
  if (typeof id !== 'string') return `a ${id === null ? 'null' : typeof id}`;
  const shown = JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}...` : id);
  return id.length > 40 ? `${shown} (${id.length} characters)` : shown;
}
