import test from 'ava';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import { sequenceKey } from '../src/commands/sequence-gate.js';
import type { SessionView } from '../src/domain/session.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { paperConfig } from './helpers/manager.js';
import { expectedOutcomes, randomCommands, rng, type Cmd } from './helpers/model.js';
import { startRestartableRedis, startTestRedis } from './helpers/redis.js';


const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

async function startReady(env: Record<string, string>): Promise<DaemonProcess> {
  const d = spawnDaemon(env);
  await d.waitForLog(isReady, 90_000);
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
  // Short locks so a killed daemon's active jobs are redelivered within seconds, yet long enough that a daemon
  // starved on a loaded machine keeps the locks of the commands it is running: a lost lock moves a running
  // job back to wait, outside what the next daemon settles first (the kill log below counts lost locks).
  const env = daemonEnv(redis.url, dir, { SESSIOND_CONCURRENCY: '16', SESSIOND_LOCK_DURATION_MS: '4000', SESSIOND_STALLED_INTERVAL_MS: '1000' });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(env.SESSIOND_QUEUE!, { connection, prefix: 'sessiond' });
  const activeKey = `sessiond:${env.SESSIOND_QUEUE}:active`;
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
  // Per kill: how many jobs the killed daemon left in BullMQ's active list, and how many the next one settled.
  const kills: { submitted: number; leftActive: number; settled: number; lostLocks: number }[] = [];
  try {
    await d.waitForLog(isReady, 90_000);
    // Submit in bursts; kill the daemon three times while they flow, restarting it each time.
    const BURST = 60;
    let submitted = 0;
    for (let k = 0; submitted < jobs.length; k++) {
      const burst = jobs.slice(submitted, submitted + BURST);
      // Each command carries its session's seq, taken in submission order as the README tells submitters to:
      // a job whose lock is lost while the daemon runs (a starved machine) is still applied in order.
      const data: Record<string, unknown>[] = [];
      for (const j of burst) {
        const seq = await connection.incr(sequenceKey('sessiond', env.SESSIOND_QUEUE!, j.sessionId));
        data.push(j.cmd === 'start' ? { ...paperConfig({ id: j.sessionId }), seq } : { sessionId: j.sessionId, seq });
      }
      await queue.addBulk(
        burst.map((j, i) => ({
          name: j.cmd,
          data: data[i],
          opts: { jobId: j.jobId, removeOnComplete: false, removeOnFail: false },
        })),
      );
      submitted += burst.length;
      if (k % 3 === 2 && kills.length < 3) {
        // Kill while commands are in flight: wait (briefly) until the worker holds some.
        const until = Date.now() + 2000;
        while ((await connection.llen(activeKey)) === 0 && Date.now() < until) await new Promise((r) => setImmediate(r));
        d.kill('SIGKILL');
        await d.exited;
        const lostLocks = d.logs.filter((l) => /lost its lock/.test(String(l.msg))).length;
        const leftActive = await connection.llen(activeKey);
        d = spawnDaemon(env);
        daemons.push(d);
        await d.waitForLog(isReady, 90_000);
        const settled = Number(d.logs.find((l) => l.settled !== undefined)?.settled ?? 0);
        kills.push({ submitted, leftActive, settled, lostLocks });
      } else {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    t.is(kills.length, 3);
    t.log(`${jobs.length} commands over ${SESSIONS} sessions; per kill: ${JSON.stringify(kills)}`);
    // The crash path ran: some kill caught commands in flight, and the next daemon settled every one of them
    // (all storm commands change state, so none is skipped as read-only) before consuming.
    t.true(kills.some((k) => k.leftActive > 0), 'at least one kill caught commands in flight');
    for (const k of kills) t.is(k.settled, k.leftActive, `the restart after ${k.submitted} submitted settled what the kill left active`);

    // Wait for every job to settle.
    const outcomes = new Map<string, string>();
    const results = new Map<string, unknown>();
    const deadline = Date.now() + 60_000;
    while (outcomes.size < jobs.length && Date.now() < deadline) {
      for (const j of jobs) {
        if (outcomes.has(j.jobId)) continue;
        const state = await queue.getJobState(j.jobId);
        if (state === 'completed') {
          const job = (await queue.getJob(j.jobId))!;
          outcomes.set(j.jobId, (job.returnvalue as SessionView).status);
          results.set(j.jobId, job.returnvalue);
        } else if (state === 'failed') {
          const job = (await queue.getJob(j.jobId))!;
          outcomes.set(j.jobId, job.failedReason.split(':')[0]!);
          results.set(j.jobId, job.failedReason);
        }
      }
      if (outcomes.size < jobs.length) await new Promise((r) => setTimeout(r, 250));
    }
    if (outcomes.size < jobs.length) {
      const states: Record<string, number> = {};
      for (const j of jobs) if (!outcomes.has(j.jobId)) { const st = String(await queue.getJobState(j.jobId)); states[st] = (states[st] ?? 0) + 1; }
      t.log('unsettled by state', states, 'last daemon tail', d.logs.slice(-5), d.stderr().slice(-1500));
    }
    t.is(outcomes.size, jobs.length, 'every command settled');
    for (const [id, plan] of plans) {
      const got = jobs.filter((j) => j.sessionId === id).map((j) => outcomes.get(j.jobId));
      t.deepEqual(got, expectedOutcomes(plan), `session ${id}`);
    }
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);

    const db = new BetterSqlite3(join(dir, 'sessiond.db'), { readonly: true });
    // The command log holds one record for each submitted command and nothing else, and what BullMQ
    // returned for each job (first run or redelivery) is that record.
    const commandRows = db.prepare('SELECT id, outcome, result, error_code, error_message FROM commands').all() as {
      id: string;
      outcome: string;
      result: string | null;
      error_code: string | null;
      error_message: string | null;
    }[];
    t.deepEqual(commandRows.map((r) => r.id).sort(), jobs.map((j) => j.jobId).sort());
    const mismatched = commandRows.filter((r) =>
      r.outcome === 'ok'
        ? JSON.stringify(JSON.parse(r.result!)) !== JSON.stringify(results.get(r.id))
        : !String(results.get(r.id)).startsWith(`${r.error_code}: ${r.error_message}`),
    );
    t.deepEqual(mismatched.map((r) => r.id), [], 'the job outcome is the recorded outcome');
    // For a session whose outcomes are out of order: the order its commands were applied in, to diagnose.
    for (const [id, plan] of plans) {
      const got = jobs.filter((j) => j.sessionId === id).map((j) => outcomes.get(j.jobId));
      if (JSON.stringify(got) === JSON.stringify(expectedOutcomes(plan))) continue;
      const applied = db.prepare('SELECT id, name, outcome, error_code AS code, applied_at FROM commands WHERE session_id = ? ORDER BY applied_at').all(id);
      t.log(`session ${id}: plan ${plan.join(',')}; applied in order:`, applied);
    }
    // Each session's history is one unbroken chain, and each transition comes from the command that made it,
    // once: start makes two (created, running), each later command that changed the state one.
    for (const [id, plan] of plans) {
      const rows = db.prepare('SELECT seq, from_state, to_state, command_id FROM session_transitions WHERE session_id = ? ORDER BY seq').all(id) as {
        seq: number;
        from_state: string | null;
        to_state: string;
        command_id: string | null;
      }[];
      rows.forEach((r, i) => {
        t.is(r.seq, i + 1);
        t.is(r.from_state, i === 0 ? null : rows[i - 1]!.to_state);
      });
      const expected = expectedOutcomes(plan);
      t.deepEqual(rows.slice(1).map((r) => r.to_state), expected.filter((o) => o === o.toLowerCase()), `history of ${id}`);
      const makers = plan.flatMap((_, s) => (expected[s] === expected[s]!.toLowerCase() ? [`${id}-${s}`] : []));
      t.deepEqual(rows.map((r) => r.command_id), [makers[0], ...makers], `commands behind the history of ${id}`);
    }
    db.close();
    const redelivered = daemons.map((p) => p.logs.filter((l) => l.msg === 'command').length);
    t.log(`command log lines per daemon: ${redelivered.join(', ')}`);
  } finally {
    d.kill('SIGKILL');
    await queue.close();
    connection.disconnect();
    await redis.stop();
  }
});

test('Redis stopped and restarted under a running daemon: it stays up and resumes consuming', async (t) => {
  // Restarted on the same port: one kept out of the ephemeral range, so no other test takes it meanwhile.
  const redis = await startRestartableRedis();
  const dir = tempDir();
  const env = daemonEnv(redis.url, dir);
  let d: DaemonProcess | undefined;
  try {
    d = await startReady(env);
    const c1 = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
    await c1.submit('start', paperConfig({ id: 'survivor' }));
    await c1.close();
    await redis.stop();
    await d.waitForLog((l) => l.level === 40 && /redis|Redis/.test(String(l.msg)), 60_000);
    t.is(d.child.exitCode, null, 'the daemon is still running without Redis');
    await redis.restart();
    const c2 = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
    const paused = await c2.submit<SessionView>('pause', { sessionId: 'survivor' }, { timeoutMs: 30_000 });
    t.is(paused.status, 'paused');
    await c2.close();
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
  } finally {
    d?.kill('SIGKILL');
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
