import { pino, type Logger, type DestinationStream } from 'pino';

/** Paths pino replaces with [Redacted]: tokens, broker keys, passwords, wherever they appear. */
const SECRET_KEYS = ['token', 'password', 'apiKey', 'apiSecret', 'secret', 'credentials', 'authorization', 'Authorization', 'redisPassword'];

/** Paths pino replaces with [Redacted]: secrets at the top level and up to three levels deep. */
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * pino's error serializer, minus what a Redis client attaches to its errors: ioredis puts the failed command
 * on `err.command`, and for AUTH/HELLO its args are the password. Args never reach a log (nor do a cause's).
 */
export function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown;
  scrubCommandArgs(out, 0);
  return out;
}

function scrubCommandArgs(o: unknown, depth: number): void {
  if (depth > 5 || o === null || typeof o !== 'object') return;
  const rec = o as Record<string, unknown>;
  const command = rec.command;
  if (command && typeof command === 'object' && 'args' in command) {
    rec.command = { ...(command as Record<string, unknown>), args: '[Redacted]' };
  }
  for (const key of ['cause', 'previousErrors', 'lastNodeError', 'aggregateErrors']) {
    const v = rec[key];
    if (Array.isArray(v)) v.forEach((e) => scrubCommandArgs(e, depth + 1));
    else scrubCommandArgs(v, depth + 1);
  }
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sessiond' },
      serializers: { err: serializeError, error: serializeError },
      redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
