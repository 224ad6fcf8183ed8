import test from 'ava';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { CommandClient } from '../src/commands/command-client.js';
import { CommandConsumer } from '../src/commands/command-consumer.js';
import { SessiondError } from '../src/domain/errors.js';
import type { SessionView } from '../src/domain/session.js';
import { buildManager, paperConfig, type TestManager } from './helpers/manager.js';
import { expectedOutcomes, randomCommands, rng, type Cmd } from './helpers/model.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';

let redis: RedisServerHandle;
test.before(async () => {
  redis = await startTestRedis();
});
test.after.always(async () => {
  await redis?.stop();
});

interface Rig {
  m: TestManager;
  consumer: CommandConsumer;
  client: CommandClient;
  queue: Queue;
  connection: Redis;
  queueName: string;
  close(): Promise<void>;
}

async function rig(concurrency = 8): Promise<Rig> {
  const queueName = `test-${randomUUID()}`;
  const m = buildManager();
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const consumer = new CommandConsumer(m.manager, { connection, queueName, concurrency });
  await consumer.start();
  const client = new CommandClient({ redisUrl: redis.url, queueName });
  const queueConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: queueConnection, prefix: 'sessiond' });
  return {
    m,
    consumer,
    client,
    queue,
    connection,
    queueName,
    async close() {
      await client.close();
      await consumer.close();
      await queue.close();
      queueConnection.disconnect();
      connection.disconnect();
      await m.close();
    },
  };
}

async function rejected(t: import('ava').ExecutionContext, p: Promise<unknown>, code: string, message?: string | RegExp) {
  const err = await t.throwsAsync(p);
  t.true(err instanceof SessiondError);
  t.is((err as SessiondError).code as string, code);
  if (typeof message === 'string') t.is(err!.message, message);
  else if (message) t.regex(err!.message, message);
}

test('every allowed transition works through the queue and returns the session view', async (t) => {
  const r = await rig();
  const started = await r.client.submit<SessionView>('start', paperConfig({ id: 'q1' }));
  t.is(started.status, 'running');
  t.is(started.id, 'q1');
  t.is((await r.client.submit<SessionView>('pause', { sessionId: 'q1', reason: 'lunch' })).status, 'paused');
  t.is((await r.client.submit<SessionView>('resume', { sessionId: 'q1' })).status, 'running');
  const stopped = await r.client.submit<SessionView>('stop', { sessionId: 'q1', reason: 'eod' });
  t.is(stopped.status, 'stopped');
  t.is(stopped.stopReason, 'eod');
  t.deepEqual(await r.client.submit('get-session', { sessionId: 'q1' }), stopped);
  t.deepEqual(r.m.manager.history('q1').map((h) => h.to), ['created', 'running', 'paused', 'running', 'stopped']);
  // A created session stopped through the queue: start then stop is the only way in via commands.
  await r.close();
});

test('refused transitions come back as INVALID_TRANSITION naming session, state and command', async (t) => {
  const r = await rig();
  await r.client.submit('start', paperConfig({ id: 'q2' }));
  await rejected(t, r.client.submit('resume', { sessionId: 'q2' }), 'INVALID_TRANSITION', 'session q2 is running; cannot resume');
  await r.client.submit('pause', { sessionId: 'q2' });
  await rejected(t, r.client.submit('pause', { sessionId: 'q2' }), 'INVALID_TRANSITION', 'session q2 is paused; cannot pause');
  await rejected(t, r.client.submit('start', paperConfig({ id: 'q2' })), 'INVALID_TRANSITION', 'session q2 is paused; cannot start');
  await r.client.submit('stop', { sessionId: 'q2' });
  for (const cmd of ['pause', 'resume', 'stop']) {
    await rejected(t, r.client.submit(cmd, { sessionId: 'q2' }), 'INVALID_TRANSITION', `session q2 is stopped; cannot ${cmd}`);
  }
  // The failed job's reason starts with the code, for programs that read BullMQ directly.
  const id = randomUUID();
  await t.throwsAsync(r.client.submit('pause', { sessionId: 'q2' }, { commandId: id }));
  const job = await r.queue.getJob(id);
  t.is(job!.failedReason, 'INVALID_TRANSITION: session q2 is stopped; cannot pause');
  await r.close();
});

test('malformed jobs fail at once with VALIDATION_ERROR, are not retried, and the consumer keeps working', async (t) => {
  const r = await rig();
  const eventsConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(r.queueName, { connection: eventsConnection, prefix: 'sessiond' });
  await events.waitUntilReady();
  const cases: [string, unknown, RegExp][] = [
    ['pause', {}, /invalid pause job: sessionId/],
    ['pause', 'not an object', /invalid pause job/],
    ['stop', { sessionId: 'x', extra: true }, /extra/],
    ['start', { kind: 'paper' }, /invalid session config: strategy/],
    ['kill-switch', { liveOnly: 'yes' }, /liveOnly/],
    ['record-backtest', { strategyId: 's', metrics: { returnPct: 'high' } }, /metrics/],
    ['launch-missiles', { sessionId: 'x' }, /unknown command "launch-missiles"/],
  ];
  for (const [name, data, message] of cases) {
    // The submitter asks for 3 attempts: a malformed job must still fail on the first.
    const job = await r.queue.add(name, data, { attempts: 3 });
    const err = await t.throwsAsync(job.waitUntilFinished(events, 10_000));
    t.regex(err!.message, /^VALIDATION_ERROR: /);
    t.regex(err!.message, message);
    const done = await r.queue.getJob(job.id!);
    t.is(done!.attemptsMade, 1);
    t.is(await done!.getState(), 'failed');
  }
  t.is((await r.client.submit<SessionView>('start', paperConfig({ id: 'after' }))).status, 'running');
  await events.close();
  eventsConnection.disconnect();
  await r.close();
});

test('commands for unknown sessions get SESSION_NOT_FOUND', async (t) => {
  const r = await rig();
  for (const cmd of ['pause', 'resume', 'stop', 'get-session']) {
    await rejected(t, r.client.submit(cmd, { sessionId: 'ghost' }), 'SESSION_NOT_FOUND', 'session ghost does not exist');
  }
  await r.close();
});

test('a resubmitted command id returns its first result and changes nothing', async (t) => {
  const r = await rig();
  await r.client.submit('start', paperConfig({ id: 'q3' }), { commandId: 'start-q3' });
  const first = await r.client.submit<SessionView>('pause', { sessionId: 'q3' }, { commandId: 'pause-q3' });
  await r.client.submit('resume', { sessionId: 'q3' });
  // The job is still kept by BullMQ: same id is a no-op there; removed: the command log answers.
  const again = await r.client.submit<SessionView>('pause', { sessionId: 'q3' }, { commandId: 'pause-q3' });
  t.deepEqual(again, first);
  await (await r.queue.getJob('pause-q3'))!.remove();
  const third = await r.client.submit<SessionView>('pause', { sessionId: 'q3' }, { commandId: 'pause-q3' });
  t.deepEqual(third, first);
  t.is(r.m.manager.getSession('q3').status, 'running');
  t.is(r.m.manager.history('q3').filter((h) => h.event === 'PAUSE').length, 1);
  await r.close();
});

test('list-sessions, kill-switch and record-backtest work through the queue', async (t) => {
  const r = await rig();
  await r.client.submit('start', paperConfig({ id: 'a' }));
  await r.client.submit('start', paperConfig({ id: 'b' }));
  await r.client.submit('pause', { sessionId: 'b' });
  const active = await r.client.submit<SessionView[]>('list-sessions', { activeOnly: true });
  t.deepEqual(active.map((s) => s.id), ['a', 'b']);
  const killed = await r.client.submit<SessionView[]>('kill-switch', {});
  t.deepEqual(killed.map((s) => [s.id, s.status, s.stopReason]).sort(), [
    ['a', 'stopped', 'kill_switch'],
    ['b', 'stopped', 'kill_switch'],
  ]);
  t.deepEqual(await r.client.submit('list-sessions', { activeOnly: true }), []);
  const bt = await r.client.submit<{ passed: boolean; strategyId: string }>('record-backtest', {
    strategyId: 'sma-crossover',
    metrics: { returnPct: 12, maxDrawdownPct: 5, sharpe: 1.2, trades: 30 },
  });
  t.true(bt.passed);
  await r.close();
});

test('commands for one session apply in submission order at worker concurrency 16', async (t) => {
  const r = await rig(16);
  const next = rng(42);
  const sessions = Array.from({ length: 12 }, (_, i) => `ord-${i}`);
  const plans = new Map(sessions.map((id) => [id, randomCommands(next, 15)] as const));
  // Interleave the sessions' commands and submit them all without waiting.
  const jobs: { sessionId: string; cmd: Cmd; jobId: string }[] = [];
  for (let step = 0; step < 15; step++) {
    for (const id of sessions) {
      const cmd = plans.get(id)![step]!;
      jobs.push({ sessionId: id, cmd, jobId: `${id}-${step}` });
    }
  }
  await r.queue.addBulk(
    jobs.map((j) => ({
      name: j.cmd,
      data: j.cmd === 'start' ? paperConfig({ id: j.sessionId }) : { sessionId: j.sessionId },
      opts: { jobId: j.jobId },
    })),
  );
  const outcomes = new Map<string, string>();
  const deadline = Date.now() + 30_000;
  while (outcomes.size < jobs.length && Date.now() < deadline) {
    for (const j of jobs) {
      if (outcomes.has(j.jobId)) continue;
      const state = await r.queue.getJobState(j.jobId);
      const job = state === 'completed' || state === 'failed' ? await r.queue.getJob(j.jobId) : undefined;
      if (state === 'completed') outcomes.set(j.jobId, (job!.returnvalue as SessionView).status);
      else if (state === 'failed') outcomes.set(j.jobId, job!.failedReason.split(':')[0]!);
    }
    if (outcomes.size < jobs.length) await new Promise((res) => setTimeout(res, 100));
  }
  t.is(outcomes.size, jobs.length);
  for (const id of sessions) {
    const got = jobs.filter((j) => j.sessionId === id).map((j) => outcomes.get(j.jobId));
    t.deepEqual(got, expectedOutcomes(plans.get(id)!), `session ${id}`);
  }
  await r.close();
});
