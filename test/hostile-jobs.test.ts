import test from 'ava';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { CommandClient } from '../src/commands/command-client.js';
import { CommandConsumer } from '../src/commands/command-consumer.js';
import { SessiondError } from '../src/domain/errors.js';
import type { SessionView } from '../src/domain/session.js';
import { ROOT, daemonEnv, spawnDaemon, tempDir } from './helpers/daemon.js';
import { buildManager, paperConfig, type TestManager } from './helpers/manager.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';

const run = promisify(execFile);

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
  events: QueueEvents;
  redis: Redis;
  queueName: string;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const queueName = `test-${randomUUID()}`;
  const m = buildManager();
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const consumer = new CommandConsumer(m.manager, { connection, queueName, concurrency: 8, logger });
  await consumer.start();
  const client = new CommandClient({ redisUrl: redis.url, queueName });
  const r = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: r, prefix: 'sessiond' });
  const eventsConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(queueName, { connection: eventsConnection, prefix: 'sessiond' });
  await events.waitUntilReady();
  return {
    m,
    consumer,
    client,
    queue,
    events,
    redis: r,
    queueName,
    logs,
    async close() {
      await client.close();
      await events.close();
      eventsConnection.disconnect();
      await consumer.close();
      await queue.close();
      r.disconnect();
      connection.disconnect();
      await m.close();
    },
  };
}

/** The failed reason of a job added raw to the queue (what any program reading BullMQ sees). */
async function failure(r: Rig, name: string, data: unknown, jobId?: string): Promise<string> {
  const job = await r.queue.add(name, data, { attempts: 3, ...(jobId ? { jobId } : {}) });
  const err = await (async () => {
    try {
      await job.waitUntilFinished(r.events, 15_000);
      return undefined;
    } catch (e) {
      return e as Error;
    }
  })();
  if (!err) throw new Error(`job ${name} completed; expected a failure`);
  const done = (await r.queue.getJob(job.id!))!;
  if (done.attemptsMade !== 1) throw new Error(`job ${name} was attempted ${done.attemptsMade} times`);
  return done.failedReason;
}

test('job names of Object.prototype are unknown commands (VALIDATION_ERROR), never handlers', async (t) => {
  const r = await rig();
  try {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__', 'isPrototypeOf', 'toLocaleString', '__defineGetter__', 'propertyIsEnumerable']) {
      const reason = await failure(r, name, { sessionId: 'x' });
      t.is(reason, `VALIDATION_ERROR: unknown command "${name}"`, name);
    }
    const long = await failure(r, 'x'.repeat(5000), {});
    t.regex(long, /^VALIDATION_ERROR: unknown command "x{40}\.\.\." \(5000 characters\)$/);
    t.is((await r.client.submit<SessionView>('start', paperConfig({ id: 'still-fine' }))).status, 'running');
  } finally {
    await r.close();
  }
});

test('a job whose data is not JSON, or too large, fails with VALIDATION_ERROR while the consumer runs', async (t) => {
  const r = await rig();
  try {
    // Written as any Redis client could: a delayed job, its data replaced, then promoted to the consumer.
    const job = await r.queue.add('pause', { sessionId: 'x' }, { delay: 60_000, jobId: 'garbage-1' });
    await r.redis.hset(`sessiond:${r.queueName}:${job.id}`, 'data', '{not json');
    const finished = job.waitUntilFinished(r.events, 15_000);
    await job.promote();
    await t.throwsAsync(finished, { message: 'VALIDATION_ERROR: job data is not valid JSON' });
    t.is(await r.queue.getJobState('garbage-1'), 'failed');

    const big = await failure(r, 'start', { ...paperConfig(), blob: 'x'.repeat(100_000) });
    t.regex(big, /^VALIDATION_ERROR: job data is 1\d{5} bytes; the limit is 65536$/);
    t.is((await r.client.submit<SessionView>('start', paperConfig({ id: 'after-garbage' }))).status, 'running');
  } finally {
    await r.close();
  }
});

test('ids obey one rule: command ids, sessions derived from them, session ids in commands', async (t) => {
  const r = await rig();
  try {
    const hostile = ['<img src=x onerror=alert(1)>', '../../etc', 'a"b\'c', 'tab\there', 'rtl\u202egnp.exe', 'y'.repeat(100_000), '-leading'];
    for (const id of hostile) {
      const reason = await failure(r, 'start', paperConfig(), id);
      t.regex(reason, /^VALIDATION_ERROR: command id .* breaks the id rule \(letters, digits and \. _ : - only/, JSON.stringify(id.slice(0, 20)));
      t.false(reason.length > 400, 'the error does not echo a long id');
      const paused = await failure(r, 'pause', { sessionId: id });
      t.regex(paused, /^VALIDATION_ERROR: (invalid pause job: sessionId: |job data is \d+ bytes; the limit is 65536$)/);
    }
    // The longest command id is fine; a session derived from it would be 130 characters: refused by name.
    const longest = `c${'1'.repeat(127)}`;
    t.regex(await failure(r, 'start', paperConfig(), longest), /^VALIDATION_ERROR: session id "s-c1{37}\.\.\." \(130 characters\) derived from the command id breaks the id rule/);
    t.is((await r.client.submit<SessionView>('start', paperConfig(), { commandId: 'ok-id.1_2-3' })).id, 's-ok-id.1_2-3');
    t.deepEqual(
      r.m.manager.listSessions().map((s) => s.id),
      ['s-ok-id.1_2-3'],
      'no session was created from a hostile id',
    );
    t.false(JSON.stringify(r.logs).includes('y'.repeat(200)), 'a 100 kB id never reaches the log');
  } finally {
    await r.close();
  }
});

test('size limits on command data fail with VALIDATION_ERROR naming the field and the limit', async (t) => {
  const r = await rig();
  try {
    const bigParams = { blob: 'p'.repeat(20_000) };
    t.regex(await failure(r, 'start', paperConfig({ strategy: { id: 'sma-crossover', params: bigParams } })), /strategy\.params: is 200\d\d bytes as JSON; the limit is 16384/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    t.regex(await failure(r, 'start', paperConfig({ strategy: { id: 'sma-crossover', params: deep } })), /strategy\.params: nests deeper than the limit of 16 levels/);
    t.regex(await failure(r, 'start', paperConfig({ symbols: Array.from({ length: 101 }, (_, i) => `S${i}`) })), /symbols: .*100/);
    t.regex(await failure(r, 'pause', { sessionId: 'a', reason: 'r'.repeat(1001) }), /reason: .*1000/);
    t.regex(await failure(r, 'kill-switch', { reason: 'r'.repeat(1001) }), /reason: .*1000/);
    const metrics = { returnPct: 1, maxDrawdownPct: 1, sharpe: 1, trades: 1 };
    t.regex(await failure(r, 'record-backtest', { strategyId: 's', metrics, params: bigParams }), /params: is 200\d\d bytes as JSON; the limit is 16384/);
    t.regex(await failure(r, 'record-backtest', { strategyId: 's', metrics, dataRef: 'd'.repeat(1025) }), /dataRef: .*1024/);
    t.regex(await failure(r, 'record-backtest', { strategyId: 's', metrics, params: { blob: 'p'.repeat(1_000_000) } }), /job data is \d+ bytes; the limit is 65536/);
    t.deepEqual(r.m.manager.listSessions(), []);
  } finally {
    await r.close();
  }
});

test('get-command returns a recorded outcome from SQLite, after Redis lost the queue; COMMAND_NOT_FOUND otherwise', async (t) => {
  const r = await rig();
  try {
    const started = await r.client.submit<SessionView>('start', paperConfig({ id: 'gc' }), { commandId: 'gc-start' });
    await t.throwsAsync(r.client.submit('resume', { sessionId: 'gc' }, { commandId: 'gc-resume' }));
    // Redis loses the queue (every job, result and event); other tests' queues share this server.
    for (const k of await r.redis.keys(`sessiond:${r.queueName}:*`)) await r.redis.del(k);
    t.is(await r.queue.getJob('gc-start'), undefined);
    const ok = await r.client.submit<Record<string, unknown>>('get-command', { commandId: 'gc-start' });
    t.like(ok, { id: 'gc-start', name: 'start', sessionId: 'gc', outcome: 'ok', result: started });
    t.is(typeof ok.appliedAt, 'string');
    const failed = await r.client.submit<Record<string, unknown>>('get-command', { commandId: 'gc-resume' });
    t.like(failed, { id: 'gc-resume', name: 'resume', outcome: 'error', error: { code: 'INVALID_TRANSITION', message: 'session gc is running; cannot resume' } });
    const err = await t.throwsAsync(r.client.submit('get-command', { commandId: 'never-seen' }));
    t.is((err as SessiondError).code, 'COMMAND_NOT_FOUND');
    t.regex(await failure(r, 'get-command', { commandId: '../x' }), /^VALIDATION_ERROR: invalid get-command job: commandId: /);

    // sessionctl command ID, as an operator runs it.
    const cli = join(ROOT, 'bin/sessionctl.js');
    const args = ['--redis', redis.url, '--queue', r.queueName, '--json', 'command'];
    const out = await run(process.execPath, [cli, ...args, 'gc-start']);
    t.like(JSON.parse(out.stdout), { id: 'gc-start', outcome: 'ok', result: { id: 'gc', status: 'running' } });
    const missing = await run(process.execPath, [cli, ...args, 'nope']).catch((e: { code: number; stderr: string }) => e);
    t.is((missing as { code: number }).code, 1);
    t.regex((missing as { stderr: string }).stderr, /^COMMAND_NOT_FOUND: command nope has no recorded outcome/);
  } finally {
    await r.close();
  }
});

test('worker errors are logged as what they are: a lost lock is not "Redis unreachable"', async (t) => {
  const r = await rig();
  try {
    const worker = (r.consumer as unknown as { worker: { emit(e: string, err: Error): void } }).worker;
    worker.emit('error', new Error('Missing lock for job 12. moveToFinished'));
    worker.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:1'));
    const msgs = r.logs.filter((l) => l.level === 40).map((l) => String(l.msg));
    t.regex(msgs[0]!, /lost its lock/);
    t.regex(msgs[1]!, /Redis unreachable/);
    t.false(msgs[0]!.includes('unreachable'));
  } finally {
    await r.close();
  }
});

test('a job left active with data that is not JSON does not stop the daemon at start: it is failed with VALIDATION_ERROR', async (t) => {
  const env = daemonEnv(redis.url, tempDir());
  const queueName = env.SESSIOND_QUEUE!;
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: conn, prefix: 'sessiond' });
  const key = (s: string) => `sessiond:${queueName}:${s}`;
  // As a killed daemon leaves it: in the active list (here with data no JSON parser reads).
  await queue.add('pause', { sessionId: 'x' }, { jobId: 'corrupt-1' });
  await queue.add('start', paperConfig({ id: 'good' }), { jobId: 'good-1' });
  for (const id of ['good-1', 'corrupt-1']) {
    await conn.lrem(key('wait'), 0, id);
    await conn.lpush(key('active'), id);
  }
  await conn.hset(key('corrupt-1'), 'data', '\u0000\u0001 not json');
  const d = spawnDaemon(env);
  try {
    await d.waitForLog((l) => l.msg === 'ready', 30_000);
    t.is(d.child.exitCode, null);
    t.is(await queue.getJobState('corrupt-1'), 'failed');
    // Read raw: BullMQ's own Job.fromId throws on this job (that was the crash loop).
    t.is(await conn.hget(key('corrupt-1'), 'failedReason'), 'VALIDATION_ERROR: job data is not valid JSON');
    t.truthy(d.logs.find((l) => l.msg === 'unreadable command job moved to failed' && l.commandId === 'corrupt-1'));
    t.is(d.logs.find((l) => l.settled !== undefined)?.settled, 1, 'the readable orphan was settled');
    const client = new CommandClient({ redisUrl: redis.url, queueName });
    t.is((await client.submit<SessionView>('get-session', { sessionId: 'good' })).status, 'running');
    await client.close();
  } finally {
    d.kill('SIGTERM');
    await d.exited;
    await queue.close();
    conn.disconnect();
  }
});

test('a wrong password in REDIS_URL never reaches stdout or stderr', async (t) => {
  const locked = await startTestRedis();
  const password = `pw-${randomUUID()}`;
  const wrong = `wrong-${randomUUID()}`;
  const admin = new Redis(locked.url);
  await admin.config('SET', 'requirepass', password);
  admin.disconnect();
  try {
    const d = spawnDaemon(daemonEnv(locked.url.replace('redis://', `redis://:${wrong}@`), tempDir()));
    const { code } = await d.exited;
    t.is(code, 1);
    const all = JSON.stringify(d.logs) + d.stderr();
    t.true(all.includes('WRONGPASS'), 'the failure itself is reported');
    t.truthy(d.logs.find((l) => l.msg === 'start failed'));
    t.false(all.includes(wrong), 'the password does not appear');
  } finally {
    await locked.stop();
  }
});
