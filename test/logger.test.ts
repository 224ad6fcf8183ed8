import { Writable } from 'node:stream';
import test from 'ava';
import { REDACT_PATHS, createLogger } from '../src/daemon/logger.js';

function capture(): { stream: Writable; lines: () => Record<string, any>[]; text: () => string } {
  let buf = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    text: () => buf,
    lines: () =>
      buf
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>),
  };
}

// No Redis here: redaction is the logger's own behaviour, tested on what it writes.

test('a token, apiKey or password in a logged object comes out as [Redacted]', (t) => {
  const out = capture();
  const logger = createLogger('info', out.stream);
  logger.info({ token: 'tok-SECRET-1', apiKey: 'key-SECRET-2', password: 'pw-SECRET-3', sessionId: 's1' }, 'connecting');
  const [line] = out.lines();
  t.is(line!.token, '[Redacted]');
  t.is(line!.apiKey, '[Redacted]');
  t.is(line!.password, '[Redacted]');
  t.is(line!.sessionId, 's1', 'what is not secret stays');
  t.is(line!.msg, 'connecting');
  t.notRegex(out.text(), /SECRET/);
});

test('secrets one level down (a broker config, request headers, the HTTP token in config) are redacted too', (t) => {
  const out = capture();
  const logger = createLogger('info', out.stream);
  logger.info(
    {
      broker: { id: 'alpaca', apiKey: 'key-SECRET-4', apiSecret: 'sec-SECRET-5', credentials: { user: 'u', pass: 'SECRET-6' } },
      req: { headers: { authorization: 'Bearer SECRET-7', host: 'localhost' } },
      config: { http: { host: '0.0.0.0', token: 'SECRET-8' } },
      redis: { password: 'SECRET-9' },
    },
    'configured',
  );
  const [line] = out.lines();
  t.is(line!.broker.apiKey, '[Redacted]');
  t.is(line!.broker.apiSecret, '[Redacted]');
  t.is(line!.broker.credentials, '[Redacted]');
  t.is(line!.broker.id, 'alpaca');
  t.is(line!.req.headers.authorization, '[Redacted]');
  t.is(line!.req.headers.host, 'localhost');
  t.is(line!.config.http.token, '[Redacted]');
  t.is(line!.config.http.host, '0.0.0.0');
  t.is(line!.redis.password, '[Redacted]');
  t.notRegex(out.text(), /SECRET/);
});

test('child loggers keep the redaction', (t) => {
  const out = capture();
  const child = createLogger('info', out.stream).child({ sessionId: 's2' });
  child.warn({ token: 'SECRET-10' }, 'retrying');
  const [line] = out.lines();
  t.is(line!.token, '[Redacted]');
  t.is(line!.sessionId, 's2');
  t.notRegex(out.text(), /SECRET/);
});

test('REDACT_PATHS names the secret keys', (t) => {
  for (const key of ['token', 'apiKey', 'apiSecret', 'password', 'secret', 'credentials', 'authorization']) {
    t.true(REDACT_PATHS.includes(key), key);
    t.true(REDACT_PATHS.includes(`*.${key}`), `*.${key}`);
  }
});
