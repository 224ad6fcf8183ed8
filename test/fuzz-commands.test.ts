import test from 'ava';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import BetterSqlite3 from 'better-sqlite3';
import fc from 'fast-check';
import { COMMAND_NAMES } from '../src/commands/schemas.js';
import { ErrorCode } from '../src/domain/errors.js';
import { daemonEnv, spawnDaemon, tempDir } from './helpers/daemon.js';
import { paperConfig } from './helpers/manager.js';
import { startTestRedis } from './helpers/redis.js';

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode).filter((c) => c !== 'INTERNAL'));
const PROTOTYPE_NAMES = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__', 'isPrototypeOf', 'toLocaleString'];

/** Values that look like command data: valid ones, valid ones with a field replaced by anything, anything at all. */
const anyJson = fc.jsonValue({ maxDepth: 4 });
const field = fc.oneof(
  fc.constantFrom('sessionId', 'id', 'reason', 'seq', 'kind', 'strategy', 'symbols', 'commandId', 'liveOnly', 'metrics', 'params', '__proto__', 'constructor'),
  fc.string({ maxLength: 12 }),
);
const sessionish = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('f-1', 'f-2', 'f-3') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('<b>x</b>', '../x', 'a\u202eb', 'x'.repeat(200)) },
);
const payload = fc.oneof(
  { weight: 3, arbitrary: fc.record({ sessionId: fc.constantFrom('f-1', 'f-2', 'f-3') }) },
  { weight: 2, arbitrary: fc.constantFrom('f-1', 'f-2', 'f-3').map((id) => paperConfig({ id })) },
  fc.record({ sessionId: sessionish, reason: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }) }, { requiredKeys: ['sessionId'] }),
  sessionish.map((id) => paperConfig({ id })),
  fc.tuple(sessionish, field, anyJson).map(([id, k, v]) => ({ ...paperConfig({ id }), [k]: v })),
  fc.tuple(field, anyJson).map(([k, v]) => ({ sessionId: 'f-1', [k]: v })),
  fc.record({ strategyId: fc.string({ maxLength: 10 }), metrics: anyJson }),
  fc.record({ commandId: fc.string({ maxLength: 20 }) }),
  anyJson,
);
const jobName = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...COMMAND_NAMES) }, fc.constantFrom(...PROTOTYPE_NAMES), fc.string({ maxLength: 16 }));
const sessionIds = fc.constantFrom('f-1', 'f-2', 'f-3');
/** Names that fit their data (most succeed or meet a state rule), beside any name with any data. */
const coherent = fc.oneof(
  fc.tuple(fc.constantFrom('pause', 'resume', 'stop', 'get-session'), sessionIds).map(([name, sessionId]) => ({ name, data: { sessionId } as unknown })),
  sessionIds.map((id) => ({ name: 'start', data: paperConfig({ id }) as unknown })),
  fc.constantFrom('list-sessions', 'kill-switch').map((name) => ({ name, data: {} as unknown })),
);
const job = fc.oneof({ weight: 2, arbitrary: coherent }, { weight: 3, arbitrary: fc.record({ name: jobName, data: payload }) });

test('fuzz: any job name and payload through the real queue ends completed or failed with a known code, never INTERNAL, never retried', async (t) => {
  t.timeout(120_000);
  const redis = await startTestRedis();
  const dir = tempDir();
  const env = daemonEnv(redis.url, dir, { SESSIOND_RUNNERS: 'false' });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(env.SESSIOND_QUEUE!, { connection, prefix: 'sessiond' });
  const d = spawnDaemon(env);
  let batch = 0;
  let total = 0;
  const codes = new Map<string, number>();
  try {
    await d.waitForLog((l) => l.msg === 'ready', 30_000);
    await fc.assert(
      fc.asyncProperty(fc.array(job, { minLength: 10, maxLength: 40 }), async (jobs) => {
        batch++;
        const added = await queue.addBulk(jobs.map((j, i) => ({ name: j.name, data: j.data, opts: { jobId: `fz-${batch}-${i}`, attempts: 3 } })));
        const deadline = Date.now() + 30_000;
        const pending = new Set(added.map((a) => a.id!));
        while (pending.size > 0 && Date.now() < deadline) {
          for (const id of [...pending]) {
            const state = await queue.getJobState(id);
            if (state === 'completed' || state === 'failed') pending.delete(id);
          }
          if (pending.size > 0) await new Promise((r) => setTimeout(r, 100));
        }
        if (pending.size > 0) return false;
        for (const a of added) {
          const done = (await queue.getJob(a.id!))!;
          if (done.attemptsMade > 1) return false;
          if (done.finishedOn && done.failedReason) {
            const code = done.failedReason.split(':')[0]!;
            codes.set(code, (codes.get(code) ?? 0) + 1);
            if (!KNOWN_CODES.has(code)) {
              t.log(`job ${a.name} ${JSON.stringify(a.data).slice(0, 300)} -> ${done.failedReason.slice(0, 300)}`);
              return false;
            }
          } else codes.set('ok', (codes.get('ok') ?? 0) + 1);
        }
        total += added.length;
        return d.child.exitCode === null;
      }),
      { numRuns: 12, seed: 20261201, endOnFailure: true },
    );
    t.is(d.child.exitCode, null, 'the daemon is up');
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    const db = new BetterSqlite3(join(dir, 'sessiond.db'), { readonly: true });
    t.is(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
    t.log(`${total} fuzzed jobs in ${batch} batches; outcomes ${JSON.stringify(Object.fromEntries(codes))}`);
  } finally {
    d.kill('SIGKILL');
    await queue.close();
    connection.disconnect();
    await redis.stop();
  }
});
