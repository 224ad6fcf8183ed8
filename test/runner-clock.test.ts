import test from 'ava';
import { RunnerClock } from '../src/runners/runner-clock.js';
import type { ResolvedRunnerOptions } from '../src/runners/runner-options.js';
import type { SessionRunner } from '../src/runners/session-runner.js';

// A unit of logic: when steps are handed over. The runner is a stand-in with only what the clock reads.
function fakeRunner(id: string): SessionRunner {
  return { id, status: 'running', feedExhausted: false, pending: undefined, retryAt: 0, scheduleToken: 0, lastDueAt: Date.now() - 1000, barMs: undefined, feed: { intervalMs: 10 } } as unknown as SessionRunner;
}
const settle = () => new Promise((r) => setTimeout(r, 50));

test('held, due runners wait and are handed over at release; a runner no longer running is dropped', async (t) => {
  const handed: string[][] = [];
  const clock = new RunnerClock({ batchWindowMs: 0, maxCatchUpSteps: 3 } as ResolvedRunnerOptions, (due) => handed.push(due.map((r) => r.id)), () => false);
  t.teardown(() => clock.close());
  clock.hold();
  const [a, b, c] = [fakeRunner('a'), fakeRunner('b'), fakeRunner('c')];
  for (const r of [a, b, c]) clock.schedule(r);
  await settle();
  t.deepEqual(handed, [], 'nothing steps while held (a daemon recovering)');
  (c as { status: string }).status = 'paused';
  clock.release();
  await settle();
  // Spread over a millisecond per runner: handed over in one or more batches, each once, c not at all.
  t.deepEqual(handed.flat().sort(), ['a', 'b']);
  handed.length = 0;
  // Released: the next schedule is handed over as it comes due.
  clock.schedule(a);
  await settle();
  t.deepEqual(handed, [['a']]);
});
