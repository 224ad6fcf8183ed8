import type { SessionStore, SessionWrite, TransitionRecord } from '../persistence/ports.js';

interface Pending {
  write: SessionWrite;
  resolve: (r: TransitionRecord) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: writes requested during one turn of the event loop share ONE SQLite transaction.
 * Each caller still resumes only after its own write is committed, so write-ahead holds; a failed group
 * is retried one write per transaction, so one bad write fails only its own command.
 */
export class GroupCommitter {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly store: SessionStore,
    private readonly onWrite?: (ms: number, writes: number) => void,
  ) {}

  write(write: SessionWrite): Promise<TransitionRecord> {
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    this.scheduled = false;
    const t0 = performance.now();
    let records: TransitionRecord[];
    try {
      records = batch.length === 1 ? [this.store.commit(batch[0]!.write)] : this.store.commitBatch(batch.map((p) => p.write));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      for (const p of batch) {
        try {
          p.resolve(this.store.commit(p.write));
        } catch (e) {
          p.reject(e);
        }
      }
      return;
    }
    this.onWrite?.(performance.now() - t0, batch.length);
    batch.forEach((p, i) => p.resolve(records[i]!));
  }
}
