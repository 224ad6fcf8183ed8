import { z } from 'zod';
import { CLIENT_ID_PREFIX_PATTERN } from './venue/client-order-id.js';

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
const url = z.string().url();
const common = {
  /** Prefix of the client order ids this daemon sends to the venue. @defaultValue 'sd-' */
  clientIdPrefix: z.string().regex(CLIENT_ID_PREFIX_PATTERN, "letters and digits then '-', at most 7 characters").optional(),
  /** Per-request timeout of the venue's client. */
  timeoutMs: z.number().int().positive().optional(),
};

export const CcxtBrokerConfigSchema = z
  .object({
    type: z.literal('ccxt'),
    exchange: z.string().min(1),
    sandbox: z.boolean().default(false),
    apiKeyEnv: envName,
    secretEnv: envName,
    passwordEnv: envName.optional(),
    options: z.record(z.string(), z.unknown()).optional(),
    urls: z.record(z.string(), z.unknown()).optional(),
    /** Websocket streams (ccxt.pro) where the adapter has one: venue feeds' bars. @defaultValue true */
    streams: z.boolean().optional(),
    /**
     * ccxt's rate limiter algorithm (its `rateLimiterAlgorithm`; always on). `rollingWindow` admits a request at
     * once while the last minute's weighted cost is under the exchange's budget; `leakyBucket` makes every
     * request wait its cost (Binance: ~10 ms an order, even on an idle client). @defaultValue 'rollingWindow'
     */
    rateLimiter: z.enum(['rollingWindow', 'leakyBucket']).optional(),
    ...common,
  })
  .strict();

export const AlpacaBrokerConfigSchema = z
  .object({
    type: z.literal('alpaca'),
    paper: z.boolean().default(true),
    keyIdEnv: envName,
    secretKeyEnv: envName,
    baseUrl: url.optional(),
    dataUrl: url.optional(),
    streamUrl: url.optional(),
    rateLimit: z.object({ maxRequests: z.number().int().positive(), intervalMs: z.number().int().positive() }).strict().optional(),
    ...common,
  })
  .strict();

export const BrokerConfigSchema = z.discriminatedUnion('type', [CcxtBrokerConfigSchema, AlpacaBrokerConfigSchema]);
export type BrokerConfig = z.output<typeof BrokerConfigSchema>;

/** `brokers`: id -> definition. `paper` is built in and cannot be redefined. */
export const BrokersConfigSchema = z
  .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits and . _ - only, at most 64'), BrokerConfigSchema)
  .refine((b) => !('paper' in b), { message: 'paper is the built-in broker and cannot be redefined' })
  .default({});
export type BrokersConfig = z.output<typeof BrokersConfigSchema>;

/** A credential named in config is not in the environment: the daemon does not start. */
export class MissingCredentialError extends Error {
  readonly code = 'CONFIG_ERROR';
  constructor(
    readonly brokerId: string,
    readonly variable: string,
  ) {
    super(`broker ${brokerId}: environment variable ${variable} is not set (credentials come only from the environment)`);
    this.name = this.constructor.name;
  }
}

/** Reads one credential; the value is never logged or echoed, only the variable's name. */
export function credential(env: NodeJS.ProcessEnv, brokerId: string, variable: string): string {
  const v = env[variable];
  if (v === undefined || v === '') throw new MissingCredentialError(brokerId, variable);
  return v;
}

/** Every variable the brokers need, checked at once (the error names the first missing). */
export function checkBrokerCredentials(brokers: BrokersConfig, env: NodeJS.ProcessEnv = process.env): void {
  for (const [id, b] of Object.entries(brokers)) {
    const vars = b.type === 'ccxt' ? [b.apiKeyEnv, b.secretEnv, ...(b.passwordEnv ? [b.passwordEnv] : [])] : [b.keyIdEnv, b.secretKeyEnv];
    for (const v of vars) credential(env, id, v);
  }
}
