import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import { SIGNATURE_HEADER } from '../src/notify/webhook-notifier.js';
import { BinanceEmulator } from './emulators/binance/binance-emulator.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';
import { writeBars, writeVenueDaemonConfig } from './helpers/venues.js';

// README claims about a restart with a live session whose venue disagrees: /readyz answers 503 `recovery`
// while recovery runs (here made slow by a slow venue at reconciliation), the reconcile_mismatch webhook
// fires (signed, with a chat text), and an alert the receiver could not take survives a daemon crash
// (webhook outbox in SQLite) and arrives once the receiver is back.

const until = untilWithin(60_000, { pollMs: 50, retryOnError: true });
const KEY = 'alerts-key-5d7f9h1j3k5m7n9p';
const SECRET = 'alerts-secret-2b4d6f8h0j2l4n6p';
const HOOK_SECRET = 'alerts-webhook-secret-0123456789';
const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  json: { id: string; event: string; sessionId?: string; text: string; data: Record<string, unknown> };
}

/** A webhook receiver that keeps its port while "down" (every connection is reset), so it comes back on the same URL. */
async function receiver() {
  const got: Received[] = [];
  let down = false;
  let refused = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push({ headers: req.headers, body, json: JSON.parse(body) as Received['json'] });
      res.writeHead(200).end();
    });
  });
  server.on('connection', (s: Socket) => {
    if (down) {
      refused++;
      s.destroy();
      return;
    }
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    get refused() {
      return refused;
    },
    setDown(v: boolean) {
      down = v;
      // Kept-alive connections from before would still carry requests: drop them.
      if (v) for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

test('restart with a venue that disagrees: /readyz 503 recovery until reconciled, then 200; the reconcile_mismatch webhook survives a crash in the outbox and arrives signed', async (t) => {
  const em = new BinanceEmulator({ apiKey: KEY, secret: SECRET });
  await em.start();
  const hook = await receiver();
  const redis = await startTestRedis();
  const dir = tempDir('sessiond-alerts-');
  const configFile = writeVenueDaemonConfig(dir, em.ccxtUrls, {
    notify: { webhooks: [{ url: hook.url, secret: HOOK_SECRET, events: ['reconcile_mismatch'] }], timeoutMs: 2000, maxAttempts: 50, backoffMs: 100 },
  });

  const env = daemonEnv(redis.url, dir, { SESSIOND_CONFIG: configFile, SESSIOND_HTTP: 'true', BN_KEY: KEY, BN_SECRET: SECRET });
  const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
  const daemons: DaemonProcess[] = [];
  t.teardown(async () => {
    for (const x of daemons) x.kill('SIGKILL');
    await Promise.all(daemons.map((x) => x.exited));
    await client.close();
    await redis.stop();
    await em.close();
    await hook.close();
  });
  const spawn = () => {
    const d = spawnDaemon(env);
    daemons.push(d);
    return d;
  };
  const params = { qty: 0.01 };

  // 1. A live session holding a position the venue agrees with.
  let d = spawn();
  await d.waitForLog(isReady, 90_000);
  await client.submit('backtest', { strategyId: 'test-venue-buyer', params, data: writeBars(join(dir, 'bars.csv'), 'BTC/USDT', 50_000) }, { timeoutMs: 60_000 });
  await client.submit('start', { id: 'paper-a', kind: 'paper', strategy: { id: 'test-venue-buyer', params }, symbols: ['BTC/USDT'], feed: { type: 'synthetic', intervalMs: 20, startPrice: 100 } });
  await client.submit('stop', { sessionId: 'paper-a' });
  await client.submit('start', { id: 'live-a', kind: 'live', strategy: { id: 'test-venue-buyer', params }, brokerId: 'bn', symbols: ['BTC/USDT'], feed: { type: 'synthetic', intervalMs: 50, startPrice: 50_000 } });
  await until('the fill at the venue', () => em.trades.length === 1);
  d.kill('SIGTERM');
  t.is((await d.exited).code, 0);

  // 2. While it is down: the venue's position changes (a transfer nobody here made), the venue turns slow
  //    and the webhook receiver goes down.
  em.balances.set('BTC', em.balance('BTC') + 0.5);
  em.server.delayMs = 700;
  hook.setDown(true);
  d = spawn();
  const port = (await d.waitForLog((l) => l.msg === 'http listening', 90_000)).port as number;
  const seen: { code: number; down?: string[] }[] = [];
  // Poll /readyz until the daemon says ready: while it recovers, it must be 503 naming recovery.
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (res) seen.push({ code: res.status, down: ((await res.json()) as { down?: string[] }).down });
    if (d.logs.some(isReady) || d.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.true(
    seen.some((s) => s.code === 503 && s.down?.includes('recovery')),
    `a 503 naming recovery before ready; saw ${JSON.stringify(seen.slice(0, 3))}`,
  );
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  t.is(ready.status, 200);
  t.deepEqual(((await ready.json()) as { down: string[] }).down, []);

  // 3. Reconciliation paused the session; its alert could not be delivered and waits in SQLite.
  await until('the reconcile pause', () => d.logs.some((l) => l.msg === 'venues reconciled') || undefined);
  const db = new BetterSqlite3(env.SESSIOND_DB!, { readonly: true });
  const paused = db.prepare("SELECT source, reason FROM session_transitions WHERE session_id = 'live-a' AND to_state = 'paused'").all() as { source: string; reason: string }[];
  t.is(paused.length, 1);
  t.is(paused[0]!.source, 'reconcile');
  t.regex(paused[0]!.reason, /^reconcile_mismatch: BTC\/USDT/);
  await until('a refused delivery attempt', () => hook.refused > 0);
  const pending = () => db.prepare("SELECT event, attempts FROM webhook_outbox").all() as { event: string; attempts: number }[];
  await until('the alert in the outbox after a failed attempt', () => pending().some((p) => p.event === 'reconcile_mismatch' && p.attempts > 0));
  db.close();
  t.is(hook.got.length, 0);
  d.kill('SIGKILL');
  await d.exited;

  // 4. The receiver is back; a new daemon delivers what the crashed one could not.
  em.server.delayMs = 0;
  hook.setDown(false);
  d = spawn();
  await d.waitForLog(isReady, 90_000);
  await until('the webhook delivered', () => hook.got.length > 0);
  const r = hook.got[0]!;
  t.is(r.json.event, 'reconcile_mismatch');
  t.is(r.json.sessionId, 'live-a');
  const m = /^\[sessiond\] session live-a paused after reconciliation: reconcile_mismatch: BTC\/USDT local ([\d.]+) venue ([\d.]+)$/.exec(r.json.text);
  t.truthy(m, r.json.text);
  t.true(Math.abs(Number(m![2]) - Number(m![1]) - 0.5) < 1e-9, 'the text names both positions');
  t.is(r.headers[SIGNATURE_HEADER], `sha256=${createHmac('sha256', HOOK_SECRET).update(r.body).digest('hex')}`);
  d.kill('SIGTERM');
  t.is((await d.exited).code, 0);
  // Delivered once: no second alert for the same pause, and the outbox is empty.
  t.deepEqual([...new Set(hook.got.map((g) => g.json.id))], [r.json.id]);
  const after = new BetterSqlite3(env.SESSIOND_DB!, { readonly: true });
  t.deepEqual(after.prepare('SELECT COUNT(*) AS n FROM webhook_outbox').get(), { n: 0 });
  after.close();
});
