import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandClient } from '../src/commands/command-client.js';
import { freePort, pingRedis } from '../src/daemon/redis-server.js';
import { daemonEnv, spawnDaemon, tempDir, type SpawnDaemonOptions } from './helpers/daemon.js';

/** Gone, or a zombie waiting for init to reap it: either way no longer running. */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(stat, 'utf8'));
  } catch {
    return false;
  }
}

// Ctrl-C in a terminal sends SIGINT to the whole foreground process group: npm, sh, node, and (before it
// ran in its own group) the private redis-server, which then died before the daemon had drained.
async function ctrlC(t: import('ava').ExecutionContext, options: SpawnDaemonOptions): Promise<void> {
  const dir = tempDir('sessiond-clean-stop-');
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const env = daemonEnv(url, dir, { SESSIOND_REDIS_EMBEDDED: 'true', SESSIOND_REDIS_DIR: join(dir, 'redis') });
  const d = spawnDaemon(env, { ...options, detached: true });
  let redisPid: number | undefined;
  try {
    const started = await d.waitForLog((l) => l.msg === 'started a private redis-server', 60_000);
    redisPid = started.pid as number;
    await d.waitForLog((l) => l.msg === 'ready', 60_000);
    // A trading session, so the stop has runners to halt and Redis work to drain.
    const client = new CommandClient({ redisUrl: url, queueName: env.SESSIOND_QUEUE });
    try {
      await client.submit('start', { id: 'cs-1', kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'] }, { timeoutMs: 30_000 });
    } finally {
      await client.close();
    }
    process.kill(-d.child.pid!, 'SIGINT');
    const { code, signal } = await d.exited;
    t.is(signal, null, `not killed by ${signal}`);
    t.is(code, 0);
    t.truthy(d.logs.find((l) => l.msg === 'stopped'));
    const complaints = d.logs.filter((l) => /ECONNREFUSED|redis connection error|exited before sessiond stopped it/.test(JSON.stringify(l)));
    t.deepEqual(complaints, [], 'Redis stayed up until sessiond stopped it');
    t.false(await pingRedis(url, 500), 'the private redis-server is stopped');
    t.false(running(redisPid), `redis-server ${redisPid} exited`);
  } finally {
    d.kill('SIGKILL');
    if (redisPid !== undefined && running(redisPid)) process.kill(redisPid, 'SIGKILL');
  }
}

test.serial('Ctrl-C on the daemon stops it with exit 0, its private Redis last', async (t) => {
  await ctrlC(t, {});
});

test.serial('Ctrl-C on `npm start` exits 0 too', async (t) => {
  await ctrlC(t, { command: ['npm', 'start', '--silent'] });
});
