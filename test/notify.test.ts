import { createHmac, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { CommandClient } from '../src/commands/command-client.js';
import { SIGNATURE_HEADER, WebhookNotifier } from '../src/notify/webhook-notifier.js';
import { daemonEnv, spawnDaemon, tempDir } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  json: any;
}

/** A webhook receiver on 127.0.0.1 that answers with `respond(n)` for the n-th request (0-based). */
async function receiver(respond: (n: number) => number | 'hang' = () => 200): Promise<{ url: string; got: Received[]; server: Server; waitFor(n: number, timeoutMs?: number): Promise<Received[]> }> {
  const got: Received[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const n = got.length;
      got.push({ headers: req.headers, body, json: JSON.parse(body) });
      for (const w of [...waiters]) if (got.length >= w.n) w.resolve();
      const status = respond(n);
      if (status === 'hang') return;
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    server,
    waitFor(n, timeoutMs = 30_000) {
      if (got.length >= n) return Promise.resolve(got);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} webhook requests arrived`)), timeoutMs);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve(got)) });
      });
    },
  };
}

test('an alert is a JSON POST with a chat-ready text and an HMAC-SHA256 signature of its body, only to webhooks that want it', async (t) => {
  const signed = await receiver();
  const filtered = await receiver();
  const secret = 'a-webhook-secret-of-some-length';
  const notifier = new WebhookNotifier({
    webhooks: [
      { url: signed.url, secret },
      { url: filtered.url, events: ['kill_switch'] },
    ],
  });
  try {
    const payload = notifier.notify('risk_breach', { sessionId: 's1', text: 'session s1 paused on a risk breach: daily loss', data: { reason: 'maxDailyLoss' } });
    t.truthy(payload);
    const [r] = await signed.waitFor(1);
    t.is(r!.headers['content-type'], 'application/json');
    t.is(r!.headers[SIGNATURE_HEADER], `sha256=${createHmac('sha256', secret).update(r!.body).digest('hex')}`);
    t.is(r!.json.event, 'risk_breach');
    t.is(r!.json.sessionId, 's1');
    t.is(r!.json.text, '[sessiond] session s1 paused on a risk breach: daily loss');
    t.deepEqual(r!.json.data, { reason: 'maxDailyLoss' });
    t.is(r!.json.id, payload!.id);
    // The kill_switch-only webhook got nothing, and an unsigned one carries no signature.
    notifier.notify('kill_switch', { text: 'kill-switch applied' });
    const [k] = await filtered.waitFor(1);
    t.is(k!.json.event, 'kill_switch');
    t.is(k!.headers[SIGNATURE_HEADER], undefined);
    await signed.waitFor(2);
    t.is(filtered.got.length, 1);
  } finally {
    await notifier.close();
    signed.server.close();
    filtered.server.close();
  }
});

test('a failing webhook is retried with backoff until it answers 2xx; notify() returns before any request is made', async (t) => {
  const r = await receiver((n) => (n < 2 ? 503 : 200));
  const results: string[] = [];
  const notifier = new WebhookNotifier({ webhooks: [{ url: r.url }], backoffMs: 20, maxAttempts: 5, onDelivery: (res) => results.push(res) });
  try {
    notifier.notify('runner_failed', { sessionId: 's2', text: 'runner failed' });
    t.is(r.got.length, 0, 'notify only queues the alert');
    const got = await r.waitFor(3);
    t.is(new Set(got.map((g) => g.json.id)).size, 1, 'the same alert, retried');
    await notifier.close();
    t.deepEqual(results, ['retried', 'retried', 'delivered']);
  } finally {
    r.server.close();
  }
});

test('a webhook that never succeeds is given up after maxAttempts and counted as failed; a hung one times out', async (t) => {
  const down = await receiver(() => 500);
  const hung = await receiver(() => 'hang');
  const results: string[] = [];
  const common = { backoffMs: 10, maxAttempts: 3 };
  const toDown = new WebhookNotifier({ ...common, webhooks: [{ url: down.url }], timeoutMs: 10_000, onDelivery: (res) => results.push(`down:${res}`) });
  const toHung = new WebhookNotifier({ ...common, webhooks: [{ url: hung.url }], timeoutMs: 300, onDelivery: (res) => results.push(`hung:${res}`) });
  try {
    toDown.notify('order_rejected', { sessionId: 's3', text: 'order rejected' });
    toHung.notify('order_rejected', { sessionId: 's3', text: 'order rejected' });
    await down.waitFor(3);
    // A hung receiver may not even have read an attempt before it timed out (a loaded machine): count outcomes.
    await hung.waitFor(1);
    await Promise.all([toDown.close(20_000), toHung.close(20_000)]);
    t.deepEqual(results.filter((x) => x.startsWith('down')), ['down:retried', 'down:retried', 'down:failed']);
    t.deepEqual(results.filter((x) => x.startsWith('hung')), ['hung:retried', 'hung:retried', 'hung:failed']);
    t.is(down.got.length, 3);
  } finally {
    down.server.close();
    hung.server.closeAllConnections();
    hung.server.close();
  }
});

test('the daemon alerts on start, on a kill-switch and on stop, and counts deliveries in /metrics', async (t) => {
  const redis = await startTestRedis();
  const r = await receiver();
  const dir = tempDir();
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ notify: { webhooks: [{ url: r.url, secret: 'daemon-webhook-secret-123' }], timeoutMs: 5000, maxAttempts: 5, backoffMs: 100 } }));
  const queue = `test-notify-${randomUUID()}`;
  const d = spawnDaemon(daemonEnv(redis.url, dir, { SESSIOND_CONFIG: configFile, SESSIOND_QUEUE: queue, SESSIOND_RUNNERS: 'false', SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0' }));
  const client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  try {
    const port = (await d.waitForLog((l) => l.msg === 'http listening')).port as number;
    const [started] = await r.waitFor(1);
    t.is(started!.json.event, 'daemon_started');
    await client.submit('start', { kind: 'paper', id: 'n-1', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'] });
    await client.submit('kill-switch', { reason: 'drill' });
    const got = await r.waitFor(2);
    t.is(got[1]!.json.event, 'kill_switch');
    t.regex(got[1]!.json.text, /kill-switch/);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    t.regex(metrics, /^sessiond_webhook_deliveries_total\{result="delivered"\} 2$/m);
    d.kill('SIGTERM');
    t.is((await d.exited).code, 0);
    const all = await r.waitFor(3);
    t.is(all[2]!.json.event, 'daemon_stopping');
    t.false(JSON.stringify(d.logs).includes('daemon-webhook-secret-123'), 'the secret never reaches the logs');
  } finally {
    await client.close();
    d.kill('SIGKILL');
    await d.exited;
    r.server.close();
    await redis.stop();
  }
});
