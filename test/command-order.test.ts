import test from 'ava';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import { sequenceKey } from '../src/commands/sequence-gate.js';
import type { SessionView } from '../src/domain/session.js';
import { startRedisServer, type RedisServerHandle } from '../src/daemon/redis-server.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { paperConfig } from './helpers/manager.js';
import { expectedOutcomes, type Cmd } from './helpers/model.js';

const SESSIONS = 20;
/** start, then pause/resume nine times, pause, stop: 21 commands, every one valid in order. */
const PLAN: Cmd[] = ['start', ...Array.from({ length: 9 }, () => ['pause', 'resume'] as Cmd[]).flat(), 'pause', 'stop'];

async function persistentRedis(dir: string, port?: number): Promise<RedisServerHandle> {
  const r = await startRedisServer({ dir, ...(port === undefined ? {} : { port }) });
  const c = new Redis(r.url);
  await c.config('SET', 'appendfsync', 'always');
  c.disconnect();
  return r;
}

test('per-session submission order holds when the daemon is SIGSTOPped past its lock and Redis restarts from its AOF', async (t) => {
  const dir = tempDir();
  const redisDir = join(dir, 'redis');
  let redis = await persistentRedis(redisDir);
  const port = redis.port;
  const env = daemonEnv(redis.url, dir, {
    SESSIOND_CONCURRENCY: '16',
    SESSIOND_LOCK_DURATION_MS: '2000',
    SESSIOND_STALLED_INTERVAL_MS: '1000',
    SESSIOND_SEQUENCE_GAP_MS: '3000',
    SESSIOND_RUNNERS: 'false',
  });
  const queueName = env.SESSIOND_QUEUE!;
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const queue = new Queue(queueName, { connection, prefix: 'sessiond' });
  queue.on('error', () => undefined);
  const ids = Array.from({ length: SESSIONS }, (_, i) => `st-${i}`);
  // Interleaved: runs of 3 commands per session side by side, so one session has several jobs active at once.
  const jobs: { sessionId: string; cmd: Cmd; jobId: string }[] = [];
  for (let step = 0; step < PLAN.length; step += 3) {
    for (const id of ids) for (let s = step; s < Math.min(step + 3, PLAN.length); s++) jobs.push({ sessionId: id, cmd: PLAN[s]!, jobId: `${id}-${s}` });
  }
  // What a submitter does: INCR the session's sequence key, put the number in the job as `seq`, add the job.
  const submit = async (batch: typeof jobs) => {
    const withSeq = [];
    for (const j of batch) {
      const seq = await connection.incr(sequenceKey('sessiond', queueName, j.sessionId));
      const data = j.cmd === 'start' ? { ...paperConfig({ id: j.sessionId }), seq } : { sessionId: j.sessionId, seq };
      withSeq.push({ name: j.cmd, data, opts: { jobId: j.jobId, attempts: 1, removeOnComplete: false, removeOnFail: false } });
    }
    await queue.addBulk(withSeq);
  };
  const bursts = Array.from({ length: 6 }, (_, i) => jobs.slice(i * 70, (i + 1) * 70));
  let d: DaemonProcess = spawnDaemon(env);
  try {
    await d.waitForLog((l) => l.msg === 'ready', 30_000);
    await submit(bursts[0]!);
    await submit(bursts[1]!);
    // Frozen with jobs in flight: their locks expire (2 s), they are redelivered after later ones of their session.
    d.child.kill('SIGSTOP');
    await submit(bursts[2]!);
    await new Promise((r) => setTimeout(r, 3500));
    d.child.kill('SIGCONT');
    await submit(bursts[3]!);
    // Redis goes away under load for 4 s (fetch replies lost) and comes back from its append-only file.
    await redis.stop();
    await new Promise((r) => setTimeout(r, 4000));
    redis = await persistentRedis(redisDir, port);
    await submit(bursts[4]!);
    await submit(bursts[5]!);

    const outcomes = new Map<string, string>();
    const deadline = Date.now() + 60_000;
    while (outcomes.size < jobs.length && Date.now() < deadline) {
      for (const j of jobs) {
        if (outcomes.has(j.jobId)) continue;
        const state = await queue.getJobState(j.jobId);
        if (state === 'completed') outcomes.set(j.jobId, ((await queue.getJob(j.jobId))!.returnvalue as SessionView).status);
        else if (state === 'failed') outcomes.set(j.jobId, (await queue.getJob(j.jobId))!.failedReason);
      }
      if (outcomes.size < jobs.length) await new Promise((r) => setTimeout(r, 250));
    }
    t.is(outcomes.size, jobs.length, 'every command settled');
    t.is(d.child.exitCode, null, 'the daemon stayed up');
    for (const j of jobs) t.true((await queue.getJob(j.jobId))!.attemptsMade <= 1, `${j.jobId} was never retried`);
    const expected = expectedOutcomes(PLAN);
    for (const id of ids) {
      const got = jobs.filter((j) => j.sessionId === id).map((j) => outcomes.get(j.jobId));
      t.deepEqual(got, expected, `session ${id}: each command's outcome is the model's, applied in submission order`);
    }
    t.true(d.logs.some((l) => String(l.msg).includes('lost its lock')) || d.logs.some((l) => l.msg === 'command'), 'the run went through');
    t.false(d.logs.some((l) => String(l.msg).includes('(Redis unreachable?)')));
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);

    const db = new BetterSqlite3(join(dir, 'sessiond.db'), { readonly: true });
    for (const id of ids) {
      const rows = db.prepare('SELECT to_state FROM session_transitions WHERE session_id = ? ORDER BY seq').all(id) as { to_state: string }[];
      t.deepEqual(rows.map((r) => r.to_state), ['created', ...expected], `history of ${id} is in submission order`);
    }
    const skipped = db.prepare("SELECT COUNT(*) AS n FROM command_sequence WHERE outcome = 'skipped'").get() as { n: number };
    t.is(skipped.n, 0, 'nothing was skipped: every command arrived');
    db.close();
    t.log(`${jobs.length} commands over ${SESSIONS} sessions; lock-lost lines: ${d.logs.filter((l) => String(l.msg).includes('lost its lock')).length}`);
  } finally {
    d.kill('SIGCONT');
    d.kill('SIGKILL');
    await queue.close().catch(() => undefined);
    connection.disconnect();
    await redis.stop();
  }
});

test('a missing seq is waited for while it is in the queue, skipped with a reason once it is nowhere; a late one is OUT_OF_ORDER, a reused one (counter reset) applies in arrival order', async (t) => {
  const { randomUUID } = await import('node:crypto');
  const { CommandConsumer } = await import('../src/commands/command-consumer.js');
  const { SqliteCommandSequenceLog } = await import('../src/persistence/sqlite-command-sequence.js');
  const { buildManager } = await import('./helpers/manager.js');
  const { QueueEvents } = await import('bullmq');
  const redis = await startRedisServer();
  const m = buildManager();
  const queueName = `test-${randomUUID()}`;
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const warnings: string[] = [];
  const logger = (await import('pino')).pino({ level: 'warn' }, { write: (l: string) => void warnings.push(String(JSON.parse(l).msg)) });
  const consumer = new CommandConsumer(m.manager, { connection, queueName, sequences: new SqliteCommandSequenceLog(m.db), sequenceGapMs: 600, logger });
  await consumer.start();
  const qc = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: qc, prefix: 'sessiond' });
  const ec = new Redis(redis.url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(queueName, { connection: ec, prefix: 'sessiond' });
  await events.waitUntilReady();
  const outcome = async (job: { waitUntilFinished(e: unknown, ms: number): Promise<unknown> }) =>
    job.waitUntilFinished(events, 20_000).then(
      (v) => (v as SessionView).status,
      (e: Error) => e.message,
    );
  try {
    const start = await queue.add('start', { ...paperConfig({ id: 'g1' }), seq: 1 }, { jobId: 'g1-1' });
    t.is(await outcome(start), 'running');
    // seq 2 is delayed past the gap: the daemon finds it in the queue, keeps waiting, and applies 2 then 3.
    const third = await queue.add('resume', { sessionId: 'g1', seq: 3 }, { jobId: 'g1-3' });
    const second = await queue.add('pause', { sessionId: 'g1', seq: 2 }, { jobId: 'g1-2', delay: 1500 });
    t.deepEqual(await Promise.all([outcome(second), outcome(third)]), ['paused', 'running']);
    // seq 4 never comes: after the gap it is skipped, and 5 applies.
    const fifth = await queue.add('pause', { sessionId: 'g1', seq: 5 }, { jobId: 'g1-5' });
    t.is(await outcome(fifth), 'paused');
    t.true(warnings.some((w) => /^skipped a missing command: seq 4 of session g1 was not in the queue after 600 ms/.test(w)));
    const late = await queue.add('resume', { sessionId: 'g1', seq: 4 }, { jobId: 'g1-4' });
    t.regex(await outcome(late), /^OUT_OF_ORDER: command g1-4 \(seq 4 of session g1\) arrived after its place was skipped: /);
    // A number another command took (the counter was reset: Redis lost its data) applies in arrival order.
    const reused = await queue.add('resume', { sessionId: 'g1', seq: 5 }, { jobId: 'g1-5b' });
    t.is(await outcome(reused), 'running');
    t.true(warnings.some((w) => /^seq 5 of session g1 was already taken \(its counter was reset/.test(w)));
    t.is(await qc.get(sequenceKey('sessiond', queueName, 'g1')), '5', 'the counter is moved past what is settled');
    // Without seq, a command works as before.
    t.is(await outcome(await queue.add('pause', { sessionId: 'g1' })), 'paused');
    t.deepEqual(m.manager.history('g1').map((h) => h.to), ['created', 'running', 'paused', 'running', 'paused', 'running', 'paused']);
  } finally {
    await events.close();
    ec.disconnect();
    await consumer.close();
    await queue.close();
    qc.disconnect();
    connection.disconnect();
    await m.close();
    await redis.stop();
  }
});
