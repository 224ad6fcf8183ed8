import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { NOTIFY_EVENTS } from '../notify/events.js';
import { BrokersConfigSchema, MissingCredentialError, checkBrokerCredentials } from '../brokers/broker-config.js';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().finite().min(0);

export const ConfigSchema = z
  .object({
    redis: z.object({ url: z.string().url(), embedded: z.boolean(), embeddedDir: z.string().min(1) }).strict(),
    queue: z
      .object({
        name: z.string().min(1),
        prefix: z.string().min(1),
        concurrency: positiveInt,
        lockDurationMs: positiveInt,
        stalledIntervalMs: positiveInt,
        leaseTtlMs: z.number().int().min(300),
        sequenceGapMs: positiveInt,
        standby: z.boolean(),
      })
      .strict(),
    database: z.object({ file: z.string().min(1), synchronous: z.enum(['NORMAL', 'FULL']) }).strict(),
    http: z
      .object({
        enabled: z.boolean(),
        host: z.string().min(1),
        port: z.number().int().min(0).max(65535),
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        /** Open server-sent event streams at most; one more gets 503. */
        maxEventClients: positiveInt,
      })
      .strict(),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) }).strict(),
    prerequisites: z
      .object({
        backtest: z
          .object({ minReturnPct: z.number().finite(), maxDrawdownPct: nonNegative, minSharpe: z.number().finite(), minTrades: z.number().int().min(0), acceptRecorded: z.boolean().default(false) })
          .strict(),
        paper: z.object({ minRunSeconds: nonNegative, minReturnPct: z.number().finite(), maxDrawdownPct: nonNegative }).strict(),
      })
      .strict(),
    runners: z
      .object({
        enabled: z.boolean(),
        poolSize: positiveInt,
        stepTimeoutMs: positiveInt,
        maxRestarts: z.number().int().min(0),
        restartBackoffMs: z.number().int().min(0),
        approvalTtlMs: positiveInt,
        stateCommitMs: z.number().int().min(0),
        batchWindowMs: z.number().int().min(0),
        maxBatchSize: positiveInt,
        maxCatchUpSteps: positiveInt,
        defaultBarIntervalMs: positiveInt,
      })
      .strict(),
    strategies: z.object({ modules: z.array(z.string().min(1)) }).strict(),
    paperBroker: z
      .object({ initialCash: z.number().positive(), slippageBps: nonNegative, commissionBps: nonNegative, commissionPerOrder: nonNegative, allowShort: z.boolean().default(false) })
      .strict(),
    inspect: z.object({ enabled: z.boolean(), port: z.number().int().min(1).max(65535) }).strict(),
    marketData: z.object({ dirs: z.array(z.string().min(1)).min(1), maxFileBytes: positiveInt }).strict(),
    shutdown: z.object({ drainTimeoutMs: positiveInt }).strict(),
    metrics: z.object({ maxSessionLabels: z.number().int().min(0) }).strict(),
    notify: z
      .object({
        webhooks: z.array(
          z
            .object({
              url: z.string().url().refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
              /** Event types to send; absent: every event. */
              events: z.array(z.enum(NOTIFY_EVENTS)).min(1).optional(),
              /** When set, each POST carries `X-Sessiond-Signature: sha256=<hex HMAC of the body>`. */
              secret: z.string().min(16, 'must be at least 16 characters').optional(),
            })
            .strict(),
        ),
        timeoutMs: positiveInt,
        maxAttempts: positiveInt,
        backoffMs: positiveInt,
      })
      .strict(),
    brokers: BrokersConfigSchema,
    reconcile: z.object({ intervalMs: z.number().int().min(0), unknownTimeoutMs: positiveInt }).strict().default({ intervalMs: 30_000, unknownTimeoutMs: 60_000 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const local = c.http.host === '127.0.0.1' || c.http.host === 'localhost' || c.http.host === '::1';
    if (c.http.enabled && !local && !c.http.token) {
      ctx.addIssue({ code: 'custom', path: ['http', 'token'], message: `is required when http.host is ${c.http.host} (not loopback)` });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

/** A bad config value: the message names the key. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_ERROR';
  constructor(message: string) {
    super(message);
    this.name = this.constructor.name;
  }
}

/** Env variable -> config path and type. */
const ENV_KEYS: Record<string, { path: string[]; type: 'string' | 'int' | 'bool' | 'paths' }> = {
  REDIS_URL: { path: ['redis', 'url'], type: 'string' },
  SESSIOND_REDIS_EMBEDDED: { path: ['redis', 'embedded'], type: 'bool' },
  SESSIOND_DB: { path: ['database', 'file'], type: 'string' },
  LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
  SESSIOND_QUEUE: { path: ['queue', 'name'], type: 'string' },
  SESSIOND_QUEUE_PREFIX: { path: ['queue', 'prefix'], type: 'string' },
  SESSIOND_CONCURRENCY: { path: ['queue', 'concurrency'], type: 'int' },
  SESSIOND_LOCK_DURATION_MS: { path: ['queue', 'lockDurationMs'], type: 'int' },
  SESSIOND_STALLED_INTERVAL_MS: { path: ['queue', 'stalledIntervalMs'], type: 'int' },
  SESSIOND_LEASE_TTL_MS: { path: ['queue', 'leaseTtlMs'], type: 'int' },
  SESSIOND_STANDBY: { path: ['queue', 'standby'], type: 'bool' },
  SESSIOND_SEQUENCE_GAP_MS: { path: ['queue', 'sequenceGapMs'], type: 'int' },
  SESSIOND_HTTP: { path: ['http', 'enabled'], type: 'bool' },
  SESSIOND_HTTP_HOST: { path: ['http', 'host'], type: 'string' },
  SESSIOND_HTTP_PORT: { path: ['http', 'port'], type: 'int' },
  SESSIOND_HTTP_TOKEN: { path: ['http', 'token'], type: 'string' },
  SESSIOND_RUNNERS: { path: ['runners', 'enabled'], type: 'bool' },
  SESSIOND_POOL_SIZE: { path: ['runners', 'poolSize'], type: 'int' },
  SESSIOND_INSPECT: { path: ['inspect', 'enabled'], type: 'bool' },
  SESSIOND_INSPECT_PORT: { path: ['inspect', 'port'], type: 'int' },
  SESSIOND_REDIS_DIR: { path: ['redis', 'embeddedDir'], type: 'string' },
  SESSIOND_DRAIN_TIMEOUT_MS: { path: ['shutdown', 'drainTimeoutMs'], type: 'int' },
  SESSIOND_DATA_DIRS: { path: ['marketData', 'dirs'], type: 'paths' },
  SESSIOND_HTTP_MAX_EVENT_CLIENTS: { path: ['http', 'maxEventClients'], type: 'int' },
  SESSIOND_METRICS_MAX_SESSIONS: { path: ['metrics', 'maxSessionLabels'], type: 'int' },
};

/** config/default.json of the checkout: two levels up from src/daemon, three when running compiled from dist/src/daemon. */
export const DEFAULT_CONFIG_FILE = [new URL('../../config/default.json', import.meta.url), new URL('../../../config/default.json', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((f) => existsSync(f)) ?? fileURLToPath(new URL('../../config/default.json', import.meta.url));

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Json, v) : v;
  return out;
}

function readJson(file: string, what: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${what} ${file} cannot be read: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v)) throw new Error('not a JSON object');
    return v;
  } catch (err) {
    throw new ConfigError(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * config/default.json, overridden by the file in SESSIOND_CONFIG, overridden by env; validated and frozen.
 * Throws ConfigError naming the key (and the env variable it came from).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, defaultFile = DEFAULT_CONFIG_FILE): Readonly<Config> {
  let raw = readJson(defaultFile, 'default config');
  if (env.SESSIOND_CONFIG) raw = merge(raw, readJson(env.SESSIOND_CONFIG, 'config file (SESSIOND_CONFIG)'));
  const fromEnv = new Map<string, string>();
  for (const [name, spec] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let parsed: unknown = value;
    if (spec.type === 'int') {
      parsed = /^-?\d+$/.test(value) ? Number(value) : value;
    } else if (spec.type === 'paths') {
      parsed = value.split(':').filter((p) => p !== '');
    } else if (spec.type === 'bool') {
      parsed = value === 'true' || value === '1' ? true : value === 'false' || value === '0' ? false : value;
    }
    let node = raw;
    for (const key of spec.path.slice(0, -1)) {
      if (!isObject(node[key])) node[key] = {};
      node = node[key] as Json;
    }
    node[spec.path.at(-1)!] = parsed;
    fromEnv.set(spec.path.join('.'), name);
  }
  // Parsed once per process: zod's compiled fast path (generated with new Function per object schema, for
  // repeated parses) would cost a start more than it saves.
  const result = ConfigSchema.safeParse(raw, { jitless: true });
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = i.path.join('.');
      const source = fromEnv.get(key);
      return `${key}: ${i.message}${source ? ` (from env ${source})` : ''}`;
    });
    throw new ConfigError(`invalid config: ${lines.join('; ')}`);
  }
  try {
    // Credentials only from the environment: a missing one stops the daemon at start, naming the variable.
    checkBrokerCredentials(result.data.brokers, env);
  } catch (err) {
    if (err instanceof MissingCredentialError) throw new ConfigError(`invalid config: brokers.${err.brokerId}: ${err.message}`);
    throw err;
  }
  return deepFreeze(result.data);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** A Redis URL safe for logs: the password is replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
