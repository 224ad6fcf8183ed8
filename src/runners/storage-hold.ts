import type { Broker } from '../brokers/broker.js';
import { isStorageFault } from '../domain/errors.js';
import type { Session } from '../domain/session.js';
import { message, wire } from './runner-errors.js';
import type { RunnerContext } from './runner-context.js';

/**
 * A storage fault (disk full, I/O error): every runner is held as if the daemon had crashed at this point.
 * Nothing in memory is trusted or written any more, no session's status changes, no failure is counted.
 * Once SQLite writes again, each held session's runner is rebuilt from what is persisted, exactly as after
 * a restart (the step that was caught runs again; its orders are keyed, so none is placed twice).
 * @internal
 */
export class StorageHold {
  /** Sessions whose runner is held because SQLite could not write; rebuilt from SQLite once it can. */
  readonly #held = new Set<string>();
  #releaseScheduled = false;
  /** Brokers of the held runners: those keeping state in memory reread it before the runners are rebuilt. */
  readonly #brokers = new Set<Broker>();

  constructor(
    private readonly c: RunnerContext,
    /** Rebuilds a session's runner from what is persisted (RunnerService.restore). */
    private readonly restore: (session: Session) => Promise<void>,
    /** After a release: stops a crash or the fault interrupted are finished. */
    private readonly afterRelease: () => Promise<void>,
  ) {}

  get size(): number {
    return this.#held.size;
  }

  /** @returns false (and does nothing) when `err` is not a storage fault */
  hold(sessionId: string | undefined, err: unknown): boolean {
    if (!isStorageFault(err)) return false;
    const { o, runners } = this.c;
    const first = this.#held.size === 0;
    for (const r of runners.values()) {
      this.#held.add(r.id);
      this.#brokers.add(r.broker);
      r.status = 'closed';
      r.epoch++;
      r.inFlight = false;
      r.dirty = false;
      this.c.clock.cancel(r);
    }
    if (sessionId !== undefined) this.#held.add(sessionId);
    runners.clear();
    this.c.commits.discard();
    o.storage?.report(err);
    if (first) o.logger?.error({ err: message(err), held: this.#held.size }, 'SQLite cannot write: runners hold, statuses unchanged');
    if (!this.#releaseScheduled && !this.c.closing()) {
      this.#releaseScheduled = true;
      const release = (): void => void this.release();
      if (o.storage !== undefined) o.storage.whenWritable(release);
      else setTimeout(release, 1000).unref();
    }
    return true;
  }

  /** SQLite writes again: held sessions get their runners back from what is persisted. */
  private async release(): Promise<void> {
    const { o } = this.c;
    this.#releaseScheduled = false;
    if (this.c.closing()) return;
    // A transaction the fault rolled back may have been applied to a broker's memory already.
    try {
      for (const b of this.#brokers) b.reload?.();
    } catch (err) {
      // Still not readable: held as before, released at the next chance.
      if (this.hold(undefined, err)) return;
      throw err;
    }
    this.#brokers.clear();
    const ids = [...this.#held];
    this.#held.clear();
    let restored = 0;
    for (const id of ids) {
      if (this.c.closing()) return;
      // A resume or start since the hold built it already.
      if (this.c.runners.has(id)) continue;
      try {
        const stored = o.sessions.get(id);
        if (stored === undefined || (stored.session.status !== 'running' && stored.session.status !== 'paused')) continue;
        await this.restore(stored.session);
        restored++;
      } catch (err) {
        if (this.hold(id, err)) continue;
        o.logger?.error({ sessionId: id, err: message(err) }, 'runner could not be rebuilt after a storage fault');
        void this.c.host()?.handleRunnerFailure(id, wire(err)).catch(() => undefined);
      }
    }
    if (this.#held.size === 0) o.logger?.info({ restored }, 'runners resumed after a storage fault');
    await this.afterRelease().catch((err: unknown) => o.logger?.error({ err: message(err) }, 'finishing interrupted stops failed'));
  }
}
