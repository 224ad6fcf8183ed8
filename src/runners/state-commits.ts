import { fnv1a } from '../market-data/synthetic-feed.js';
import type { EquityPoint, RunnerStateRecord } from '../persistence/runner-state-repository.js';
import type { ResolvedRunnerOptions } from './runner-options.js';
import type { SessionRunner } from './session-runner.js';

/**
 * What the runners write besides orders: each session's record (strategy state, cursor, equity statistics),
 * its marked positions and its equity points, collected in memory and written together by `flush`, in one
 * transaction per batch. `stateCommitMs` spaces a running session's record writes; `markPersistMs` its marks.
 * @internal
 */
export class StateCommits {
  readonly #dirty = new Set<SessionRunner>();
  readonly #equityPoints: { sessionId: string; point: EquityPoint }[] = [];

  constructor(private readonly o: ResolvedRunnerOptions) {}

  /** The record changed; it is written with the next flush when `force` or stateCommitMs has passed. */
  markDirty(r: SessionRunner, force = false): void {
    r.dirty = true;
    const now = Date.now();
    // A phase per session inside stateCommitMs (from its id): sessions started together do not all write
    // their states in the same batch every stateCommitMs.
    if (r.lastStateSaveAt === 0 && this.o.stateCommitMs > 0) r.lastStateSaveAt = now - (fnv1a(r.id) % this.o.stateCommitMs);
    if (force || now - r.lastStateSaveAt >= this.o.stateCommitMs) this.#dirty.add(r);
  }

  /** What stateCommitMs held back goes with the next flush (pause, stop, shutdown). */
  commitHeldBack(r: SessionRunner): void {
    if (r.dirty) this.#dirty.add(r);
  }

  /** Written with the next flush whatever stateCommitMs says. */
  force(r: SessionRunner): void {
    this.#dirty.add(r);
  }

  /** A point of the session's equity curve, written with the next flush. */
  addEquity(sessionId: string, point: EquityPoint): void {
    this.#equityPoints.push({ sessionId, point });
  }

  /** Forgets everything pending (a storage fault: nothing in memory is trusted any more). */
  discard(): void {
    this.#dirty.clear();
    this.#equityPoints.length = 0;
  }

  transact<T>(fn: () => T): T {
    return this.o.runnerStates.transaction(fn);
  }

  /** Writes the pending commits (runner state, marked positions, equity points) in one transaction. */
  flush(): void {
    if (this.#dirty.size === 0 && this.#equityPoints.length === 0) return;
    const at = this.o.now().toISOString();
    const wall = Date.now();
    const records: RunnerStateRecord[] = [];
    const marked: SessionRunner[] = [];
    for (const r of this.#dirty) {
      r.record.updatedAt = at;
      // The feed's restore point, when it stands at the record's cursor (not with a step's bars read ahead).
      if (r.feed.checkpoint !== undefined && r.feed.cursor === r.record.cursor) r.record.feedCheckpoint = r.feed.checkpoint();
      records.push(r.record);
      r.dirty = false;
      r.lastStateSaveAt = wall;
      if (r.positionsMarked && (wall - r.lastMarkSaveAt >= this.o.markPersistMs || r.status !== 'running')) {
        r.positionsMarked = false;
        r.lastMarkSaveAt = wall;
        marked.push(r);
      }
    }
    this.#dirty.clear();
    const points = this.#equityPoints.splice(0);
    this.o.orders.transaction(() => {
      this.o.runnerStates.saveMany(records);
      for (const r of marked) this.o.orders.updatePositions(r.id, [...r.positions.values()], at);
      for (const e of points) this.o.runnerStates.addEquity(e.sessionId, e.point);
    });
  }
}
