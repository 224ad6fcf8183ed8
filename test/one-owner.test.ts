import test from 'ava';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CommandClient } from '../src/commands/command-client.js';
import { QueueLease, type LeaseHolder } from '../src/daemon/lease.js';
import type { SessionView } from '../src/domain/session.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { paperConfig } from './helpers/manager.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';

const until = untilWithin(20_000);
const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

let redis: RedisServerHandle;
test.before(async () => {
  redis = await startTestRedis();
});
test.after.always(async () => {
  await redis?.stop();
});

async function stopAll(...ds: (DaemonProcess | undefined)[]): Promise<void> {
  for (const d of ds) {
    if (!d) continue;
    d.kill('SIGKILL');
    await d.exited;
  }
}

test('a second daemon on the same SQLite file is refused at start; the lock goes with the first one, even by SIGKILL', async (t) => {
  const dir = tempDir();
  // Different queues: what refuses the second daemon is the database's lock, not the queue's lease.
  const first = spawnDaemon(daemonEnv(redis.url, dir));
  let second: DaemonProcess | undefined;
  let third: DaemonProcess | undefined;
  try {
    await first.waitForLog(isReady, 30_000);
    second = spawnDaemon(daemonEnv(redis.url, dir));
    const { code } = await second.exited;
    t.is(code, 1);
    t.regex(second.stderr(), new RegExp(`another sessiond already owns the database ${join(dir, 'sessiond.db').replace(/[.]/g, '\\.')} \\(it holds .*sessiond\\.db\\.lock\\)`));
    t.false(second.logs.some((l) => l.msg === 'sessions recovered'), 'the refused daemon recovered nothing');
    t.is(first.child.exitCode, null, 'the first daemon is still up');

    first.kill('SIGKILL');
    await first.exited;
    third = spawnDaemon(daemonEnv(redis.url, dir));
    await third.waitForLog(isReady, 30_000);
    t.pass('a SIGKILLed owner leaves no stale lock');
  } finally {
    await stopAll(first, second, third);
  }
});

test('a second daemon on the same queue with another SQLite file refuses to start, or waits as a standby and takes over', async (t) => {
  const queue = `test-lease-${Date.now()}`;
  const env = (extra: Record<string, string> = {}) => ({ ...daemonEnv(redis.url, tempDir(), extra), SESSIOND_QUEUE: queue, SESSIOND_LEASE_TTL_MS: '1500' });
  const first = spawnDaemon(env());
  let refused: DaemonProcess | undefined;
  let standby: DaemonProcess | undefined;
  const client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  try {
    await first.waitForLog(isReady, 30_000);
    const fence1 = Number(first.logs.find((l) => l.msg === 'holding the queue lease')!.fence);

    refused = spawnDaemon(env());
    t.is((await refused.exited).code, 1);
    t.regex(refused.stderr(), new RegExp(`queue ${queue} is leased by another sessiond \\(pid ${first.child.pid} on .*, fence ${fence1}\\)`));
    t.false(refused.logs.some((l) => l.msg === 'sessions recovered'));

    standby = spawnDaemon(env({ SESSIOND_STANDBY: 'true' }));
    const waiting = await standby.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('standby: queue'));
    t.regex(String(waiting.msg), /waiting for its lease/);
    // Only the holder consumes: several commands, all in the first daemon's database.
    for (let i = 0; i < 5; i++) await client.submit('start', paperConfig({ id: `own-${i}` }));
    // The reply can reach us before the daemon's log line for it has crossed its stdout pipe: wait for the lines.
    await until('five applied commands logged by the lease holder', () => first.logs.filter((l) => l.msg === 'command' && l.outcome === 'ok').length >= 5);
    t.is(first.logs.filter((l) => l.msg === 'command' && l.outcome === 'ok').length, 5);
    t.false(standby.logs.some((l) => l.msg === 'command'), 'the standby applied nothing');
    t.false(standby.logs.some(isReady));

    first.kill('SIGTERM');
    t.is((await first.exited).code, 0);
    await standby.waitForLog(isReady, 30_000);
    const fence2 = Number(standby.logs.find((l) => l.msg === 'holding the queue lease')!.fence);
    t.true(fence2 > fence1, 'a new holder gets a higher fencing number');
    // The standby has its own database: own-0 is not there, a new session is.
    const err = await t.throwsAsync(client.submit('get-session', { sessionId: 'own-0' }));
    t.is((err as { code?: string }).code, 'SESSION_NOT_FOUND');
    t.is((await client.submit<SessionView>('start', paperConfig({ id: 'after-takeover' }))).status, 'running');
  } finally {
    await client.close();
    await stopAll(first, refused, standby);
  }
});

test('a lease overwritten by another holder is lost (onLost) and not renewed; a new acquisition gets the next fence', async (t) => {
  const r = new Redis(redis.url, { maxRetriesPerRequest: null });
  const lost: (LeaseHolder | undefined)[] = [];
  const queue = `test-fence-${Date.now()}`;
  const lease = new QueueLease({ redis: r, prefix: 'sessiond', queue, db: '/tmp/a.db', ttlMs: 600, onLost: (h) => lost.push(h) });
  try {
    const fence = await lease.acquire({ standby: false });
    t.true(lease.held);
    // Renewal keeps it past its ttl.
    await new Promise((res) => setTimeout(res, 1000));
    t.true(lease.held);
    t.is(JSON.parse((await r.get(lease.key))!).fence, fence);

    const other = new QueueLease({ redis: r, prefix: 'sessiond', queue, db: '/tmp/b.db', ttlMs: 600 });
    const refused = await other.tryAcquire();
    t.false(refused.acquired);
    // Another daemon takes the key (as if this one's lease had expired while it was stopped).
    await r.set(lease.key, JSON.stringify({ owner: other.owner, token: other.token, fence: fence + 1, pid: 1, host: 'elsewhere', db: '/tmp/b.db' }), 'PX', 60_000);
    await until('the lease to be lost', () => lost.length === 1);
    t.false(lease.held);
    t.is(lost[0]!.host, 'elsewhere');
    t.is(JSON.parse((await r.get(lease.key))!).token, other.token, 'the loser does not overwrite the new holder');
    await r.del(lease.key);
    const again = await other.tryAcquire();
    t.true(again.acquired);
    t.is(again.acquired && again.fence, fence + 1, 'the fence counter only grows');
    await other.release();
    t.is(await r.get(lease.key), null, 'release deletes the holder\'s own lease');
  } finally {
    await lease.release();
    r.disconnect();
  }
});
