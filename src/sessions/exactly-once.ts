import { SessiondError, toSessiondError, type ErrorCode } from '../domain/errors.js';
import type { CommandLog, CommandRecord } from '../persistence/ports.js';

/** Whether the command's record was already written inside the transaction that applied it. */
export interface Recorded {
  done: boolean;
}

export interface CommandIdentity {
  /** Without an id there is nothing to deduplicate: the command just runs. */
  id?: string | undefined;
  name: string;
  sessionId?: string | undefined;
}

/** A stored outcome, returned or thrown again. */
export function replayOutcome(prior: CommandRecord): unknown {
  if (prior.outcome === 'ok') return prior.result;
  throw new SessiondError((prior.errorCode ?? 'INTERNAL') as ErrorCode, prior.errorMessage ?? 'failed', prior.errorDetails);
}

/**
 * Records a rejection unless the command already has an outcome. A storage fault is not an outcome: the
 * command was not applied (and could not be recorded anyway), so the same id may be applied later.
 */
export function recordFailure(log: CommandLog, cmd: CommandIdentity & { id: string }, e: SessiondError, now: () => Date): void {
  if (e.code === 'STORAGE_UNAVAILABLE') return;
  if (log.get(cmd.id)) return;
  log.record({
    id: cmd.id,
    name: cmd.name,
    sessionId: cmd.sessionId,
    outcome: 'error',
    errorCode: e.code,
    errorMessage: e.message,
    errorDetails: e.details,
    appliedAt: now().toISOString(),
  });
}

/**
 * Exactly-once effect: a command id already in the log returns (or throws) its first outcome and changes
 * nothing; otherwise `fn` runs and its outcome is recorded, unless `fn` recorded it in its own transaction.
 */
export async function exactlyOnce<T>(log: CommandLog, cmd: CommandIdentity, now: () => Date, fn: (recorded: Recorded) => Promise<T>): Promise<T> {
  if (cmd.id) {
    const prior = log.get(cmd.id);
    if (prior) return replayOutcome(prior) as T;
  }
  const recorded: Recorded = { done: false };
  try {
    const result = await fn(recorded);
    if (cmd.id && !recorded.done) {
      log.record({ id: cmd.id, name: cmd.name, sessionId: cmd.sessionId, outcome: 'ok', result, appliedAt: now().toISOString() });
    }
    return result;
  } catch (err) {
    const e = toSessiondError(err);
    if (cmd.id) recordFailure(log, { ...cmd, id: cmd.id }, e, now);
    throw e;
  }
}
