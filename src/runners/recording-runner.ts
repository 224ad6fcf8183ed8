import type { Session } from '../domain/session.js';
import type { SessionRunnerPort } from '../sessions/ports.js';

export interface RunnerCall {
  op: 'start' | 'pause' | 'resume' | 'stop' | 'restore' | 'close';
  sessionId?: string;
  status?: string;
}

/**
 * A runner that only records what it was told. It places no orders: used where trading is not
 * under test (lifecycle tests, benchmarks) and by the daemon when `runners.enabled` is false.
 */
export class RecordingRunner implements SessionRunnerPort {
  /** The most recent calls, oldest first: between `limit` and 2 × `limit` of them (the daemon may run for months). */
  readonly calls: RunnerCall[] = [];
  /** Per non-stopped session, what the runner was last told to be. */
  readonly states = new Map<string, 'running' | 'paused'>();

  /** @param limit how many calls to keep. @defaultValue 1000 */
  constructor(private readonly limit = 1000) {}

  private record(call: RunnerCall): void {
    this.calls.push(call);
    // Trimmed in chunks: one splice per `limit` calls, not one per call.
    if (this.calls.length > 2 * this.limit) this.calls.splice(0, this.calls.length - this.limit);
  }

  async start(s: Session): Promise<void> {
    this.record({ op: 'start', sessionId: s.id });
    this.states.set(s.id, 'running');
  }
  async pause(s: Session): Promise<void> {
    this.record({ op: 'pause', sessionId: s.id });
    this.states.set(s.id, 'paused');
  }
  async resume(s: Session): Promise<void> {
    this.record({ op: 'resume', sessionId: s.id });
    this.states.set(s.id, 'running');
  }
  async stop(s: Session): Promise<void> {
    this.record({ op: 'stop', sessionId: s.id });
    this.states.delete(s.id);
  }
  async restore(s: Session): Promise<void> {
    this.record({ op: 'restore', sessionId: s.id, status: s.status });
    this.states.set(s.id, s.status === 'paused' ? 'paused' : 'running');
  }
  async close(): Promise<void> {
    this.record({ op: 'close' });
  }
}
