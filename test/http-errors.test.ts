import test from 'ava';
import { sessionMachine } from '../machines/session.machine.js';
import { SessiondError, type ErrorCode } from '../src/domain/errors.js';
import { EventBus } from '../src/http/event-bus.js';
import { describeMachine } from '../src/http/machine-definition.js';
import { Metrics } from '../src/http/metrics.js';
import { createHttpServer, type HttpApiSources } from '../src/http/server.js';

// The HTTP status of each stable error code, through a real Fastify server on 127.0.0.1. The sources are a
// stand-in that throws the code (the daemon-backed routes are covered by test/http.test.ts).

function serverThrowing(code: ErrorCode) {
  const fail = () => {
    throw new SessiondError(code, `failed with ${code}`);
  };
  const sources: HttpApiSources = {
    sessions: { listSessions: fail, getSession: fail, getStoredSession: fail, history: fail },
    orders: { listBySession: fail, positions: fail, listFills: fail },
    readiness: async () => ({ ready: true, down: [], checks: {} }),
  };
  return createHttpServer({ sources, metrics: new Metrics({ processMetrics: false }), bus: new EventBus(), machine: describeMachine(sessionMachine), port: 0 });
}

for (const [code, status] of [
  ['STORAGE_UNAVAILABLE', 503],
  ['SESSION_NOT_FOUND', 404],
  ['COMMAND_NOT_FOUND', 404],
  ['VALIDATION_ERROR', 400],
  ['INVALID_TRANSITION', 409],
  ['INTERNAL', 500],
] as const) {
  test(`${code} is answered ${status} with the code in the body`, async (t) => {
    const http = serverThrowing(code);
    const { port } = await http.listen();
    t.teardown(() => http.close());
    const res = await fetch(`http://127.0.0.1:${port}/api/sessions/s-1`);
    t.is(res.status, status);
    const body = (await res.json()) as { error: { code: string; message: string } };
    t.is(body.error.code, code);
    t.is(body.error.message, `failed with ${code}`);
    if (status === 503) t.is(res.headers.get('retry-after'), '5', 'a client is told when to try again');
  });
}
