import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import { ROOT, daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';

// Node cannot bind an AF_UNIX datagram socket, so systemd's side of NOTIFY_SOCKET is played by python3:
// it prints every datagram it receives as one JSON string per line.
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("LISTENING"), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

interface Datagram {
  fields: Record<string, string>;
}

let redis: RedisServerHandle | undefined;
let client: CommandClient | undefined;
const children: ChildProcess[] = [];
const daemons: DaemonProcess[] = [];

test.after.always(async () => {
  await client?.close();
  for (const d of daemons) d.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.stop();
});

function startListener(socketPath: string, onDatagram: (fields: Record<string, string>) => void): Promise<ChildProcess> {
  const child = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`python3 listener exited (${code}): ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const text = JSON.parse(line) as string;
      if (text === 'LISTENING') return resolve(child);
      const fields: Record<string, string> = {};
      for (const kv of text.split('\n')) {
        const i = kv.indexOf('=');
        if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1);
      }
      onDatagram(fields);
    });
  });
}

function readSessions(file: string): { statuses: Record<string, string>; transitions: number } {
  const db = new BetterSqlite3(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT id, status FROM sessions ORDER BY id').all() as { id: string; status: string }[];
    const { n } = db.prepare('SELECT COUNT(*) AS n FROM session_transitions').get() as { n: number };
    return { statuses: Object.fromEntries(rows.map((r) => [r.id, r.status])), transitions: n };
  } finally {
    db.close();
  }
}

function waitFor<T>(what: string, find: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = find();
      if (v !== undefined) return resolve(v);
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

test('READY=1 reaches NOTIFY_SOCKET only after recovery; SIGTERM sends STOPPING=1, exits 0 and leaves every status unchanged', async (t) => {
  t.true(existsSync('/usr/bin/systemd-notify'), '/usr/bin/systemd-notify is part of Debian systemd and is what sd-notify runs');
  redis = await startTestRedis();
  const dir = tempDir();
  const dbFile = join(dir, 'sessiond.db');
  const queue = `test-systemd-${randomUUID()}`;
  const env = daemonEnv(redis.url, dir, { SESSIOND_QUEUE: queue });

  // 1. Sessions in every state, persisted by a first daemon (not under systemd).
  const first = spawnDaemon({ ...env, NOTIFY_SOCKET: '' });
  daemons.push(first);
  await first.waitForLog((l) => l.msg === 'ready');
  client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  const start = (id: string) => client!.submit('start', { kind: 'paper', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'], id });
  await start('sd-running');
  await start('sd-paused');
  await client.submit('pause', { sessionId: 'sd-paused' });
  await start('sd-stopped');
  await client.submit('stop', { sessionId: 'sd-stopped' });
  first.kill('SIGTERM');
  t.is((await first.exited).code, 0, first.stderr());
  const before = readSessions(dbFile);
  t.deepEqual(before.statuses, { 'sd-paused': 'paused', 'sd-running': 'running', 'sd-stopped': 'stopped' });

  // 2. The same daemon under a fake systemd.
  const socketPath = join(dir, 'notify.sock');
  const datagrams: Datagram[] = [];
  await startListener(socketPath, (fields) => {
    datagrams.push({ fields });
  });
  const daemon: DaemonProcess = spawnDaemon({ ...env, NOTIFY_SOCKET: socketPath });
  daemons.push(daemon);
  const d = daemon;

  const ready = await waitFor('READY=1', () => datagrams.find((g) => g.fields.READY === '1'));
  // READY travels by socket and the logs by a pipe: the test may read them in either order, so the proof
  // that READY was sent after recovery is in READY's own datagram (the recovered count it reports).
  t.regex(ready.fields.STATUS ?? '', /^recovered 2 sessions; consuming /, 'READY=1 carries the finished recovery');
  const recovered = await d.waitForLog((l) => l.msg === 'sessions recovered');
  t.is(recovered.recovered, 2, 'the running and the paused session were recovered');
  const readyLine = await d.waitForLog((l) => l.msg === 'ready');
  t.true(d.logs.indexOf(recovered) < d.logs.indexOf(readyLine), "the daemon logged 'sessions recovered' before it signalled ready");
  t.is(datagrams.indexOf(ready), datagrams.findIndex((g) => 'READY' in g.fields), 'no earlier READY');
  t.is(ready.fields.MAINPID, String(d.child.pid), 'MAINPID names the daemon, not systemd-notify');
  const consuming = await d.waitForLog((l) => l.msg === 'consuming commands');
  t.true(d.logs.indexOf(consuming) < d.logs.indexOf(readyLine), 'commands are consumed before READY');

  // 3. SIGTERM: STOPPING=1, then exit 0.
  d.kill('SIGTERM');
  const { code, signal } = await d.exited;
  t.is(code, 0, d.stderr());
  t.is(signal, null);
  const stopping = datagrams.find((g) => g.fields.STOPPING === '1');
  t.truthy(stopping, 'STOPPING=1 was sent on SIGTERM');
  t.is(stopping?.fields.MAINPID, String(d.child.pid));
  t.truthy(d.logs.find((l) => l.msg === 'stopped'));

  // 4. A restart is not a lifecycle event: every status and the whole history are as they were.
  const after = readSessions(dbFile);
  t.deepEqual(after.statuses, before.statuses);
  t.is(after.transitions, before.transitions);
});

test('the unit is Type=notify with NotifyAccess=all, a StateDirectory, and a stop timeout longer than the drain', (t) => {
  const unitFile = join(ROOT, 'config/sessiond.service');
  const unit = readFileSync(unitFile, 'utf8');
  const directives = new Map<string, string>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) directives.set(m[1]!, m[2]!);
  }
  t.is(directives.get('Type'), 'notify');
  t.is(directives.get('NotifyAccess'), 'all');
  t.is(directives.get('Restart'), 'on-failure');
  t.is(directives.get('StateDirectory'), 'sessiond');
  t.is(directives.get('User'), 'sessiond');
  t.is(directives.get('Group'), 'sessiond');
  t.is(directives.get('KillMode'), 'mixed');
  t.truthy(directives.get('EnvironmentFile'));
  const defaults = JSON.parse(readFileSync(join(ROOT, 'config/default.json'), 'utf8')) as { shutdown: { drainTimeoutMs: number } };
  const stopSeconds = Number(/^(\d+)s?$/.exec(directives.get('TimeoutStopSec') ?? '')?.[1]);
  t.true(stopSeconds * 1000 > defaults.shutdown.drainTimeoutMs, `TimeoutStopSec ${stopSeconds}s > drain ${defaults.shutdown.drainTimeoutMs} ms`);
  if (existsSync('/usr/bin/systemd-analyze')) {
    // systemd's own parser: unknown keys or bad values are reported on stderr.
    const r = spawnSync('/usr/bin/systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    t.notRegex(out, /Unknown key|Invalid|Failed to parse|bad-setting/i, out);
  }
});
