import test from 'ava';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import type { SessionView } from '../src/domain/session.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { paperConfig } from './helpers/manager.js';
import { expectedOutcomes, randomCommands, rng, type Cmd } from './helpers/model.js';
import { startTestRedis } from './helpers/redis.js';


const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

async function startReady(env: Record<string, string>): Promise<DaemonProcess> {
  const d = spawnDaemon(env);
  await d.waitForLog(isReady, 30_000);
  return d;
}

test('sessions in every state survive a daemon restart unchanged, and SIGTERM exits 0', async (t) => {
  const redis = await startTestRedis();
  const dir = tempDir();
  const env = daemonEnv(redis.url, dir);
  const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
  try {
    let d = await startReady(env);
    await client.submit('start', paperConfig({ id: 'r-running' }));
    await client.submit('start', paperConfig({ id: 'r-paused' }));
    await client.submit('pause', { sessionId: 'r-paused' });
    await client.submit('start', paperConfig({ id: 'r-stopped' }));
    await client.submit('stop', { sessionId: 'r-stopped', reason: 'done' });
    const before = await client.submit<SessionView[]>('list-sessions', {});
    d.kill('SIGTERM');
    t.deepEqual(await d.exited, { code: 0, signal: null });

    d = await startReady(env);
    const recovered = d.logs.find((l) => l.msg === 'sessions recovered')!;
    t.is(recovered.recovered, 2);
    t.is(typeof recovered.ms, 'number');
    const after = await client.submit<SessionView[]>('list-sessions', {});
    t.deepEqual(after, before);
    // The restored actors still refuse and accept the right commands.
    await t.throwsAsync(client.submit('resume', { sessionId: 'r-running' }), { message: 'session r-running is running; cannot resume' });
    t.is((await client.submit<SessionView>('resume', { sessionId: 'r-paused' })).status, 'running');
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
  } finally {
    await client.close();
    await redis.stop();
  }
});

test('SIGKILL during a storm of commands: every command ends with exactly one outcome, in per-session order', async (t) => {
  const redis = await startTestRedis();
  const dir = tempDir();
  // Short locks so a killed daemon's active jobs are redelivered within seconds.
  const env = daemonEnv(redis.url, dir, { SESSIOND_CONCURRENCY: '16', SESSIOND_LOCK_DURATION_MS: '1500', SESSIOND_STALLED_INTERVAL_MS: '1000' });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(env.SESSIOND_QUEUE!, { connection, prefix: 'sessiond' });
  const next = rng(7);
  const SESSIONS = 40;
  const STEPS = 15;
  const plans = new Map(Array.from({ length: SESSIONS }, (_, i) => [`k-${i}`, randomCommands(next, STEPS)] as const));
  const jobs: { sessionId: string; cmd: Cmd; jobId: string }[] = [];
  // Runs of 3 consecutive commands of one session sit side by side in the queue, so at concurrency 16
  // several commands of the same session are active together when a kill lands.
  for (let step = 0; step < STEPS; step += 3) {
    for (const [id, plan] of plans) {
      for (let s = step; s < Math.min(step + 3, STEPS); s++) jobs.push({ sessionId: id, cmd: plan[s]!, jobId: `${id}-${s}` });
    }
  }
  let d = spawnDaemon(env);
  const daemons = [d];
  const kills: number[] = [];
  try {
    await d.waitForLog(isReady, 30_000);
    // Submit in bursts; kill the daemon three times while they flow, restarting it each time.
    const BURST = 60;
    let submitted = 0;
    for (let k = 0; submitted < jobs.length; k++) {
      const burst = jobs.slice(submitted, submitted + BURST);
      await queue.addBulk(
        burst.map((j) => ({
          name: j.cmd,
          data: j.cmd === 'start' ? paperConfig({ id: j.sessionId }) : { sessionId: j.sessionId },
          opts: { jobId: j.jobId, removeOnComplete: false, removeOnFail: false },
        })),
      );
      submitted += burst.length;
      if (k % 3 === 2 && kills.length < 3) {
        await new Promise((r) => setTimeout(r, 5 + Math.floor(next() * 20)));
        d.kill('SIGKILL');
        await d.exited;
        kills.push(submitted);
        d = spawnDaemon(env);
        daemons.push(d);
        await d.waitForLog(isReady, 30_000);
      } else {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    t.is(kills.length, 3);

    // Wait for every job to settle.
    const outcomes = new Map<string, string>();
    const deadline = Date.now() + 60_000;
    while (outcomes.size < jobs.length && Date.now() < deadline) {
      for (const j of jobs) {
        if (outcomes.has(j.jobId)) continue;
        const state = await queue.getJobState(j.jobId);
        if (state === 'completed') outcomes.set(j.jobId, ((await queue.getJob(j.jobId))!.returnvalue as SessionView).status);
        else if (state === 'failed') outcomes.set(j.jobId, (await queue.getJob(j.jobId))!.failedReason.split(':')[0]!);
      }
      if (outcomes.size < jobs.length) await new Promise((r) => setTimeout(r, 250));
    }
    if (outcomes.size < jobs.length) {
      const states: Record<string, number> = {};
      for (const j of jobs) if (!outcomes.has(j.jobId)) { const st = String(await queue.getJobState(j.jobId)); states[st] = (states[st] ?? 0) + 1; }
      t.log('unsettled by state', states, 'last daemon tail', d.logs.slice(-5), d.stderr().slice(-1500));
    }
    t.is(outcomes.size, jobs.length, 'every command settled');
    for (const j of jobs) {
      const job = (await queue.getJob(j.jobId))!;
      t.is(job.attemptsMade <= 1 ? 1 : job.attemptsMade, 1, `job ${j.jobId} was attempted once as far as BullMQ retries go`);
    }
    for (const [id, plan] of plans) {
      const got = jobs.filter((j) => j.sessionId === id).map((j) => outcomes.get(j.jobId));
      t.deepEqual(got, expectedOutcomes(plan), `session ${id}`);
    }
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);

    const db = new BetterSqlite3(join(dir, 'sessiond.db'), { readonly: true });
    // Exactly one command record per submitted command.
    const commandRows = db.prepare('SELECT id, COUNT(*) AS n FROM commands GROUP BY id').all() as { id: string; n: number }[];
    t.is(commandRows.length, jobs.length);
    t.true(commandRows.every((r) => r.n === 1));
    // No transition twice; each session's history is one unbroken chain.
    const dupes = db.prepare('SELECT session_id, command_id, event, COUNT(*) AS n FROM session_transitions GROUP BY 1, 2, 3 HAVING n > 1').all();
    t.deepEqual(dupes, []);
    for (const [id, plan] of plans) {
      const rows = db.prepare('SELECT seq, from_state, to_state FROM session_transitions WHERE session_id = ? ORDER BY seq').all(id) as { seq: number; from_state: string | null; to_state: string }[];
      rows.forEach((r, i) => {
        t.is(r.seq, i + 1);
        t.is(r.from_state, i === 0 ? null : rows[i - 1]!.to_state);
      });
      const expected = expectedOutcomes(plan).filter((o) => o === o.toLowerCase());
      t.deepEqual(rows.slice(1).map((r) => r.to_state), expected, `history of ${id}`);
    }
    db.close();
    const settled = daemons.map((p) => Number(p.logs.find((l) => l.settled !== undefined)?.settled ?? 0));
    const redelivered = daemons.map((p) => p.logs.filter((l) => l.msg === 'command').length);
    t.log(`${jobs.length} commands over ${SESSIONS} sessions, SIGKILL after ${kills.join(', ')} submitted`);
    t.log(`commands settled at start from a killed run, per daemon: ${settled.join(', ')}; command log lines per daemon: ${redelivered.join(', ')}`);
  } finally {
    d.kill('SIGKILL');
    await queue.close();
    connection.disconnect();
    await redis.stop();
  }
});

test('Redis stopped and restarted under a running daemon: it stays up and resumes consuming', async (t) => {
  const redis = await startTestRedis();
  const port = redis.port;
  const dir = tempDir();
  const env = daemonEnv(redis.url, dir);
  let d: DaemonProcess | undefined;
  let restarted: Awaited<ReturnType<typeof startTestRedis>> | undefined;
  try {
    d = await startReady(env);
    const c1 = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
    await c1.submit('start', paperConfig({ id: 'survivor' }));
    await c1.close();
    await redis.stop();
    await new Promise((r) => setTimeout(r, 3000));
    t.is(d.child.exitCode, null, 'the daemon is still running without Redis');
    t.true(d.logs.some((l) => l.level === 40 && /redis|Redis/.test(String(l.msg))), 'it warned about Redis');
    restarted = await startTestRedis(port);
    const c2 = new CommandClient({ redisUrl: restarted.url, queueName: env.SESSIOND_QUEUE });
    const paused = await c2.submit<SessionView>('pause', { sessionId: 'survivor' }, { timeoutMs: 20_000 });
    t.is(paused.status, 'paused');
    await c2.close();
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
  } finally {
    d?.kill('SIGKILL');
    await restarted?.stop();
    await redis.stop();
  }
});

test('malformed jobs and unknown sessions get their codes and the daemon stays up', async (t) => {
  const redis = await startTestRedis();
  const env = daemonEnv(redis.url, tempDir());
  const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
  const d = await startReady(env);
  try {
    await t.throwsAsync(client.submit('pause', { nope: 1 }), { message: /^invalid pause job: sessionId/ });
    await t.throwsAsync(client.submit('teleport', {}), { message: 'unknown command "teleport"' });
    const err = await t.throwsAsync(client.submit('stop', { sessionId: 'nobody' }));
    t.is((err as { code?: string }).code, 'SESSION_NOT_FOUND');
    t.is(d.child.exitCode, null);
    t.is((await client.submit<SessionView>('start', paperConfig({ id: 'fine' }))).status, 'running');
    const line = d.logs.find((l) => l.command === 'stop' && l.sessionId === 'nobody')!;
    t.is(line.outcome, 'error');
    t.is(line.code, 'SESSION_NOT_FOUND');
    t.is(typeof line.latencyMs, 'number');
  } finally {
    await client.close();
    d.kill('SIGTERM');
    await d.exited;
    await redis.stop();
  }
});

test('a bad config value stops the daemon at start with a message naming the key', async (t) => {
  const d = spawnDaemon({ SESSIOND_CONCURRENCY: 'lots', SESSIOND_DB: join(tempDir(), 'x.db') });
  const { code } = await d.exited;
  t.is(code, 2);
  t.regex(d.stderr(), /queue\.concurrency: .*\(from env SESSIOND_CONCURRENCY\)/);
});
