import { z } from 'zod';
import { InternalError } from '../domain/errors.js';
import { isPlainObject } from '../domain/plain-values.js';
import type { Session } from '../domain/session.js';

/**
 * What a non-stopped session's persisted actor snapshot must be for the actor to be restored from it: an
 * active snapshot (XState's getPersistedSnapshot) in the row's state, of this session. Extra keys
 * (historyValue, children, optional context fields) are XState's and are kept as they are.
 */
const RestorableSnapshotSchema = z.looseObject({
  status: z.literal('active'),
  value: z.enum(['created', 'running', 'paused']),
  context: z.looseObject({ sessionId: z.string(), createdAt: z.string(), updatedAt: z.string() }),
});

/**
 * RestorableSnapshotSchema's fast path (a restart checks 10,000 snapshots): true only for snapshots the schema
 * accepts; anything else goes to the schema, which decides and words the error.
 * @internal exported for its test against the schema
 */
export function isPlainRestorable(s: unknown): s is { value: string; context: { sessionId: string } } {
  if (!isPlainObject(s) || s.status !== 'active' || (s.value !== 'created' && s.value !== 'running' && s.value !== 'paused') || !isPlainObject(s.context)) return false;
  const c = s.context;
  return typeof c.sessionId === 'string' && typeof c.createdAt === 'string' && typeof c.updatedAt === 'string';
}

/** @internal The schema's own verdict, for the fast path's test. */
export function restorableSchemaAccepts(s: unknown): boolean {
  return RestorableSnapshotSchema.safeParse(s).success;
}

/**
 * Checks that the row and its snapshot agree before the session is held in memory (recovery) and before its
 * actor is made from the snapshot (at its first event): an INTERNAL error naming the session otherwise.
 */
export function checkRestorable(session: Session, snapshot: unknown): void {
  let s: { value: string; context: { sessionId: string } };
  if (isPlainRestorable(snapshot)) s = snapshot;
  else {
    const parsed = RestorableSnapshotSchema.safeParse(snapshot);
    if (!parsed.success) {
      const value = (snapshot as { value?: unknown } | null)?.value;
      if (typeof value === 'string' && value !== session.status) {
        throw new InternalError(`session ${session.id}: row says ${session.status} but its snapshot says ${value}`);
      }
      throw new InternalError(`session ${session.id}: its snapshot is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    }
    s = parsed.data;
  }
  if (s.value !== session.status) throw new InternalError(`session ${session.id}: row says ${session.status} but its snapshot says ${s.value}`);
  if (s.context.sessionId !== session.id) throw new InternalError(`session ${session.id}: its snapshot is of session ${s.context.sessionId}`);
}
