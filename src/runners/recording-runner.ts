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
  readonly calls: RunnerCall[] = [];
  /** Per session, what the runner was last told to be. */
  readonly states = new Map<string, 'running' | 'paused' | 'stopped'>();

  async start(s: Session): Promise<void> {
    this.calls.push({ op: 'start', sessionId: s.id });
    this.states.set(s.id, 'running');
  }
  async pause(s: Session): Promise<void> {
    this.calls.push({ op: 'pause', sessionId: s.id });
    this.states.set(s.id, 'paused');
  }
  async resume(s: Session): Promise<void> {
    this.calls.push({ op: 'resume', sessionId: s.id });
    this.states.set(s.id, 'running');
  }
  async stop(s: Session): Promise<void> {
    this.calls.push({ op: 'stop', sessionId: s.id });
    this.states.set(s.id, 'stopped');
  }
  async restore(s: Session): Promise<void> {
    this.calls.push({ op: 'restore', sessionId: s.id, status: s.status });
    this.states.set(s.id, s.status === 'paused' ? 'paused' : 'running');
  }
  async close(): Promise<void> {
    this.calls.push({ op: 'close' });
  }
}
