import type { CommandSequenceLog } from '../persistence/sqlite-command-sequence.js';

/** Lifecycle commands that may carry a per-session `seq` (their order matters; reads and others do not). */
export const SEQUENCED_COMMANDS: ReadonlySet<string> = new Set(['start', 'pause', 'resume', 'stop']);

/** The Redis key a submitter INCRs for a session's next `seq`: `<prefix>:<queue>:seq:<sessionId>`. */
export function sequenceKey(prefix: string, queueName: string, sessionId: string): string {
  return `${prefix}:${queueName}:seq:${sessionId}`;
}

export type Admission =
  /** The session's next number: apply now (then `settled`). */
  | { kind: 'now' }
  /** The same command again (a redelivery): its recorded outcome answers, order is not at stake. */
  | { kind: 'replay' }
  /** An earlier number of the session has not been applied yet: hold this one. */
  | { kind: 'hold'; expected: number; heldMs: number }
  /** Its place was skipped (it came too late): applying it now would break the order. */
  | { kind: 'reject'; reason: string; next: number }
  /**
   * Its number was already taken by another command: the session's counter was reset (Redis lost its data).
   * Applied in arrival order, like a job without `seq`; the counter is moved past the settled numbers.
   */
  | { kind: 'stale'; takenBy: string | undefined; next: number };

/**
 * Applies each session's sequenced commands strictly in `seq` order, whatever order BullMQ delivers them in (a
 * job that stalled and was redelivered late, a fetch reply lost when Redis went away). Synchronous: admit and
 * apply happen in the same tick, so concurrent deliveries of one session cannot both take the same number.
 */
export class SequenceGate {
  private readonly nextSeq = new Map<string, number>();
  /** Numbers admitted but not yet settled in the log: seq -> command id. */
  private readonly inflight = new Map<string, Map<number, string>>();
  /** Since when a session has been waiting for its next number. */
  private readonly blocked = new Map<string, { expected: number; since: number }>();

  constructor(
    private readonly log: CommandSequenceLog,
    /** True when the command id already has a recorded outcome. */
    private readonly known: (commandId: string) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** The next number the session expects. */
  next(sessionId: string): number {
    let n = this.nextSeq.get(sessionId);
    if (n === undefined) {
      n = this.log.last(sessionId) + 1;
      this.nextSeq.set(sessionId, n);
    }
    return n;
  }

  admit(sessionId: string, seq: number, commandId: string): Admission {
    const next = this.next(sessionId);
    if (seq === next) return { kind: 'now' };
    if (seq < next) {
      if (this.inflight.get(sessionId)?.get(seq) === commandId) return { kind: 'replay' };
      const entry = this.log.get(sessionId, seq);
      if (entry?.commandId === commandId || this.known(commandId)) return { kind: 'replay' };
      if (entry?.outcome === 'skipped') {
        return { kind: 'reject', next, reason: `command ${commandId} (seq ${seq} of session ${sessionId}) arrived after its place was skipped: ${entry.reason ?? 'it did not arrive in time'}` };
      }
      return { kind: 'stale', takenBy: entry?.commandId ?? this.inflight.get(sessionId)?.get(seq), next };
    }
    if (this.known(commandId)) return { kind: 'replay' };
    const b = this.blocked.get(sessionId);
    if (!b || b.expected !== next) {
      this.blocked.set(sessionId, { expected: next, since: this.now() });
      return { kind: 'hold', expected: next, heldMs: 0 };
    }
    return { kind: 'hold', expected: next, heldMs: this.now() - b.since };
  }

  /** The admitted command is on its way (call in the same tick as `admit`). */
  taken(sessionId: string, seq: number, commandId: string): void {
    this.nextSeq.set(sessionId, seq + 1);
    let m = this.inflight.get(sessionId);
    if (!m) this.inflight.set(sessionId, (m = new Map()));
    m.set(seq, commandId);
    if (this.blocked.get(sessionId)?.expected === seq) this.blocked.delete(sessionId);
  }

  /** The command's outcome is recorded: its number is settled for good. */
  settled(sessionId: string, seq: number, commandId: string, at: string): void {
    this.log.record(sessionId, { seq, commandId, outcome: 'settled' }, at);
    const m = this.inflight.get(sessionId);
    m?.delete(seq);
    if (m?.size === 0) this.inflight.delete(sessionId);
  }

  /** The missing number is still on its way (found pending in the queue): wait a full gap again. */
  stillComing(sessionId: string): void {
    const b = this.blocked.get(sessionId);
    if (b) b.since = this.now();
  }

  /** Gives up on the session's next number: recorded as skipped, with why. Returns false if it moved meanwhile. */
  skip(sessionId: string, seq: number, reason: string, at: string): boolean {
    if (this.next(sessionId) !== seq) return false;
    this.log.record(sessionId, { seq, outcome: 'skipped', reason }, at);
    this.nextSeq.set(sessionId, seq + 1);
    this.blocked.delete(sessionId);
    return true;
  }
}
