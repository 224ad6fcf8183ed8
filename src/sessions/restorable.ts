import { z } from 'zod';
import { InternalError } from '../domain/errors.js';
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
 * Checks that the row and its snapshot agree before the session is held in memory (recovery) and before its
 * actor is made from the snapshot (at its first event): an INTERNAL error naming the session otherwise.
 */
export function checkRestorable(session: Session, snapshot: unknown): void {
  const parsed = RestorableSnapshotSchema.safeParse(snapshot);
  if (!parsed.success) {
    const value = (snapshot as { value?: unknown } | null)?.value;
    if (typeof value === 'string' && value !== session.status) {
      throw new InternalError(`session ${session.id}: row says ${session.status} but its snapshot says ${value}`);
    }
    throw new InternalError(`session ${session.id}: its snapshot is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  }
  const s = parsed.data;
  if (s.value !== session.status) throw new InternalError(`session ${session.id}: row says ${session.status} but its snapshot says ${s.value}`);
  if (s.context.sessionId !== session.id) throw new InternalError(`session ${session.id}: its snapshot is of session ${s.context.sessionId}`);
}
