import { randomUUID } from 'node:crypto';
import test from 'ava';
import { CommandClient } from '../src/commands/command-client.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';

const TOKEN = `tok-${randomUUID()}`;

let redis: RedisServerHandle;
let daemon: DaemonProcess;
let base: string;
let client: CommandClient;
const daemons: DaemonProcess[] = [];

async function listeningPort(d: DaemonProcess): Promise<number> {
  const line = await d.waitForLog((l) => l.msg === 'http listening');
  return line.port as number;
}

async function getJson(path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics, html)
  }
  return { status: res.status, body };
}

test.before(async () => {
  redis = await startTestRedis();
  const queue = `test-http-${randomUUID()}`;
  daemon = spawnDaemon(daemonEnv(redis.url, tempDir(), { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0', SESSIOND_QUEUE: queue }));
  daemons.push(daemon);
  base = `http://127.0.0.1:${await listeningPort(daemon)}`;
  client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  const start = (id: string, kind: 'paper' | 'live' = 'paper') =>
    client.submit('start', { kind, strategy: { id: 'sma-crossover' }, symbols: ['AAPL'], id });
  await start('h-run');
  await start('h-paused');
  await client.submit('pause', { sessionId: 'h-paused', reason: 'lunch' });
  await start('h-stopped');
  await client.submit('stop', { sessionId: 'h-stopped' });
  // A rejected command, so the error outcome is counted too.
  await client.submit('pause', { sessionId: 'h-stopped' }).catch(() => undefined);
});

test.after.always(async () => {
  await client?.close();
  for (const d of daemons) d.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  await redis?.stop();
});

test.serial('/healthz answers 200 while the process is up', async (t) => {
  const r = await getJson('/healthz');
  t.is(r.status, 200);
  t.is(r.body.status, 'ok');
  t.is(typeof r.body.pid, 'number');
});

test.serial('/readyz answers 200 when recovery is done and Redis and SQLite are reachable', async (t) => {
  const r = await getJson('/readyz');
  t.is(r.status, 200, JSON.stringify(r.body));
  t.deepEqual(r.body.down, []);
  t.true(r.body.checks.recovery.ok);
  t.true(r.body.checks.redis.ok);
  t.true(r.body.checks.sqlite.ok);
});

test.serial('GET /api/sessions lists sessions and filters by status and kind', async (t) => {
  const all = await getJson('/api/sessions');
  t.is(all.status, 200);
  const ids = (all.body.sessions as { id: string }[]).map((s) => s.id).sort();
  t.deepEqual(ids, ['h-paused', 'h-run', 'h-stopped']);
  t.is(all.body.count, 3);

  const paused = await getJson('/api/sessions?status=paused');
  t.deepEqual(
    paused.body.sessions.map((s: { id: string; status: string }) => [s.id, s.status]),
    [['h-paused', 'paused']],
  );
  const running = await getJson('/api/sessions?status=running&kind=paper');
  t.deepEqual(running.body.sessions.map((s: { id: string }) => s.id), ['h-run']);
  const live = await getJson('/api/sessions?kind=live');
  t.deepEqual(live.body.sessions, []);
  const active = await getJson('/api/sessions?active=true');
  t.deepEqual(active.body.sessions.map((s: { id: string }) => s.id).sort(), ['h-paused', 'h-run']);
});

test.serial('a bad filter is a 400 with VALIDATION_ERROR', async (t) => {
  const r = await getJson('/api/sessions?status=sleeping');
  t.is(r.status, 400);
  t.is(r.body.error.code, 'VALIDATION_ERROR');
  t.regex(r.body.error.message, /status/);
});

test.serial('GET /api/sessions/:id returns the view, the persisted snapshot and the transition history', async (t) => {
  const r = await getJson('/api/sessions/h-paused');
  t.is(r.status, 200);
  t.is(r.body.session.id, 'h-paused');
  t.is(r.body.session.status, 'paused');
  t.is(r.body.state, 'paused');
  t.is(r.body.snapshot.value, 'paused');
  t.is(r.body.snapshot.context.sessionId, 'h-paused');
  t.deepEqual(
    r.body.history.map((h: { from: string | null; to: string; event: string }) => [h.from, h.to, h.event]),
    [
      [null, 'created', 'CREATE'],
      ['created', 'running', 'START'],
      ['running', 'paused', 'PAUSE'],
    ],
  );
  const pause = r.body.history[2];
  t.is(pause.source, 'command');
  t.is(pause.reason, 'lunch');
  t.truthy(pause.commandId);
  t.truthy(Date.parse(pause.at));

  const h = await getJson('/api/sessions/h-paused/history');
  t.deepEqual(h.body.history, r.body.history);
});

test.serial("a session's orders and positions are listed (empty for a session that has not traded)", async (t) => {
  const o = await getJson('/api/sessions/h-run/orders');
  t.is(o.status, 200);
  t.deepEqual(o.body, { orders: [], fills: [] });
  const p = await getJson('/api/sessions/h-run/positions');
  t.is(p.status, 200);
  t.deepEqual(p.body, { positions: [] });
});

test.serial('an unknown session is a 404 with SESSION_NOT_FOUND, on every session route', async (t) => {
  for (const path of ['/api/sessions/nope', '/api/sessions/nope/history', '/api/sessions/nope/orders', '/api/sessions/nope/positions']) {
    const r = await getJson(path);
    t.is(r.status, 404, path);
    t.is(r.body.error.code, 'SESSION_NOT_FOUND', path);
    t.regex(r.body.error.message, /nope/);
  }
});

test.serial("GET /api/machine is the session machine's definition: states, events, transitions", async (t) => {
  const r = await getJson('/api/machine');
  t.is(r.status, 200);
  const m = r.body;
  t.is(m.id, 'session');
  t.is(m.initial, 'created');
  const states = m.states.map((s: { id: string }) => s.id);
  for (const s of ['created', 'running', 'paused', 'stopped']) t.true(states.includes(s), s);
  t.deepEqual(m.finalStates, ['stopped']);
  for (const e of ['START', 'PAUSE', 'RESUME', 'STOP']) t.true(m.events.includes(e), e);
  const edge = (source: string, event: string) =>
    m.transitions.find((x: { source: string; event: string }) => x.source === source && x.event === event)?.targets;
  t.deepEqual(edge('created', 'START'), ['running']);
  t.deepEqual(edge('running', 'PAUSE'), ['paused']);
  t.deepEqual(edge('paused', 'RESUME'), ['running']);
  t.deepEqual(edge('paused', 'STOP'), ['stopped']);
  t.is(edge('stopped', 'START'), undefined);
});

test.serial('/metrics is Prometheus text with every family, counting the commands submitted', async (t) => {
  const res = await fetch(`${base}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  for (const family of [
    'sessiond_sessions',
    'sessiond_commands_total',
    'sessiond_command_duration_seconds',
    'sessiond_queue_jobs',
    'sessiond_runner_steps_total',
    'sessiond_runner_failures_total',
    'sessiond_pool_utilization_ratio',
    'sessiond_pool_threads',
    'sessiond_pool_queue_size',
    'sessiond_sqlite_write_duration_seconds',
    'sessiond_transitions_total',
    'sessiond_bar_to_order_seconds',
  ]) {
    t.regex(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
  }
  const value = (line: string) => {
    const m = new RegExp(`^${line.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  t.is(value('sessiond_sessions{status="running",kind="paper"}'), 1);
  t.is(value('sessiond_sessions{status="paused",kind="paper"}'), 1);
  t.is(value('sessiond_sessions{status="stopped",kind="paper"}'), 1);
  t.is(value('sessiond_sessions{status="running",kind="live"}'), 0);
  t.is(value('sessiond_commands_total{command="start",outcome="ok",code=""}'), 3);
  t.is(value('sessiond_commands_total{command="pause",outcome="ok",code=""}'), 1);
  t.is(value('sessiond_commands_total{command="stop",outcome="ok",code=""}'), 1);
  t.is(value('sessiond_commands_total{command="pause",outcome="error",code="INVALID_TRANSITION"}'), 1);
  t.is(value('sessiond_command_duration_seconds_count{command="start"}'), 3);
  t.is(value('sessiond_queue_jobs{state="waiting"}'), 0);
  // One write-ahead transaction per transition, sequential commands: three starts (create + start each),
  // one pause, one stop.
  t.is(value('sessiond_sqlite_write_duration_seconds_count'), 8);
  t.is(value('sessiond_transitions_total{from="running",to="paused",event="PAUSE"}'), 1);
});

test.serial('the API is read-only: POST, PUT, PATCH and DELETE are refused with 405', async (t) => {
  for (const [method, path] of [
    ['POST', '/api/sessions'],
    ['PUT', '/api/sessions/h-run'],
    ['PATCH', '/api/sessions/h-run'],
    ['DELETE', '/api/sessions/h-run'],
    ['POST', '/'],
    ['POST', '/no/such/route'],
    ['OPTIONS', '/api/sessions'],
  ] as const) {
    const r = await getJson(path, { method, headers: { 'content-type': 'application/json' }, body: method === 'DELETE' || method === 'OPTIONS' ? undefined : '{' });
    t.is(r.status, 405, `${method} ${path}`);
    t.is(r.body.error.code, 'METHOD_NOT_ALLOWED');
  }
  const after = await getJson('/api/sessions/h-run');
  t.is(after.body.session.status, 'running');
});

test.serial('the visualizer page and its assets are served by the daemon with a self-only CSP', async (t) => {
  const page = await fetch(`${base}/`);
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /text\/html/);
  t.regex(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  const html = await page.text();
  t.notRegex(html, /https?:\/\//, 'no external URL in the page');
  for (const asset of ['/app.js', '/style.css']) {
    const r = await fetch(`${base}${asset}`);
    t.is(r.status, 200, asset);
    t.notRegex(await r.text(), /(src|href)\s*=\s*["']https?:/, `${asset} loads nothing from elsewhere`);
  }
});

test.serial('a daemon bound to 0.0.0.0 needs the bearer token: 401 without, 200 with; SIGTERM exits 0 with a page open', async (t) => {
  const d = spawnDaemon(
    daemonEnv(redis.url, tempDir(), {
      SESSIOND_HTTP: 'true',
      SESSIOND_HTTP_PORT: '0',
      SESSIOND_HTTP_HOST: '0.0.0.0',
      SESSIOND_HTTP_TOKEN: TOKEN,
    }),
  );
  daemons.push(d);
  const port = await listeningPort(d);
  const url = `http://127.0.0.1:${port}`;
  for (const path of ['/api/sessions', '/healthz', '/metrics', '/', '/api/events']) {
    const r = await fetch(`${url}${path}`);
    t.is(r.status, 401, path);
    t.regex(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    await r.body?.cancel();
  }
  const wrong = await fetch(`${url}/api/sessions`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
  t.is(wrong.status, 401);
  const ok = await fetch(`${url}/api/sessions`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.is(ok.status, 200);
  t.deepEqual(((await ok.json()) as { sessions: unknown[] }).sessions, []);

  // A browser opens /?token=... once: it gets a cookie and a redirect to / without the token in the URL.
  const login = await fetch(`${url}/?token=${encodeURIComponent(TOKEN)}`, { redirect: 'manual' });
  t.is(login.status, 303);
  t.is(login.headers.get('location'), '/');
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  t.regex(login.headers.get('set-cookie') ?? '', /HttpOnly/);
  const withCookie = await fetch(`${url}/api/machine`, { headers: { cookie } });
  t.is(withCookie.status, 200);

  // The token never reaches the logs.
  t.false(JSON.stringify(d.logs).includes(TOKEN));

  // An open event stream must not hold up shutdown.
  const events = await fetch(`${url}/api/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.is(events.status, 200);
  t.regex(events.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = events.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  t.regex(first, /event: hello/);
  const t0 = Date.now();
  d.kill('SIGTERM');
  const { code } = await d.exited;
  t.is(code, 0);
  t.true(Date.now() - t0 < 10_000);
  await reader.cancel().catch(() => undefined);
});

test.serial('/readyz answers 503 naming redis once Redis is down', async (t) => {
  await redis.stop();
  let r = await getJson('/readyz');
  for (let i = 0; i < 20 && r.status === 200; i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await getJson('/readyz');
  }
  t.is(r.status, 503);
  t.is(r.body.status, 'not_ready');
  t.deepEqual(r.body.down, ['redis']);
  t.false(r.body.checks.redis.ok);
  t.true(r.body.checks.sqlite.ok);
  // Liveness is not readiness: the process is still up.
  t.is((await getJson('/healthz')).status, 200);
});
