import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SessiondError, type ErrorCode } from '../domain/errors.js';
import { SESSION_STATUSES, type SessionView } from '../domain/session.js';
import { createRequire } from 'node:module';
import type { OrderRepository } from '../persistence/order-repository.js';
import type { SessionBook } from '../sessions/session-book.js';
import type { SessionManager } from '../sessions/session-manager.js';
import type { EventBus, LiveEvent } from './event-bus.js';
import type { ReadinessReport } from './health.js';
import type { MachineDefinition } from './machine-definition.js';
import type { Metrics } from './metrics.js';

/** Submits a command to the BullMQ queue and resolves with its outcome (CommandClient fits). */
export interface CommandSubmitter {
  submit(name: string, data: unknown, options?: { commandId?: string; timeoutMs?: number }): Promise<unknown>;
}

/**
 * What the API reads, and where its writes go. The HTTP side never changes a session itself: a write is
 * submitted as the same BullMQ job sessionctl would send, so exactly-once and per-session order hold.
 */
export interface HttpApiSources {
  sessions: Pick<SessionManager, 'listSessions' | 'getSession' | 'getStoredSession' | 'history'>;
  orders: Pick<OrderRepository, 'listBySession' | 'positions' | 'listFills'>;
  /** Paged orders, PnL, equity and bars. Without it those routes answer 404. */
  book?: Pick<SessionBook, 'orders' | 'pnl' | 'pnlReport' | 'equity' | 'bars'> | undefined;
  /** Without it (or without a token) every write answers 403 READ_ONLY. */
  commands?: CommandSubmitter | undefined;
  readiness: () => Promise<ReadinessReport>;
}

export interface HttpServerOptions {
  sources: HttpApiSources;
  metrics: Metrics;
  bus: EventBus;
  machine: MachineDefinition;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @defaultValue 7070 */
  port?: number;
  /** When set, every request needs `Authorization: Bearer <token>` (or the cookie `/?token=` sets). */
  token?: string | undefined;
  logger?: Logger | undefined;
  /** Comment lines keep idle event streams open through proxies. @defaultValue 15000 */
  heartbeatMs?: number;
  /** @defaultValue the `public` folder beside this file (src/http/public, also when run from dist) */
  publicDir?: string;
  /** Open event streams at most; one more is answered 503. @defaultValue 64 */
  maxEventClients?: number;
  /** How long a write waits for the daemon's answer. @defaultValue 10000 */
  commandTimeoutMs?: number;
}

export const DEFAULT_HTTP_SERVER_OPTIONS = { host: '127.0.0.1', port: 7070, heartbeatMs: 15_000, maxEventClients: 64, commandTimeoutMs: 10_000 } as const;

export interface HttpServer {
  readonly app: FastifyInstance;
  /** Resolves with the address actually bound (port 0 becomes the chosen port). */
  listen(): Promise<{ host: string; port: number }>;
  /** Ends open event streams, then stops listening. Idempotent. */
  close(): Promise<void>;
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  VALIDATION_ERROR: 400,
  SESSION_NOT_FOUND: 404,
  INVALID_TRANSITION: 409,
  PREREQUISITES_NOT_MET: 409,
  BROKER_NOT_FOUND: 404,
  STRATEGY_NOT_FOUND: 404,
  RISK_LIMIT: 422,
  COMMAND_NOT_FOUND: 404,
  OUT_OF_ORDER: 409,
  // SQLite cannot write: nothing was applied and it passes (readyz says when); try again later.
  STORAGE_UNAVAILABLE: 503,
};

/** The visualizer's files: a fixed list, so no request path ever reaches the file system. */
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

// Everything the page loads comes from this daemon: no CDN, works offline, and nothing else may run.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const TOKEN_COOKIE = 'sessiond_token';

/** lightweight-charts' standalone build, served from node_modules (no CDN). */
const CHARTS_FILE = join(dirname(createRequire(import.meta.url).resolve('lightweight-charts/package.json')), 'dist', 'lightweight-charts.standalone.production.js');

const ReasonBodySchema = z.object({ reason: z.string().max(1000).optional() }).strict();
const KillSwitchBodySchema = z
  .object({ liveOnly: z.boolean().default(false), reason: z.string().max(1000).optional(), confirm: z.literal(true, 'confirm must be true: the kill-switch stops every session') })
  .strict();
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

const ListQuerySchema = z
  .object({
    status: z.enum(SESSION_STATUSES).optional(),
    kind: z.enum(['paper', 'live']).optional(),
    active: z.enum(['true', 'false', '1', '0']).optional(),
  })
  .strict();

/** Where the page's files are: beside this module in src, or back in src when running compiled from dist. */
export function defaultPublicDir(): string {
  const here = fileURLToPath(new URL('./public/', import.meta.url));
  if (existsSync(join(here, 'index.html'))) return here;
  const fromDist = fileURLToPath(new URL('../../../src/http/public/', import.meta.url));
  if (existsSync(join(fromDist, 'index.html'))) return fromDist;
  return here;
}

/**
 * The operators' HTTP side: health, readiness, Prometheus metrics, a read-only JSON API over sessions,
 * their history, orders and positions, the session machine's definition, a live event stream and the
 * visualizer page. Only GET (and HEAD) exist; anything else is 405.
 *
 * @example
 * const http = createHttpServer({ sources, metrics, bus, machine: describeMachine(sessionMachine), port: 0 });
 * const { port } = await http.listen();
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const o = { ...DEFAULT_HTTP_SERVER_OPTIONS, ...options };
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new TypeError('options.port must be an integer in 0..65535');
  const { sources, metrics, bus, machine, logger } = o;
  const publicDir = o.publicDir ?? defaultPublicDir();
  const files = new Map<string, { body: Buffer; type: string; etag: string }>();
  const addFile = (route: string, body: Buffer, type: string) =>
    files.set(route, { body, type, etag: `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"` });
  for (const [route, f] of Object.entries(STATIC_FILES)) addFile(route, readFileSync(join(publicDir, f.file)), f.type);
  addFile('/vendor/lightweight-charts.js', readFileSync(CHARTS_FILE), 'text/javascript; charset=utf-8');
  const tokenDigest = o.token ? sha256(o.token) : undefined;
  const streams = new Set<ServerResponse>();

  const app = Fastify({ logger: false, return503OnClosing: true, schemaController: { compilersFactory: lazySchemaCompilers() } });

  const unauthorized = (req: FastifyRequest, reply: FastifyReply, digest: Buffer) => {
    // A browser cannot send a bearer header on navigation or EventSource: `/?token=` sets a cookie once.
    const q = req.query as Record<string, unknown> | undefined;
    if (req.method === 'GET' && routePath(req) === '/' && typeof q?.token === 'string' && safeEqual(sha256(q.token), digest)) {
      void reply
        .header('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(q.token)}; Path=/; HttpOnly; SameSite=Strict`)
        .redirect('/', 303);
      return reply;
    }
    void reply.code(401).header('www-authenticate', 'Bearer realm="sessiond"').send(errorBody('UNAUTHORIZED', 'a bearer token is required'));
    return reply;
  };

  app.addHook('onRequest', async (req, reply) => {
    if (tokenDigest) {
      const given = tokenOf(req);
      if (given === undefined || !safeEqual(sha256(given), tokenDigest)) return unauthorized(req, reply, tokenDigest);
    }
    if (req.method === 'GET' || req.method === 'HEAD') return;
    if (req.method !== 'POST') {
      void reply.code(405).header('allow', 'GET, HEAD, POST').send(errorBody('METHOD_NOT_ALLOWED', `${req.method} is not allowed`));
      return reply;
    }
    // Writes: refused here, before any body is parsed. They need the token in the Authorization header, on
    // loopback too. A cookie is not enough: a cross-site form or fetch carries cookies but cannot set this
    // header without a CORS preflight, which this server never answers, so writes are CSRF-safe.
    if (!tokenDigest || !sources.commands) {
      void reply.code(403).send(errorBody('READ_ONLY', 'writes are disabled: set http.token (SESSIOND_HTTP_TOKEN) to allow them'));
      return reply;
    }
    const bearer = bearerOf(req);
    if (bearer === undefined || !safeEqual(sha256(bearer), tokenDigest)) {
      void reply.code(401).header('www-authenticate', 'Bearer realm="sessiond"').send(errorBody('UNAUTHORIZED', 'writes need Authorization: Bearer <token>'));
      return reply;
    }
    const type = req.headers['content-type'];
    if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' && !(typeof type === 'string' && type.startsWith('application/json'))) {
      void reply.code(415).send(errorBody('UNSUPPORTED_MEDIA_TYPE', 'a write body must be application/json'));
      return reply;
    }
  });


  app.addHook('onResponse', async (req, reply) => {
    logger?.debug({ method: req.method, url: routePath(req), status: reply.statusCode, ms: Number(reply.elapsedTime.toFixed(2)) }, 'http request');
  });

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError) {
      void reply.code(err.status).send(errorBody(err.code, err.message));
      return;
    }
    if (err instanceof SessiondError) {
      const status = STATUS_BY_CODE[err.code] ?? 500;
      if (status === 503) void reply.header('retry-after', '5');
      void reply.code(status).send({ error: err.toJSON() });
      return;
    }
    const e = err as { statusCode?: number; message?: string; code?: string };
    const status = typeof e.statusCode === 'number' && e.statusCode >= 400 ? e.statusCode : 500;
    if (status >= 500) logger?.error({ err }, 'http handler failed');
    void reply.code(status).send(errorBody(status >= 500 ? 'INTERNAL' : (e.code ?? 'BAD_REQUEST'), e.message ?? 'failed'));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${routePath(req)}`));
  });

  const needBook = () => {
    if (!sources.book) throw new HttpError(404, 'NOT_FOUND', 'this server has no book source');
    return sources.book;
  };

  app.get('/healthz', async () => ({ status: 'ok', pid: process.pid, uptimeSeconds: Math.round(process.uptime()) }));

  app.get('/readyz', async (_req, reply) => {
    const r = await sources.readiness();
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not_ready', down: r.down, checks: r.checks });
  });

  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.render()));

  app.get('/api/sessions', async (req) => {
    const parsed = ListQuerySchema.safeParse(req.query ?? {});
    if (!parsed.success) {
      const msg = parsed.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; ');
      throw new SessiondError('VALIDATION_ERROR', `invalid query: ${msg}`);
    }
    const q = parsed.data;
    const activeOnly = q.active === 'true' || q.active === '1';
    const sessions = sources.sessions.listSessions({ activeOnly, ...(q.status ? { status: q.status } : {}), ...(q.kind ? { kind: q.kind } : {}) });
    return { count: sessions.length, sessions };
  });

  app.get<{ Params: { id: string } }>('/api/sessions/:id', async (req) => {
    const { session, snapshot } = sources.sessions.getStoredSession(req.params.id);
    const view: SessionView = sources.sessions.getSession(session.id);
    return { session: view, state: view.status, snapshot, history: sources.sessions.history(session.id) };
  });

  app.get<{ Params: { id: string } }>('/api/sessions/:id/history', async (req) => ({ history: sources.sessions.history(req.params.id) }));

  app.get<{ Params: { id: string }; Querystring: Record<string, string> }>('/api/sessions/:id/orders', async (req) => {
    const id = sources.sessions.getSession(req.params.id).id;
    if (!sources.book) return { orders: sources.orders.listBySession(id), fills: sources.orders.listFills(id) };
    const page = sources.book.orders({ ...validated(OrdersPageSchema, req.query ?? {}), sessionId: id });
    return { ...page, fills: sources.orders.listFills(id) };
  });

  app.get<{ Params: { id: string } }>('/api/sessions/:id/fills', async (req) => {
    const id = sources.sessions.getSession(req.params.id).id;
    return { fills: sources.orders.listFills(id) };
  });

  app.get<{ Params: { id: string } }>('/api/sessions/:id/pnl', async (req) => needBook().pnl(req.params.id));

  app.get<{ Params: { id: string } }>('/api/sessions/:id/equity', async (req) => ({ equity: needBook().equity(req.params.id) }));

  app.get<{ Params: { id: string }; Querystring: Record<string, string> }>('/api/sessions/:id/bars', async (req) =>
    needBook().bars({ ...validated(BarsPageSchema, req.query ?? {}), sessionId: req.params.id }),
  );

  app.get('/api/pnl', async () => needBook().pnlReport());

  app.get('/api/ui', async () => ({ writable: Boolean(tokenDigest && sources.commands), tokenRequired: Boolean(tokenDigest) }));

  // ---- writes: the same BullMQ commands sessionctl sends ----
  const submit = async (req: FastifyRequest, name: string, data: unknown) => {
    const key = req.headers['idempotency-key'];
    if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
      throw new SessiondError('VALIDATION_ERROR', 'Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -');
    }
    try {
      return await sources.commands!.submit(name, data, { ...(typeof key === 'string' ? { commandId: key } : {}), timeoutMs: o.commandTimeoutMs });
    } catch (err) {
      if (err instanceof SessiondError) throw err;
      const e = err as { code?: string; message?: string };
      if (e.code === 'TIMEOUT') throw new HttpError(504, 'TIMEOUT', e.message ?? 'no daemon answered');
      throw err;
    }
  };
  for (const name of ['pause', 'resume', 'stop'] as const) {
    app.post<{ Params: { id: string } }>(`/api/sessions/:id/${name}`, async (req) => {
      const body = validated(ReasonBodySchema, req.body ?? {});
      return { session: await submit(req, name, { sessionId: req.params.id, ...(name !== 'resume' && body.reason ? { reason: body.reason } : {}) }) };
    });
  }
  for (const [name, job] of [
    ['approve', 'approve-order'],
    ['reject', 'reject-order'],
  ] as const) {
    app.post<{ Params: { id: string; orderId: string } }>(`/api/sessions/:id/orders/:orderId/${name}`, async (req) => {
      const body = validated(ReasonBodySchema, req.body ?? {});
      const data = { sessionId: req.params.id, clientOrderId: req.params.orderId, ...(body.reason ? { reason: body.reason } : {}) };
      return { order: await submit(req, job, data) };
    });
  }
  app.post('/api/kill-switch', async (req) => {
    const body = validated(KillSwitchBodySchema, req.body ?? {});
    return { stopped: await submit(req, 'kill-switch', { liveOnly: body.liveOnly, ...(body.reason ? { reason: body.reason } : {}) }) };
  });

  app.get<{ Params: { id: string } }>('/api/sessions/:id/positions', async (req) => {
    const id = sources.sessions.getSession(req.params.id).id;
    return { positions: sources.orders.positions(id) };
  });

  app.get('/api/machine', async () => machine);

  app.get('/api/events', (req, reply) => {
    if (streams.size >= o.maxEventClients) {
      return reply.code(503).header('retry-after', '5').send(errorBody('TOO_MANY_CLIENTS', `at most ${o.maxEventClients} event streams are served (http.maxEventClients)`));
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // retry: a restarted daemon is reconnected to within a second.
    res.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify({ at: new Date().toISOString() })}\n\n`);
    streams.add(res);
    const unsubscribe = bus.subscribe((event: LiveEvent) => {
      res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), o.heartbeatMs);
    heartbeat.unref();
    const done = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    };
    req.raw.on('close', done);
    res.on('close', done);
  });

  for (const [route, f] of files) {
    app.get(route, async (req, reply) => {
      void reply
        .header('content-type', f.type)
        .header('cache-control', 'no-cache')
        .header('etag', f.etag)
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff');
      if (req.headers['if-none-match'] === f.etag) return reply.code(304).send();
      return reply.send(f.body);
    });
  }

  // Event streams never end by themselves: end them, or close() would wait for every open page.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });

  let closing: Promise<void> | undefined;
  return {
    app,
    async listen() {
      await app.listen({ host: o.host, port: o.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      return { host: o.host, port };
    },
    close() {
      closing ??= app.close();
      return closing;
    },
  };
}

type SchemaCompilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

/**
 * fastify's own JSON-schema compilers (Ajv, fast-json-stringify), loaded the first time a route declares a schema.
 * The routes here declare none (they validate with zod), so a daemon start no longer loads Ajv (~40 ms). The
 * compilers are fastify's defaults, resolved from fastify's own folder; one difference only, as with any
 * compiler given this way: a `headers` schema would be compiled as written (fastify lower-cases its keys
 * for its built-in compiler).
 */
function lazySchemaCompilers(): SchemaCompilers {
  const fromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
  type Validators = NonNullable<SchemaCompilers['buildValidator']>;
  type Serializers = NonNullable<SchemaCompilers['buildSerializer']>;
  return {
    buildValidator: loadOnFirstCall(() => (fromFastify('@fastify/ajv-compiler') as () => Validators)()),
    buildSerializer: loadOnFirstCall(() => (fromFastify('@fastify/fast-json-stringify-compiler') as () => Serializers)()),
  };
}

/** A function that calls what `load` returns, loading it on its first call. */
function loadOnFirstCall<F extends (...args: never[]) => unknown>(load: () => F): F {
  let f: F | undefined;
  return ((...args: Parameters<F>) => (f ??= load())(...args)) as F;
}

const OrdersPageSchema = z.object({ status: z.string().optional(), offset: z.string().optional(), limit: z.string().optional() }).strict();
const BarsPageSchema = z.object({ symbol: z.string().optional(), limit: z.string().optional() }).strict();

/** An HTTP-only failure with its status and stable code. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = this.constructor.name;
  }
}

function validated<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    throw new SessiondError('VALIDATION_ERROR', `invalid request: ${msg}`);
  }
  return parsed.data;
}

function bearerOf(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
  return m ? m[1] : undefined;
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

function routePath(req: FastifyRequest): string {
  const i = req.url.indexOf('?');
  return i < 0 ? req.url : req.url.slice(0, i);
}

function tokenOf(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1];
  }
  const cookie = req.headers.cookie;
  if (typeof cookie === 'string') {
    for (const part of cookie.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === TOKEN_COOKIE) return decodeURIComponent(v.join('='));
    }
  }
  return undefined;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of equal-length digests. */
function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
