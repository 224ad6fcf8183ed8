import test from 'ava';
import { createActor, transition } from 'xstate';
import { sessionMachine, type SessionEvent } from '../machines/session.machine.js';

const at = '2026-01-01T00:00:00.000Z';
const events: Record<string, SessionEvent> = {
  START: { type: 'START', at },
  PAUSE: { type: 'PAUSE', at },
  RESUME: { type: 'RESUME', at },
  STOP: { type: 'STOP', at },
  RUNNER_FAILED: { type: 'RUNNER_FAILED', at, error: 'boom' },
  RISK_BREACH: { type: 'RISK_BREACH', at, reason: 'daily loss' },
};

// The whole table: state -> event -> next state (undefined = refused).
const TABLE: Record<string, Record<string, string | undefined>> = {
  created: { START: 'running', PAUSE: undefined, RESUME: undefined, STOP: 'stopped', RUNNER_FAILED: undefined, RISK_BREACH: undefined },
  running: { START: undefined, PAUSE: 'paused', RESUME: undefined, STOP: 'stopped', RUNNER_FAILED: 'stopped', RISK_BREACH: 'paused' },
  paused: { START: undefined, PAUSE: undefined, RESUME: 'running', STOP: 'stopped', RUNNER_FAILED: undefined, RISK_BREACH: undefined },
  stopped: { START: undefined, PAUSE: undefined, RESUME: undefined, STOP: undefined, RUNNER_FAILED: undefined, RISK_BREACH: undefined },
};

const PATH_TO: Record<string, SessionEvent[]> = {
  created: [],
  running: [events.START!],
  paused: [events.START!, events.PAUSE!],
  stopped: [events.STOP!],
};

function snapshotIn(state: string) {
  const actor = createActor(sessionMachine, { input: { sessionId: 's1', at } }).start();
  for (const e of PATH_TO[state]!) actor.send(e);
  const snap = actor.getSnapshot();
  actor.stop();
  return snap;
}

for (const [state, row] of Object.entries(TABLE)) {
  for (const [event, expected] of Object.entries(row)) {
    const title = expected ? `${event} takes ${state} to ${expected}` : `${event} is refused in ${state}`;
    test(title, (t) => {
      const snap = snapshotIn(state);
      t.is(String(snap.value), state);
      t.is(snap.can(events[event]!), expected !== undefined);
      if (expected) {
        const [next] = transition(sessionMachine, snap, events[event]!);
        t.is(String(next.value), expected);
      }
    });
  }
}

test('context records start, stop reason and the runner error', (t) => {
  const actor = createActor(sessionMachine, { input: { sessionId: 's1', at } }).start();
  actor.send({ type: 'START', at: '2026-01-01T00:00:01.000Z' });
  actor.send({ type: 'RUNNER_FAILED', at: '2026-01-01T00:00:02.000Z', error: 'strategy threw' });
  const c = actor.getSnapshot().context;
  t.is(c.startedAt, '2026-01-01T00:00:01.000Z');
  t.is(c.stoppedAt, '2026-01-01T00:00:02.000Z');
  t.is(c.stopReason, 'runner_failed');
  t.is(c.error, 'strategy threw');
  t.is(actor.getSnapshot().status, 'done');
});

test('a persisted snapshot restores to the same state and context', (t) => {
  const actor = createActor(sessionMachine, { input: { sessionId: 's1', at } }).start();
  actor.send(events.START!);
  actor.send({ type: 'PAUSE', at, reason: 'lunch' });
  const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
  const restored = createActor(sessionMachine, { snapshot: persisted, input: { sessionId: 'ignored', at } }).start();
  t.is(String(restored.getSnapshot().value), 'paused');
  t.deepEqual(restored.getSnapshot().context, actor.getSnapshot().context);
  t.true(restored.getSnapshot().can(events.RESUME!));
});
