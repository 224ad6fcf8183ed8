import test from 'ava';
import type { Session } from '../src/domain/session.js';
import { RecordingRunner } from '../src/runners/recording-runner.js';

const session = (id: string, status: Session['status'] = 'running'): Session => ({
  id,
  kind: 'paper',
  status,
  strategy: { id: 's' },
  brokerId: 'paper',
  accountId: 'default',
  symbols: ['A'],
  executionMode: 'auto',
  riskControls: {},
  flattenOnStop: false,
  positions: {},
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
});

test('the recording runner keeps a bounded window of calls and forgets stopped sessions', async (t) => {
  const runner = new RecordingRunner(3);
  for (let i = 0; i < 20; i++) {
    await runner.start(session(`s${i}`));
    await runner.stop(session(`s${i}`, 'stopped'));
  }
  await runner.start(session('last'));
  t.true(runner.calls.length >= 3 && runner.calls.length <= 6, `${runner.calls.length} calls kept`);
  t.deepEqual(runner.calls.at(-1), { op: 'start', sessionId: 'last' });
  t.deepEqual([...runner.states.entries()], [['last', 'running']]);
});
