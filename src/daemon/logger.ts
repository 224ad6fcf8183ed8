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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sessiond' },
      redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
