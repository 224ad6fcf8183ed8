import test from 'ava';
import { join } from 'node:path';
import { createActor } from 'xstate';
import { sessionMachine } from '../machines/session.machine.js';
import { SessiondError } from '../src/domain/errors.js';
import { tempDir } from './helpers/daemon.js';
import { THRESHOLDS, buildManager, paperConfig } from './helpers/manager.js';

/** Where a backtest the daemon's backtest command ran came from (what it passes as the origin). */
const RUN = { source: 'run' as const, data: { file: '/data/bars/aaa.csv', sha256: 'ab'.repeat(32), rows: 390, from: '2026-01-02T14:30:00.000Z', to: '2026-01-02T20:59:00.000Z' } };
const GOOD = { returnPct: 12, maxDrawdownPct: 8, sharpe: 1.4, trades: 40 };

async function rejection(t: import('ava').ExecutionContext, p: Promise<unknown>, code: string, message?: string | RegExp) {
  const err = await t.throwsAsync(p);
  t.true(err instanceof SessiondError, `expected a SessiondError, got ${String(err)}`);
  t.is((err as SessiondError).code as string, code);
  if (typeof message === 'string') t.is(err!.message, message);
  else if (message) t.regex(err!.message, message);
  return err as SessiondError;
}

test('startSession creates, persists and starts a paper session', async (t) => {
  const m = buildManager();
  const view = await m.manager.startSession(paperConfig({ id: 'p1' }));
  t.is(view.id, 'p1');
  t.is(view.status, 'running');
  t.is(view.kind, 'paper');
  t.is(view.strategyId, 'sma-crossover');
  t.is(view.strategyName, 'SMA crossover');
  t.is(view.brokerId, 'paper');
  t.is(view.accountId, 'default');
  t.deepEqual(view.symbols, ['AAPL', 'MSFT']);
  t.is(view.executionMode, 'auto');
  t.deepEqual(view.riskControls, { maxOrderQty: 100 });
  t.truthy(view.startedAt);
  t.deepEqual(m.runner.calls, [{ op: 'start', sessionId: 'p1' }]);
  t.deepEqual(
    m.manager.history('p1').map((h) => [h.from, h.to, h.event]),
    [
      [null, 'created', 'CREATE'],
      ['created', 'running', 'START'],
    ],
  );
  t.is(m.store.get('p1')!.session.status, 'running');
  t.deepEqual(m.manager.getActiveSessions().map((s) => s.id), ['p1']);
  await m.close();
});

test('pause, resume and stop move the session and tell the runner', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 'p1' }));
  t.is((await m.manager.pauseSession('p1', 'lunch')).status, 'paused');
  t.is((await m.manager.resumeSession('p1')).status, 'running');
  const stopped = await m.manager.stopSession('p1', 'done for the day');
  t.is(stopped.status, 'stopped');
  t.is(stopped.stopReason, 'done for the day');
  t.truthy(stopped.stoppedAt);
  t.deepEqual(m.runner.calls.map((c) => c.op), ['start', 'pause', 'resume', 'stop']);
  t.deepEqual(m.manager.getActiveSessions(), []);
  t.deepEqual(
    m.manager.history('p1').map((h) => [h.to, h.reason ?? null]),
    [
      ['created', null],
      ['running', null],
      ['paused', 'lunch'],
      ['running', null],
      ['stopped', 'done for the day'],
    ],
  );
  await m.close();
});

/** Writes a session in `created`, as a crash between startSession's two transactions leaves it. */
function writeCreated(m: ReturnType<typeof buildManager>, id: string) {
  const at = new Date().toISOString();
  const actor = createActor(sessionMachine, { input: { sessionId: id, at } }).start();
  m.store.commit({
    create: true,
    session: {
      id, kind: 'paper', status: 'created', strategy: { id: 'sma-crossover', name: 'sma-crossover' }, brokerId: 'paper',
      accountId: 'default', symbols: ['AAPL'], executionMode: 'auto', riskControls: {}, flattenOnStop: false, positions: {},
      createdAt: at, updatedAt: at,
    },
    snapshot: actor.getPersistedSnapshot(),
    transition: { sessionId: id, from: null, to: 'created', event: 'CREATE', commandId: 'c-start', source: 'command', at },
  });
  actor.stop();
}

test('a start redelivered after a crash between create and start starts the created session once', async (t) => {
  let m = buildManager();
  writeCreated(m, 'half');
  m = await m.restart();
  t.is((await m.manager.recover()).recovered, 1);
  t.deepEqual(m.runner.calls, [], 'a created session has no runner to restore');
  const view = await m.manager.startSession(paperConfig({ id: 'half' }), { commandId: 'c-start' });
  t.is(view.status, 'running');
  t.deepEqual(m.manager.history('half').map((h) => h.event), ['CREATE', 'START']);
  await m.close();
});

test('a created session can be stopped before it ever runs', async (t) => {
  let m = buildManager();
  writeCreated(m, 'c1');
  m = await m.restart();
  await m.manager.recover();
  await rejection(t, m.manager.pauseSession('c1'), 'INVALID_TRANSITION', 'session c1 is created; cannot pause');
  const stopped = await m.manager.stopSession('c1', 'never mind');
  t.is(stopped.status, 'stopped');
  t.is(stopped.startedAt, undefined);
  await rejection(t, m.manager.startSession(paperConfig({ id: 'c1' })), 'INVALID_TRANSITION', 'session c1 is stopped; cannot start');
  await m.close();
});

const refused: [string, (string | undefined)[], 'pause' | 'resume' | 'stop', string][] = [
  ['pause is rejected when the session is paused', ['pause'], 'pause', 'paused'],
  ['resume is rejected when the session is running', [], 'resume', 'running'],
  ['pause is rejected when the session is stopped', ['stop'], 'pause', 'stopped'],
  ['resume is rejected when the session is stopped', ['stop'], 'resume', 'stopped'],
  ['stop is rejected when the session is stopped', ['stop'], 'stop', 'stopped'],
];
for (const [title, setup, cmd, state] of refused) {
  test(title, async (t) => {
    const m = buildManager();
    await m.manager.startSession(paperConfig({ id: 's' }));
    for (const step of setup) {
      if (step === 'pause') await m.manager.pauseSession('s');
      if (step === 'stop') await m.manager.stopSession('s');
    }
    const before = m.manager.history('s').length;
    const call = cmd === 'pause' ? m.manager.pauseSession('s') : cmd === 'resume' ? m.manager.resumeSession('s') : m.manager.stopSession('s');
    await rejection(t, call, 'INVALID_TRANSITION', `session s is ${state}; cannot ${cmd}`);
    t.is(m.manager.history('s').length, before, 'nothing was written');
    t.is(m.manager.getSession('s').status as string, state);
    await m.close();
  });
}

test('start is rejected for a session that is already running', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 's' }));
  await rejection(t, m.manager.startSession(paperConfig({ id: 's' })), 'INVALID_TRANSITION', 'session s is running; cannot start');
  await m.close();
});

test('commands for an unknown session are rejected with SESSION_NOT_FOUND', async (t) => {
  const m = buildManager();
  await rejection(t, m.manager.pauseSession('ghost'), 'SESSION_NOT_FOUND', 'session ghost does not exist');
  await rejection(t, m.manager.resumeSession('ghost'), 'SESSION_NOT_FOUND');
  await rejection(t, m.manager.stopSession('ghost'), 'SESSION_NOT_FOUND');
  t.throws(() => m.manager.getSession('ghost'), { message: 'session ghost does not exist' });
  await m.close();
});

test('an invalid config is rejected with VALIDATION_ERROR naming the field', async (t) => {
  const m = buildManager();
  await rejection(t, m.manager.startSession({ kind: 'paper', strategy: { id: 'x' }, symbols: [] }), 'VALIDATION_ERROR', /symbols/);
  await rejection(t, m.manager.startSession({ kind: 'bogus', strategy: { id: 'x' }, symbols: ['A'] }), 'VALIDATION_ERROR', /kind/);
  await rejection(t, m.manager.startSession(paperConfig({ riskControls: { maxOrderQty: -1 } })), 'VALIDATION_ERROR', /riskControls\.maxOrderQty/);
  await rejection(t, m.manager.startSession(paperConfig({ unknownKey: 1 })), 'VALIDATION_ERROR', /unknownKey/);
  t.deepEqual(m.manager.listSessions(), []);
  await m.close();
});

test('an unregistered broker is rejected with BROKER_NOT_FOUND', async (t) => {
  const m = buildManager();
  await rejection(t, m.manager.startSession(paperConfig({ brokerId: 'nowhere' })), 'BROKER_NOT_FOUND', 'broker nowhere is not registered');
  t.deepEqual(m.manager.listSessions(), []);
  await m.close();
});

test('a live session without a passed backtest and paper session is rejected with every check listed', async (t) => {
  const m = buildManager();
  const err = await rejection(t, m.manager.startSession(paperConfig({ kind: 'live', brokerId: 'alpaca' })), 'PREREQUISITES_NOT_MET');
  const checks = (err.details as { checks: { name: string; passed: boolean; reason: string }[] }).checks;
  t.deepEqual(checks.map((c) => [c.name, c.passed]), [
    ['backtest', false],
    ['paper', false],
  ]);
  t.regex(checks[0]!.reason, /no backtest recorded for strategy sma-crossover/);
  t.regex(checks[1]!.reason, /no paper session of strategy sma-crossover has run/);
  t.deepEqual(m.manager.listSessions(), []);
  await m.close();
});

test('a live session starts once the strategy passed a backtest and a long enough paper session', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const m = buildManager({ now: () => new Date(now) });
  // A failing backtest is recorded but does not count.
  const bad = await m.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: { returnPct: 1, maxDrawdownPct: 30, sharpe: 0.1, trades: 3 } }, {}, RUN);
  t.false(bad.passed);
  t.deepEqual(bad.checks.filter((c) => !c.passed).map((c) => c.name), ['backtest.return', 'backtest.drawdown', 'backtest.sharpe', 'backtest.trades']);
  await m.manager.startSession(paperConfig({ id: 'paper-1' }));
  now += 30_000; // ran 30 s of the 60 required
  let prereq = await m.manager.checkPrerequisites('sma-crossover');
  t.false(prereq.allPassed);
  t.regex(prereq.checks[0]!.reason, /none passed/);
  t.regex(prereq.checks[1]!.reason, /ran 30s of 60s/);

  const good = await m.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: GOOD }, {}, RUN);
  t.true(good.passed);
  t.is(good.source, 'run');
  now += 31_000;
  await m.manager.pauseSession('paper-1'); // paused time does not count, but 61 s have run
  now += 600_000;
  prereq = await m.manager.checkPrerequisites({ id: 'sma-crossover' });
  t.true(prereq.allPassed, JSON.stringify(prereq.checks));
  const live = await m.manager.startSession(paperConfig({ id: 'live-1', kind: 'live', brokerId: 'alpaca' }));
  t.is(live.status, 'running');
  t.is(live.kind, 'live');
  await m.close();
});

test('a recorded backtest (record-backtest) does not pass the live gate unless acceptRecorded; a daemon run does', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const m = buildManager({ now: () => new Date(now) });
  const recorded = await m.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: GOOD });
  t.like(recorded, { source: 'recorded', passed: true });
  t.is(recorded.data, undefined);
  await m.manager.startSession(paperConfig({ id: 'paper-1' }));
  now += 120_000;
  let prereq = await m.manager.checkPrerequisites('sma-crossover');
  t.deepEqual(prereq.checks.map((c) => [c.name, c.passed]), [['backtest', false], ['paper', true]]);
  t.is(prereq.checks[0]!.reason, 'no backtest run by the daemon for strategy sma-crossover; 1 recorded with record-backtest do not count (prerequisites.backtest.acceptRecorded is false)');
  await rejection(t, m.manager.startSession(paperConfig({ id: 'live-1', kind: 'live', brokerId: 'alpaca' })), 'PREREQUISITES_NOT_MET');

  // The operator opts in: recorded results count.
  const lenient = buildManager({ file: join(tempDir(), 'sessiond.db'), now: () => new Date(now), extra: { thresholds: { ...THRESHOLDS, backtest: { ...THRESHOLDS.backtest, acceptRecorded: true } } } });
  await lenient.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: GOOD });
  t.true((await lenient.manager.checkPrerequisites('sma-crossover')).checks[0]!.passed);
  await lenient.close();

  // A daemon run counts, with where its data came from, and survives a restart.
  const run = await m.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: GOOD }, { commandId: 'bt-run' }, RUN);
  t.like(run, { source: 'run', data: RUN.data });
  const again = await m.restart();
  prereq = await again.manager.checkPrerequisites('sma-crossover');
  t.true(prereq.checks[0]!.passed);
  t.regex(prereq.checks[0]!.reason, /^backtest bt-run \(run\) on \/data\/bars\/aaa\.csv \(sha256 abababababab, 390 rows\) passed/);
  await again.close();
});

test('getActiveSessions returns running and paused sessions, never created or stopped ones', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 'a' }));
  await m.manager.startSession(paperConfig({ id: 'b' }));
  await m.manager.startSession(paperConfig({ id: 'c' }));
  await m.manager.pauseSession('b');
  await m.manager.stopSession('c');
  t.deepEqual(m.manager.getActiveSessions().map((s) => [s.id, s.status]), [
    ['a', 'running'],
    ['b', 'paused'],
  ]);
  t.deepEqual(m.manager.listSessions({ status: 'stopped' }).map((s) => s.id), ['c']);
  await m.close();
});

test('kill-switch stops every active session, or only live ones, and records who did it', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const m = buildManager({ now: () => new Date(now) });
  await m.manager.recordBacktest({ strategyId: 'sma-crossover', metrics: GOOD }, {}, RUN);
  await m.manager.startSession(paperConfig({ id: 'p1' }));
  await m.manager.startSession(paperConfig({ id: 'p2' }));
  await m.manager.pauseSession('p2');
  now += 120_000;
  await m.manager.startSession(paperConfig({ id: 'l1', kind: 'live', brokerId: 'alpaca' }));
  const liveOnly = await m.manager.killSwitch({ liveOnly: true }, { commandId: 'k1' });
  t.deepEqual(liveOnly.map((v) => [v.id, v.status, v.stopReason]), [['l1', 'stopped', 'kill_switch']]);
  const all = await m.manager.killSwitch({}, { commandId: 'k2' });
  t.deepEqual(all.map((v) => v.id).sort(), ['p1', 'p2']);
  t.deepEqual(m.manager.getActiveSessions(), []);
  t.is(m.manager.history('p2').at(-1)!.commandId, 'k2');
  // Redelivered: same answer, nothing new.
  t.deepEqual((await m.manager.killSwitch({}, { commandId: 'k2' })).map((v) => v.id).sort(), ['p1', 'p2']);
  t.is(m.manager.history('p2').length, 4); // created, running, paused, stopped
  await m.close();
});

test('a command id seen before returns its first outcome and changes nothing', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 's' }), { commandId: 'c-start' });
  const first = await m.manager.pauseSession('s', undefined, { commandId: 'c-pause' });
  await m.manager.resumeSession('s', { commandId: 'c-resume' });
  // Redelivery of the pause after the resume: the first result (paused), and the session stays running.
  const again = await m.manager.pauseSession('s', undefined, { commandId: 'c-pause' });
  t.deepEqual(again, first);
  t.is(m.manager.getSession('s').status, 'running');
  // A rejected command keeps its rejection even when it would now succeed.
  await rejection(t, m.manager.resumeSession('s', { commandId: 'c-bad' }), 'INVALID_TRANSITION');
  await m.manager.pauseSession('s');
  await rejection(t, m.manager.resumeSession('s', { commandId: 'c-bad' }), 'INVALID_TRANSITION', 'session s is running; cannot resume');
  t.is(m.manager.getSession('s').status, 'paused');
  // A redelivered start returns the first view.
  t.is((await m.manager.startSession(paperConfig({ id: 's' }), { commandId: 'c-start' })).status, 'running');
  t.is(m.manager.history('s').filter((h) => h.event === 'START').length, 1);
  await m.close();
});

test('commands for one session apply in call order even when issued together', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 's' }));
  const results = await Promise.allSettled([
    m.manager.pauseSession('s'),
    m.manager.resumeSession('s'),
    m.manager.pauseSession('s'),
    m.manager.pauseSession('s'),
    m.manager.stopSession('s'),
    m.manager.resumeSession('s'),
  ]);
  t.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value.status : (r.reason as SessiondError).code)),
    ['paused', 'running', 'paused', 'INVALID_TRANSITION', 'stopped', 'INVALID_TRANSITION'],
  );
  await m.close();
});

test('a runner failure stops the session with runner_failed; a risk breach pauses it', async (t) => {
  const m = buildManager();
  await m.manager.startSession(paperConfig({ id: 'a' }));
  await m.manager.startSession(paperConfig({ id: 'b' }));
  const failed = await m.manager.handleRunnerFailure('a', 'strategy threw 3 times');
  t.is(failed!.status, 'stopped');
  t.is(failed!.stopReason, 'runner_failed');
  t.is(failed!.error, 'strategy threw 3 times');
  const breached = await m.manager.handleRiskBreach('b', 'daily loss 600 > 500');
  t.is(breached!.status, 'paused');
  t.is(m.manager.history('b').at(-1)!.reason, 'risk_breach: daily loss 600 > 500');
  t.is(m.manager.history('b').at(-1)!.source, 'risk');
  // A late failure report for a stopped session changes nothing.
  t.is(await m.manager.handleRunnerFailure('a', 'again'), undefined);
  await m.close();
});

test('a restart restores every session in its state and brings the runner to it', async (t) => {
  let m = buildManager();
  await m.manager.startSession(paperConfig({ id: 'run' }));
  await m.manager.startSession(paperConfig({ id: 'pau' }));
  await m.manager.pauseSession('pau');
  await m.manager.startSession(paperConfig({ id: 'sto' }));
  await m.manager.stopSession('sto', 'bye');
  const before = m.manager.listSessions();
  m = await m.restart();
  const { recovered } = await m.manager.recover();
  t.is(recovered, 2);
  t.deepEqual(m.manager.listSessions(), before);
  t.deepEqual(m.runner.calls, [
    { op: 'restore', sessionId: 'run', status: 'running' },
    { op: 'restore', sessionId: 'pau', status: 'paused' },
  ]);
  // The restored actors take the same transitions.
  t.is((await m.manager.resumeSession('pau')).status, 'running');
  await rejection(t, m.manager.resumeSession('run'), 'INVALID_TRANSITION', 'session run is running; cannot resume');
  await rejection(t, m.manager.pauseSession('sto'), 'INVALID_TRANSITION', 'session sto is stopped; cannot pause');
  await m.close();
});

test('recovery refuses a session whose snapshot disagrees with its row or is not a snapshot of it (INTERNAL naming it)', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['a snapshot in another state', `json_set(snapshot, '$.value', 'paused')`, /^session x: row says running but its snapshot says paused$/],
    ['a snapshot of another session', `json_set(snapshot, '$.context.sessionId', 'y')`, /^session x: its snapshot is of session y$/],
    ['no snapshot at all', 'NULL', /^session x: its snapshot is invalid/],
    ['a final snapshot', `json_set(snapshot, '$.status', 'done')`, /^session x: its snapshot is invalid: status/],
  ];
  for (const [what, sql, message] of cases) {
    let m = buildManager();
    await m.manager.startSession(paperConfig({ id: 'x' }));
    m.db.prepare(`UPDATE sessions SET snapshot = ${sql} WHERE id = 'x'`).run();
    m = await m.restart();
    const err = await t.throwsAsync(m.manager.recover(), undefined, what);
    t.is((err as SessiondError).code, 'INTERNAL', what);
    t.regex(err!.message, message, what);
    t.deepEqual(m.runner.calls, [], `${what}: no runner restored`);
    await m.close();
  }
});

test('a recovered session gets its actor from the snapshot as committed, also after a restart with no command in between', async (t) => {
  let m = buildManager();
  await m.manager.startSession(paperConfig({ id: 'p' }));
  await m.manager.pauseSession('p', 'lunch');
  m = await m.restart();
  await m.manager.recover();
  m = await m.restart();
  await m.manager.recover();
  // The snapshot the first restart did not touch still carries the pause; the actor made from it resumes.
  t.is((await m.manager.resumeSession('p')).status, 'running');
  await rejection(t, m.manager.resumeSession('p'), 'INVALID_TRANSITION', 'session p is running; cannot resume');
  t.deepEqual(m.manager.history('p').map((h) => h.to), ['created', 'running', 'paused', 'running']);
  m = await m.restart();
  await m.manager.recover();
  t.is((await m.manager.stopSession('p')).status, 'stopped');
  t.is(m.manager.actorCount, 0);
  await m.close();
});
