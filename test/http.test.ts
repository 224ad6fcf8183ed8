import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import test from 'ava';
import { CommandClient } from '../src/commands/command-client.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';

const until = untilWithin(30_000, { pollMs: 50 });
const MAX_EVENT_CLIENTS = 3;

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
  daemon = spawnDaemon(
    daemonEnv(redis.url, tempDir(), { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0', SESSIOND_QUEUE: queue, SESSIOND_HTTP_MAX_EVENT_CLIENTS: String(MAX_EVENT_CLIENTS) }),
  );
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

test.serial("a session that never traded has an empty book", async (t) => {
  const o = await getJson('/api/sessions/h-stopped/orders');
  t.is(o.status, 200);
  t.deepEqual(o.body, { total: 0, offset: 0, limit: 100, orders: [], fills: [] });
  const p = await getJson('/api/sessions/h-stopped/positions');
  t.is(p.status, 200);
  t.deepEqual(p.body, { positions: [] });
});

test.serial('an unknown session is a 404 with SESSION_NOT_FOUND, on every session route', async (t) => {
  for (const path of [
    '/api/sessions/nope',
    '/api/sessions/nope/history',
    '/api/sessions/nope/orders',
    '/api/sessions/nope/positions',
    '/api/sessions/nope/fills',
    '/api/sessions/nope/pnl',
    '/api/sessions/nope/equity',
    '/api/sessions/nope/bars',
  ]) {
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
    'sessiond_orders',
    'sessiond_fills_total',
    'sessiond_order_updates_total',
    'sessiond_equity',
    'sessiond_pnl',
    'sessiond_session_equity',
    'sessiond_session_pnl',
    'sessiond_queue_jobs_processed_total',
    'sessiond_webhook_deliveries_total',
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

/** Reads server-sent events from a stream until `pred` matches one; returns every event read. */
async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pred: (e: { event: string; data: any }) => boolean,
  timeoutMs = 30_000,
): Promise<{ event: string; data: any }[]> {
  const seen: { event: string; data: any }[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no matching event; saw ${JSON.stringify(seen.map((e) => e.event))}`);
    let timer: NodeJS.Timeout | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no matching event; saw ${JSON.stringify(seen)}`)), left))),
    ]).finally(() => clearTimeout(timer));
    if (chunk.done) throw new Error('event stream ended');
    buf += decoder.decode(chunk.value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1];
      if (!event || !data) continue;
      const e = { event, data: JSON.parse(data) };
      seen.push(e);
      if (pred(e)) return seen;
    }
  }
}

test.serial('the event stream carries committed transitions and order updates as they happen', async (t) => {
  const res = await fetch(`${base}/api/events`);
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  try {
    await readEvents(reader, (e) => e.event === 'hello');
    // A confirm-mode session: its first order waits for approval, so the order event is certain.
    await client.submit('start', {
      kind: 'paper',
      id: 'h-sse',
      strategy: { id: 'buy-and-hold', params: { qty: 2 } },
      symbols: ['AAPL'],
      executionMode: 'confirm',
      feed: { type: 'synthetic', seed: 3, intervalMs: 50 },
    });
    const seen = await readEvents(reader, (e) => e.event === 'order' && e.data.sessionId === 'h-sse' && e.data.status === 'pending_approval');
    const transitions = seen.filter((e) => e.event === 'transition' && e.data.session.id === 'h-sse').map((e) => [e.data.transition.from, e.data.transition.to]);
    // Creation is written with the start; the start is the transition that is broadcast.
    t.deepEqual(transitions, [['created', 'running']]);
    const order = seen.at(-1)!.data;
    t.is(order.order.side, 'buy');
    t.is(order.order.qty, 2);
    t.truthy(Date.parse(order.order.expiresAt), 'a pending approval carries its expiry');

    await client.submit('approve-order', { sessionId: 'h-sse', clientOrderId: order.clientOrderId });
    const filled = await readEvents(reader, (e) => e.event === 'order' && e.data.clientOrderId === order.clientOrderId && e.data.status === 'filled');
    t.is(filled.at(-1)!.data.order.filledQty, 2);

    await client.submit('pause', { sessionId: 'h-sse', reason: 'sse test' });
    const paused = await readEvents(reader, (e) => e.event === 'transition' && e.data.session.id === 'h-sse' && e.data.transition.to === 'paused');
    const p = paused.at(-1)!.data;
    t.is(p.transition.event, 'PAUSE');
    t.is(p.transition.reason, 'sse test');
    t.is(p.session.status, 'paused');
  } finally {
    await reader.cancel().catch(() => undefined);
  }
});

test.serial("a trading session's orders, fills, positions and PnL are served with their prices, orders paged newest first", async (t) => {
  await client.submit('start', {
    kind: 'paper',
    id: 'h-trade',
    strategy: { id: 'buy-and-hold', params: { qty: 3 } },
    symbols: ['AAPL', 'MSFT'],
    feed: { type: 'synthetic', seed: 5, intervalMs: 50 },
  });
  const b = await until('both buy orders filled', async () => {
    const r = await getJson('/api/sessions/h-trade/orders');
    return r.body.orders?.length === 2 && r.body.orders.every((o: { status: string }) => o.status === 'filled') ? r.body : undefined;
  });
  t.is(b.total, 2);
  t.is(b.fills.length, 2);
  for (const o of b.orders) {
    t.true(o.clientOrderId.startsWith('h-trade:'), o.clientOrderId);
    t.is(o.side, 'buy');
    t.is(o.qty, 3);
    t.is(o.filledQty, 3);
    t.true(o.avgFillPrice > 0);
    const fill = b.fills.find((f: { clientOrderId: string }) => f.clientOrderId === o.clientOrderId);
    t.is(fill.price, o.avgFillPrice);
  }
  // Newest first, paged.
  t.true(b.orders[0].createdAt >= b.orders[1].createdAt);
  const page2 = (await getJson('/api/sessions/h-trade/orders?offset=1&limit=1')).body;
  t.is(page2.total, 2);
  t.deepEqual(page2.orders.map((o: { clientOrderId: string }) => o.clientOrderId), [b.orders[1].clientOrderId]);
  const bad = await getJson('/api/sessions/h-trade/orders?limit=0');
  t.is(bad.status, 400);
  t.is(bad.body.error.code, 'VALIDATION_ERROR');

  const fills = (await getJson('/api/sessions/h-trade/fills')).body.fills;
  t.is(fills.length, 2);
  const positions = (await getJson('/api/sessions/h-trade/positions')).body.positions;
  t.deepEqual(positions.map((p: { symbol: string; qty: number }) => [p.symbol, p.qty]), [
    ['AAPL', 3],
    ['MSFT', 3],
  ]);

  await client.submit('pause', { sessionId: 'h-trade' });
  const pnl = (await getJson('/api/sessions/h-trade/pnl')).body;
  const positionsNow = (await getJson('/api/sessions/h-trade/positions')).body.positions as { qty: number; avgPrice: number; lastPrice: number; realizedPnl: number; unrealizedPnl: number }[];
  const spent = (fills as { qty: number; price: number; commission: number }[]).reduce((s, f) => s + f.qty * f.price + f.commission, 0);
  t.is(pnl.sessionId, 'h-trade');
  t.true(Math.abs(pnl.cash - (100_000 - spent)) < 1e-6, `cash ${pnl.cash}`);
  const realized = positionsNow.reduce((s, p) => s + p.realizedPnl, 0);
  const unrealized = positionsNow.reduce((s, p) => s + p.unrealizedPnl, 0);
  t.true(Math.abs(pnl.realizedPnl - realized) < 1e-9);
  t.true(Math.abs(pnl.unrealizedPnl - unrealized) < 1e-9);
  t.true(Math.abs(pnl.equity - (100_000 + realized + unrealized)) < 1e-6);
  t.true(realized < 0, 'the commissions are realized');
  t.is(pnl.fills, 2);

  const all = (await getJson('/api/pnl')).body;
  t.true(all.sessions.some((s: { sessionId: string }) => s.sessionId === 'h-trade'));
  t.is(all.totals.sessions, all.sessions.length);
  t.true(Math.abs(all.totals.equity - all.sessions.reduce((s: number, x: { equity: number }) => s + x.equity, 0)) < 1e-6);

  const bars = (await getJson('/api/sessions/h-trade/bars?symbol=MSFT&limit=50')).body;
  t.is(bars.symbol, 'MSFT');
  t.true(bars.bars.length >= 2);
  t.true(bars.bars.every((x: { symbol: string }) => x.symbol === 'MSFT'));
  const msftFill = (fills as { symbol: string; price: number }[]).find((f) => f.symbol === 'MSFT')!;
  t.true(bars.bars.some((x: { low: number; high: number }) => x.low * 0.99 <= msftFill.price && msftFill.price <= x.high * 1.01), 'the fill is at a price the bars traded');
});

test.serial('at most http.maxEventClients event streams: one more is a 503, and a closed one frees its place', async (t) => {
  const open = [] as ReadableStreamDefaultReader<Uint8Array>[];
  try {
    for (let i = 0; i < MAX_EVENT_CLIENTS; i++) {
      const r = await fetch(`${base}/api/events`);
      t.is(r.status, 200);
      open.push(r.body!.getReader());
      await readEvents(open.at(-1)!, (e) => e.event === 'hello');
    }
    const over = await getJson('/api/events');
    t.is(over.status, 503);
    t.is(over.body.error.code, 'TOO_MANY_CLIENTS');
    await open.shift()!.cancel();
    const again = await until('a place freed by the closed stream', async () => {
      const r = await fetch(`${base}/api/events`);
      if (r.status === 200) return r;
      await r.body?.cancel();
      return undefined;
    });
    open.push(again.body!.getReader());
    t.pass();
  } finally {
    for (const r of open) await r.cancel().catch(() => undefined);
  }
});

test.serial('the live /metrics output passes promtool and counts orders by status, fills, equity and queue jobs', async (t) => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.is(check.error, undefined, 'promtool is installed (Debian package prometheus)');
  t.is(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  const value = (line: string) => {
    const m = new RegExp(`^${line.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  t.true(value('sessiond_orders{status="filled"}')! >= 3, 'h-trade filled two, h-sse one');
  t.is(value('sessiond_orders{status="rejected"}'), 0);
  t.true(value('sessiond_fills_total')! >= 3);
  t.true(value('sessiond_order_updates_total{status="filled"}')! >= 3);
  t.true(value('sessiond_queue_jobs_processed_total{result="completed"}')! >= 8);
  t.is(value('sessiond_queue_jobs_processed_total{result="failed"}'), 1);
  const equity = value('sessiond_equity')!;
  t.true(equity > 100_000, 'two traded sessions at ~100k each');
  t.truthy(value('sessiond_session_equity{session="h-trade"}'));
  t.true(value('sessiond_pnl{kind="realized"}')! < 0, 'commissions');
});

test.serial('without a token the API and the page are read-only: a POST is a 403 READ_ONLY and changes nothing', async (t) => {
  const ui = await getJson('/api/ui');
  t.deepEqual(ui.body, { writable: false, tokenRequired: false });
  for (const path of ['/api/sessions/h-run/pause', '/api/sessions/h-run/stop', '/api/kill-switch', '/api/sessions', '/', '/no/such/route']) {
    const r = await getJson(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.is(r.status, 403, path);
    t.is(r.body.error.code, 'READ_ONLY', path);
  }
  const after = await getJson('/api/sessions/h-run');
  t.is(after.body.session.status, 'running');
});

test.serial('PUT, PATCH, DELETE and OPTIONS are refused with 405', async (t) => {
  for (const [method, path] of [
    ['PUT', '/api/sessions/h-run'],
    ['PATCH', '/api/sessions/h-run'],
    ['DELETE', '/api/sessions/h-run'],
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
  const queue = `test-http-token-${randomUUID()}`;
  const d = spawnDaemon(
    daemonEnv(redis.url, tempDir(), {
      SESSIOND_HTTP: 'true',
      SESSIOND_HTTP_PORT: '0',
      SESSIOND_HTTP_HOST: '0.0.0.0',
      SESSIOND_HTTP_TOKEN: TOKEN,
      SESSIOND_QUEUE: queue,
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
  t.deepEqual(await (await fetch(`${url}/api/ui`, { headers: { cookie } })).json(), { writable: true, tokenRequired: true });

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

test.serial('writes with the token are the same queue commands: exactly once per Idempotency-Key, in order, CSRF-safe', async (t) => {
  const queue = `test-http-writes-${randomUUID()}`;
  const d = spawnDaemon(
    daemonEnv(redis.url, tempDir(), { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0', SESSIOND_HTTP_TOKEN: TOKEN, SESSIOND_QUEUE: queue, SESSIOND_RUNNERS: 'false' }),
  );
  daemons.push(d);
  const url = `http://127.0.0.1:${await listeningPort(d)}`;
  const c = new CommandClient({ redisUrl: redis.url, queueName: queue });
  try {
    await c.submit('start', { kind: 'paper', id: 'w-1', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'] });
    await c.submit('start', { kind: 'paper', id: 'w-2', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'] });
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const bearer = { authorization: `Bearer ${TOKEN}` };

    // Loopback is no exemption, and the cookie (what a cross-site form would carry) is not enough.
    const login = await fetch(`${url}/?token=${encodeURIComponent(TOKEN)}`, { redirect: 'manual' });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const noAuth = await post('/api/sessions/w-1/pause', {});
    t.is(noAuth.status, 401);
    const cookieOnly = await post('/api/sessions/w-1/pause', {}, { cookie });
    t.is(cookieOnly.status, 401);
    t.is(cookieOnly.body.error.code, 'UNAUTHORIZED');
    const form = await fetch(`${url}/api/sessions/w-1/pause`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' }, body: 'reason=x' });
    t.is(form.status, 415);
    t.is((await c.submit<{ status: string }>('get-session', { sessionId: 'w-1' })).status, 'running');

    // Pause with an Idempotency-Key twice: one transition, the same answer.
    const key = `k-${randomUUID()}`;
    const first = await post('/api/sessions/w-1/pause', { reason: 'from the page' }, { ...bearer, 'idempotency-key': key });
    t.is(first.status, 200, JSON.stringify(first.body));
    t.is(first.body.session.status, 'paused');
    const again = await post('/api/sessions/w-1/pause', { reason: 'from the page' }, { ...bearer, 'idempotency-key': key });
    t.is(again.status, 200);
    t.deepEqual(again.body, first.body);
    const history = (await c.submit<{ history: { event: string; commandId: string; reason?: string }[] }>('get-history', { sessionId: 'w-1' })).history;
    const pauses = history.filter((h) => h.event === 'PAUSE');
    t.is(pauses.length, 1);
    t.is(pauses[0]!.commandId, key, 'the key is the BullMQ job id and the command id');
    t.is(pauses[0]!.reason, 'from the page');

    const twice = await post('/api/sessions/w-1/pause', {}, bearer);
    t.is(twice.status, 409);
    t.is(twice.body.error.code, 'INVALID_TRANSITION');
    const resumed = await post('/api/sessions/w-1/resume', {}, bearer);
    t.is(resumed.body.session.status, 'running');
    const missing = await post('/api/sessions/nope/stop', {}, bearer);
    t.is(missing.status, 404);
    t.is(missing.body.error.code, 'SESSION_NOT_FOUND');
    const noOrder = await post('/api/sessions/w-1/orders/w-1:nope/approve', {}, bearer);
    t.true(noOrder.status >= 400 && noOrder.status < 500, JSON.stringify(noOrder.body));

    // Submitted back to back, commands for one session apply in order.
    const [p, r, s] = await Promise.all([
      post('/api/sessions/w-2/pause', {}, bearer),
      post('/api/sessions/w-2/resume', {}, bearer),
      post('/api/sessions/w-2/stop', { reason: 'done' }, bearer),
    ]);
    t.deepEqual([p.status, r.status, s.status], [200, 200, 200]);
    const w2 = (await c.submit<{ history: { to: string }[] }>('get-history', { sessionId: 'w-2' })).history.map((h) => h.to);
    t.deepEqual(w2, ['created', 'running', 'paused', 'running', 'stopped']);

    const unconfirmed = await post('/api/kill-switch', {}, bearer);
    t.is(unconfirmed.status, 400);
    t.is(unconfirmed.body.error.code, 'VALIDATION_ERROR');
    t.is((await c.submit<{ status: string }>('get-session', { sessionId: 'w-1' })).status, 'running');
    const killed = await post('/api/kill-switch', { confirm: true, reason: 'drill' }, bearer);
    t.is(killed.status, 200);
    t.deepEqual(killed.body.stopped.map((v: { id: string }) => v.id), ['w-1']);
  } finally {
    await c.close();
    d.kill('SIGTERM');
    await d.exited;
  }
});

test.serial('/readyz answers 503 naming redis once Redis is down', async (t) => {
  await redis.stop();
  // Wait for the event (ioredis noticing the closed connection), not a wall-clock budget: a loaded machine is slow.
  const r = await until('/readyz to turn 503', async () => {
    const res = await getJson('/readyz');
    return res.status === 503 ? res : undefined;
  });
  t.is(r.status, 503);
  t.is(r.body.status, 'not_ready');
  t.deepEqual(r.body.down, ['redis']);
  t.false(r.body.checks.redis.ok);
  t.true(r.body.checks.sqlite.ok);
  // Liveness is not readiness: the process is still up.
  t.is((await getJson('/healthz')).status, 200);
});
