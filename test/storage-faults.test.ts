import test from 'ava';
import { join } from 'node:path';
import { openDatabase } from '../src/persistence/database.js';
import { StorageGuard } from '../src/persistence/storage-guard.js';
import { bookProblems } from './helpers/book.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig } from './helpers/trading.js';
import { untilWithin } from './helpers/until.js';

const until = untilWithin(30_000);

// `PRAGMA query_only` makes SQLite itself refuse every write on the connection the code under test uses
// (SQLITE_READONLY, a storage fault like SQLITE_FULL): a real SQLite error, on and off at will. The full disk
// itself is in storage-faults-disk.test.ts (a small tmpfs; needs root).

test('StorageGuard reports a storage fault until a probe write commits, then calls its waiters', async (t) => {
  const db = openDatabase(join(tempDir('sessiond-guard-'), 'g.db'));
  const guard = new StorageGuard(db, { probeMs: 20 });
  try {
    t.true(guard.probe());
    t.is(guard.fault, undefined);
    t.false(guard.report(new Error('not storage')));
    db.pragma('query_only = 1');
    t.false(guard.probe());
    t.like(guard.fault, { code: 'SQLITE_READONLY' });
    let called = 0;
    guard.whenWritable(() => called++);
    db.pragma('query_only = 0');
    await until('writable again', () => guard.fault === undefined);
    await until('waiter called', () => called === 1);
    t.is(called, 1);
  } finally {
    guard.close();
    db.close();
  }
});

test('when SQLite cannot write, commands fail with STORAGE_UNAVAILABLE, runners hold with statuses unchanged, and all resumes by itself', async (t) => {
  const dir = tempDir('sessiond-storage-');
  const file = join(dir, 'sessiond.db');
  const rig = await buildTradingRig({ file, runners: { maxRestarts: 1, restartBackoffMs: 20 } });
  const { manager, services, db } = rig;
  try {
    const feed = { type: 'synthetic' as const, intervalMs: 20 };
    for (const id of ['sf-1', 'sf-2']) {
      await manager.startSession(
        { id, kind: 'paper', strategy: { id: 'sma-crossover', params: { fast: 2, slow: 3 } }, symbols: ['AAA', 'BBB'], feed },
        { commandId: `start-${id}`, source: 'command' },
      );
    }
    const steps = (id: string): number => services.runnerStates.get(id)?.steps ?? 0;
    await until('steps', () => steps('sf-1') > 10 && steps('sf-2') > 10);
    const failuresBefore = services.runnerStates.get('sf-1')!.failures;

    db.pragma('query_only = 1');
    await until('runners held', () => services.runners.stats().held === 2);

    const paused = await t.throwsAsync(manager.pauseSession('sf-1', 'lunch', { commandId: 'pause-sf-1', source: 'command' }));
    t.like(paused, { code: 'STORAGE_UNAVAILABLE' });
    t.regex(paused!.message, /^SQLite cannot write \(SQLITE_READONLY: .*\); the command was not applied/);
    const started = await t.throwsAsync(
      manager.startSession({ id: 'sf-3', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'] }, { commandId: 'start-sf-3', source: 'command' }),
    );
    t.like(started, { code: 'STORAGE_UNAVAILABLE' });
    // Nothing of either was written; no runner failure was counted; statuses did not change.
    t.is(manager.commandRecord('pause-sf-1'), undefined);
    t.throws(() => manager.getSession('sf-3'), { code: 'SESSION_NOT_FOUND' });
    t.deepEqual(manager.listSessions().map((s) => [s.id, s.status]), [['sf-1', 'running'], ['sf-2', 'running']]);
    const heldAt = steps('sf-1');

    db.pragma('query_only = 0');
    await until('runners back', () => services.runners.stats().held === 0 && services.runners.stats().running === 2);
    await until('steps again', () => steps('sf-1') > heldAt + 10 && steps('sf-2') > heldAt + 10);
    t.is(services.runnerStates.get('sf-1')!.failures, failuresBefore, 'a storage fault is not a strategy failure');
    // The same command ids apply now: their refusal was never recorded as an outcome.
    t.is((await manager.pauseSession('sf-1', 'lunch', { commandId: 'pause-sf-1', source: 'command' })).status, 'paused');
    t.is((await manager.startSession({ id: 'sf-3', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'] }, { commandId: 'start-sf-3', source: 'command' })).status, 'running');
    t.is(manager.getSession('sf-2').status, 'running');
  } finally {
    await rig.close();
  }
  t.deepEqual(bookProblems(file), []);
});
