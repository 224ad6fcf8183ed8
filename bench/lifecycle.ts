/**
 * Issue 2 figures: command round trip and throughput next to raw BullMQ doing a no-op in the same run,
 * daemon start-to-ready with 10,000 persisted sessions, and session save latency.
 * Run: node --import=tsx bench/lifecycle.ts   (needs redis-server on PATH; starts its own)
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { COMMAND_JOB_OPTIONS, CommandClient } from '../src/commands/command-client.js';
import { CommandConsumer } from '../src/commands/command-consumer.js';
import type { Session } from '../src/domain/session.js';
import { SqlitePaperTradingSessionRepository } from '../src/persistence/sqlite-session-repositories.js';
import { startRedisServer } from '../src/daemon/redis-server.js';
import { createLogger } from '../src/daemon/logger.js';
import { pino } from 'pino';

// The daemon logs one line per command: so does the bench (to /dev/null), so its cost is counted.
const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
import { buildManager, paperConfig } from '../test/helpers/manager.js';
import { daemonEnv, spawnDaemon, tempDir } from '../test/helpers/daemon.js';

const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 2000);
const THROUGHPUT_SESSIONS = 1000;
const THROUGHPUT_COMMANDS = Number(process.env.BENCH_COMMANDS ?? 10_000);
const CONCURRENCY = 16;
const RECOVERY_SESSIONS = 10_000;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
function summary(samples: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}
const ms = (n: number) => `${n.toFixed(3)} ms`;

export async function rawRoundTrip(url: string): Promise<number[]> {
  const name = `raw-${randomUUID()}`;
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const worker = new Worker(name, async () => ({ ok: true }), { connection: conn, prefix: 'sessiond', concurrency: 1 });
  const qConn = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: qConn, prefix: 'sessiond' });
  const evConn = new Redis(url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(name, { connection: evConn, prefix: 'sessiond' });
  await events.waitUntilReady();
  await worker.waitUntilReady();
  const samples: number[] = [];
  for (let i = 0; i < ROUND_TRIPS + 100; i++) {
    const t0 = performance.now();
    // The same job options sessionctl uses, so the difference is sessiond's own work.
    const job = await queue.add('noop', { sessionId: 'x' }, { ...COMMAND_JOB_OPTIONS, jobId: randomUUID() });
    await job.waitUntilFinished(events);
    if (i >= 100) samples.push(performance.now() - t0);
  }
  await worker.close();
  await queue.close();
  await events.close();
  for (const c of [conn, qConn, evConn]) c.disconnect();
  return samples;
}

export async function sessiondRoundTrip(url: string): Promise<{ samples: number[]; writes: number[]; inside: number[] }> {
  const queueName = `rt-${randomUUID()}`;
  const writes: number[] = [];
  const m = buildManager({ backgroundCheckpoints: true, extra: { onWrite: (w) => writes.push(w) } });
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const inside: number[] = [];
  const consumer = new CommandConsumer(m.manager, { connection: conn, queueName, concurrency: 1, logger, onOutcome: (o) => inside.push(o.ms) });
  await consumer.start();
  const client = new CommandClient({ redisUrl: url, queueName });
  await client.submit('start', paperConfig({ id: 'rt' }));
  const samples: number[] = [];
  for (let i = 0; i < ROUND_TRIPS + 100; i++) {
    const t0 = performance.now();
    await client.submit(i % 2 === 0 ? 'pause' : 'resume', { sessionId: 'rt' });
    if (i >= 100) samples.push(performance.now() - t0);
  }
  await client.close();
  await consumer.close();
  conn.disconnect();
  await m.close();
  return { samples, writes, inside: inside.slice(-ROUND_TRIPS) };
}

async function drain(queue: Queue, total: number, worker: Worker): Promise<number> {
  let done = 0;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const onDone = () => {
      done++;
      if (done === total) resolve(performance.now() - t0);
    };
    worker.on('completed', onDone);
    worker.on('failed', onDone);
  });
}

export async function rawThroughput(url: string): Promise<number> {
  const name = `rawtp-${randomUUID()}`;
  const qConn = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: qConn, prefix: 'sessiond' });
  await queue.addBulk(Array.from({ length: THROUGHPUT_COMMANDS }, (_, i) => ({ name: 'noop', data: { sessionId: `s-${i % THROUGHPUT_SESSIONS}` }, opts: { removeOnComplete: true } })));
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const worker = new Worker(name, async () => ({ ok: true }), { connection: conn, prefix: 'sessiond', concurrency: CONCURRENCY, autorun: false });
  const finished = drain(queue, THROUGHPUT_COMMANDS, worker);
  void worker.run();
  const elapsed = await finished;
  await worker.close();
  await queue.close();
  conn.disconnect();
  qConn.disconnect();
  return (THROUGHPUT_COMMANDS / elapsed) * 1000;
}

export async function sessiondThroughput(url: string): Promise<number> {
  const queueName = `tp-${randomUUID()}`;
  const m = buildManager({ backgroundCheckpoints: true });
  for (let i = 0; i < THROUGHPUT_SESSIONS; i++) await m.manager.startSession(paperConfig({ id: `s-${i}` }));
  const qConn = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: qConn, prefix: 'sessiond' });
  // Each session alternates pause/resume: every command is a real transition with its SQLite transaction.
  await queue.addBulk(
    Array.from({ length: THROUGHPUT_COMMANDS }, (_, i) => {
      const round = Math.floor(i / THROUGHPUT_SESSIONS);
      return { name: round % 2 === 0 ? 'pause' : 'resume', data: { sessionId: `s-${i % THROUGHPUT_SESSIONS}` }, opts: { removeOnComplete: true } };
    }),
  );
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const consumer = new CommandConsumer(m.manager, { connection: conn, queueName, concurrency: CONCURRENCY, logger });
  let done = 0;
  let failed = 0;
  const t0 = performance.now();
  const finished = new Promise<number>((resolve) => {
    (consumer as unknown as { o: { onOutcome: (o: { outcome: string }) => void } }).o.onOutcome = (o) => {
      done++;
      if (o.outcome !== 'ok') failed++;
      if (done === THROUGHPUT_COMMANDS) resolve(performance.now() - t0);
    };
  });
  await consumer.start();
  const elapsed = await finished;
  if (failed) throw new Error(`${failed} commands failed in the throughput run`);
  await consumer.close();
  await queue.close();
  conn.disconnect();
  qConn.disconnect();
  await m.close();
  return (THROUGHPUT_COMMANDS / elapsed) * 1000;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export async function startToReady(url: string, sessions: number): Promise<{ readyMs: number; recoveryMs: number; rssMb: number }> {
  const dir = tempDir();
  if (sessions > 0) {
    const m = buildManager({ file: join(dir, 'sessiond.db') });
    // Mixed states: 1/3 paused, the rest running.
    for (let i = 0; i < sessions; i++) {
      await m.manager.startSession(paperConfig({ id: `r-${i}` }));
      if (i % 3 === 0) await m.manager.pauseSession(`r-${i}`);
    }
    await m.close();
  }
  // Lifecycle only: runners off, so this measures recovery of actors and rows (bench/runner-load.ts covers runners).
  const env = daemonEnv(url, dir, { SESSIOND_RUNNERS: 'false' });
  const t0 = performance.now();
  const d = spawnDaemon(env);
  await d.waitForLog((l) => l.msg === 'ready', 60_000);
  const readyMs = performance.now() - t0;
  const recovered = d.logs.find((l) => l.msg === 'sessions recovered')!;
  if (recovered.recovered !== sessions) throw new Error(`recovered ${String(recovered.recovered)} of ${sessions}`);
  await new Promise((r) => setTimeout(r, 500));
  const rss = rssKb(d.child.pid!);
  d.kill('SIGTERM');
  await d.exited;
  return { readyMs, recoveryMs: Number(recovered.ms), rssMb: rss / 1024 };
}

async function saveLatency(): Promise<{ p50: number; p99: number }> {
  const m = buildManager();
  const repo = new SqlitePaperTradingSessionRepository(m.store);
  const samples: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const at = new Date().toISOString();
    const s: Session = {
      id: `save-${i % 1000}`, kind: 'paper', status: 'running', strategy: { id: 'sma-crossover', name: 'SMA', params: { fast: 5, slow: 20 } },
      brokerId: 'paper', accountId: 'default', symbols: ['AAPL', 'MSFT'], executionMode: 'auto', riskControls: { maxOrderQty: 10 },
      flattenOnStop: false, positions: { AAPL: { qty: i, avgPrice: 100 } }, createdAt: at, startedAt: at, updatedAt: at,
    };
    const t0 = performance.now();
    await repo.save(s);
    samples.push(performance.now() - t0);
  }
  await m.close();
  return summary(samples);
}

/** Median and 99th percentile of samples (ms). */
export { summary };

// Run on its own (node --import=tsx bench/lifecycle.ts); bench/run-all.ts imports the measurements.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
const redis = await startRedisServer();
try {
  console.log(`sessiond lifecycle bench (node ${process.version}, ${ROUND_TRIPS} round trips, ${THROUGHPUT_COMMANDS} commands over ${THROUGHPUT_SESSIONS} sessions at concurrency ${CONCURRENCY})`);
  const raw = summary(await rawRoundTrip(redis.url));
  const { samples, writes, inside } = await sessiondRoundTrip(redis.url);
  const ours = summary(samples);
  console.log(`round trip, sequential   raw BullMQ no-op   p50 ${ms(raw.p50)}  p99 ${ms(raw.p99)}`);
  console.log(`                         sessiond command   p50 ${ms(ours.p50)}  p99 ${ms(ours.p99)}`);
  console.log(`                         ratio (sessiond / raw)  p50 ${(ours.p50 / raw.p50).toFixed(2)}x  p99 ${(ours.p99 / raw.p99).toFixed(2)}x   (target <= 1.5x)`);
  const ins = summary(inside);
  console.log(`of which in the daemon (job taken -> reply ready)  p50 ${ms(ins.p50)}  p99 ${ms(ins.p99)}`);
  const w = summary(writes);
  console.log(`write-ahead transaction  p50 ${ms(w.p50)}  p99 ${ms(w.p99)}`);

  const rawTp = await rawThroughput(redis.url);
  const ourTp = await sessiondThroughput(redis.url);
  console.log(`throughput               raw BullMQ no-op   ${rawTp.toFixed(0)} jobs/s`);
  console.log(`                         sessiond commands  ${ourTp.toFixed(0)} commands/s`);
  console.log(`                         ratio (sessiond / raw)  ${(ourTp / rawTp).toFixed(2)}   (target >= 0.5)`);

  const empty = await startToReady(redis.url, 0);
  const full = await startToReady(redis.url, RECOVERY_SESSIONS);
  console.log(`start-to-ready           0 sessions       ${empty.readyMs.toFixed(0)} ms (recovery ${empty.recoveryMs} ms), RSS ${empty.rssMb.toFixed(1)} MB`);
  console.log(`                         ${RECOVERY_SESSIONS} sessions   ${full.readyMs.toFixed(0)} ms (recovery ${full.recoveryMs} ms), RSS ${full.rssMb.toFixed(1)} MB   (target recovery < 2000 ms)`);

  const save = await saveLatency();
  console.log(`session save (repository, 10,000 saves)  p50 ${ms(save.p50)}  p99 ${ms(save.p99)}   (seed: < 500 ms)`);
} finally {
  await redis.stop();
}
}
