import test from 'ava';
import fc from 'fast-check';
import { fastPathKeys, isPlainValidRow, parsedRowToSession, rowSchemaAccepts, type ParsedSessionRow } from '../src/persistence/session-mapper.js';

const BASE: ParsedSessionRow = {
  id: 's-1',
  kind: 'paper',
  status: 'running',
  strategy_id: 'sma-crossover',
  strategy: { id: 'sma-crossover', name: 'SMA crossover', params: { fast: 5, slow: 20, qty: 1 } },
  broker_id: 'paper',
  account_id: 'default',
  symbols: ['AAPL', 'BTC/USD'],
  execution_mode: 'auto',
  risk_controls: { maxOrderQty: 10, maxOpenOrders: 3 },
  feed: { type: 'synthetic', intervalMs: 1000, volatility: 0.01 },
  flatten_on_stop: 0,
  positions: { AAPL: { qty: 1, avgPrice: 100 } },
  snapshot: null,
  stop_reason: null,
  error: null,
  created_at: '2026-01-01T00:00:00.000Z',
  started_at: '2026-01-01T00:00:01.000Z',
  stopped_at: null,
  updated_at: '2026-01-01T00:00:01.000Z',
};

// Values a corrupt or hand-edited row could hold, and the edge cases of each check.
const odd = fc.oneof(
  fc.constantFrom(null, undefined, 0, -1, 1, 1.5, 2 ** 53, -0, 1e308, '', 'x', 'paper', 'live', 'running', 'stopped', 'confirm', 'signal-only',
    'synthetic', 'replay', 'venue', 'a b', 'sma-crossover', 'x'.repeat(257), [], ['a'], [1], {}, { id: 'x' }, { type: 'synthetic' },
    { type: 'replay', file: 'f.csv' }, { type: 'replay', file: '' }, { type: 'venue', timeframe: '1m' }, { maxOrderQty: 0 }, { maxOpenOrders: 1.5 },
    { id: 'ok', extra: 1 }, { id: 'ok', params: [] }, { id: 'ok', name: '' }, { type: 'synthetic', seed: 1.5 }, { type: 'synthetic', bogus: 1 }),
  fc.jsonValue(),
);
const FIELDS = Object.keys(BASE) as (keyof ParsedSessionRow)[];
const NESTED: [keyof ParsedSessionRow, string][] = [
  ['strategy', 'id'], ['strategy', 'name'], ['strategy', 'params'], ['strategy', 'extra'],
  ['risk_controls', 'maxOrderQty'], ['risk_controls', 'maxOrderNotional'], ['risk_controls', 'maxPositionQty'], ['risk_controls', 'maxOpenOrders'],
  ['risk_controls', 'maxDailyLoss'], ['risk_controls', 'extra'],
  ['feed', 'type'], ['feed', 'seed'], ['feed', 'intervalMs'], ['feed', 'startPrice'], ['feed', 'volatility'], ['feed', 'barsPerStep'], ['feed', 'file'],
  ['feed', 'speed'], ['feed', 'timeframe'],
];
const mutation = fc.oneof(
  fc.record({ field: fc.constantFrom(...FIELDS), value: odd }).map(({ field, value }) => (r: Record<string, unknown>) => void (r[field] = value)),
  fc.record({ at: fc.constantFrom(...NESTED), value: odd }).map(({ at: [field, key], value }) => (r: Record<string, unknown>) => {
    const inner = r[field];
    if (inner !== null && typeof inner === 'object') (inner as Record<string, unknown>)[key] = value;
  }),
);
const row = fc
  .record({
    feed: fc.constantFrom<unknown>(BASE.feed, null, { type: 'replay', file: 'spy.csv', speed: 2, barsPerStep: 1 }, { type: 'synthetic', seed: -7, startPrice: 50, barsPerStep: 2 }),
    risk: fc.constantFrom<unknown>({}, BASE.risk_controls, { maxDailyLoss: 500, maxPositionQty: 2.5, maxOrderNotional: 1e6 }),
    mutations: fc.array(mutation, { maxLength: 3 }),
  })
  .map(({ feed, risk, mutations }) => {
    const r = structuredClone({ ...BASE, feed, risk_controls: risk }) as unknown as Record<string, unknown>;
    for (const m of mutations) m(r);
    return r as unknown as ParsedSessionRow;
  });

test("the session row's fast path accepts only rows RowSchema accepts, and gives the same session", (t) => {
  let fast = 0;
  let slowOk = 0;
  fc.assert(
    fc.property(row, (r) => {
      const zod = rowSchemaAccepts(r);
      if (isPlainValidRow(r)) {
        fast++;
        if (!zod.ok) return false;
        // The same session whichever path made it (the fast path returns the row's own values).
        const viaFast = parsedRowToSession(r);
        const viaZod = parsedRowToSession({ ...(zod.data as ParsedSessionRow), flatten_on_stop: r.flatten_on_stop, created_at: r.created_at, updated_at: r.updated_at, stop_reason: r.stop_reason, error: r.error, started_at: r.started_at, stopped_at: r.stopped_at });
        t.deepEqual(viaFast, viaZod);
      } else if (zod.ok) slowOk++;
      return true;
    }),
    { numRuns: 3000, seed: 11 },
  );
  // Both paths were exercised: most generated rows are valid and take the fast path.
  t.true(fast > 1000, `fast path taken ${fast} times`);
  t.log(`fast path ${fast}, zod path accepting ${slowOk}, of 3000`);
});

test('a row the fast path refuses is still decided by RowSchema: a venue feed is accepted, a bad field is INTERNAL naming it', (t) => {
  const venue = { ...BASE, feed: { type: 'venue', timeframe: '1m' } };
  t.false(isPlainValidRow(venue));
  t.deepEqual(parsedRowToSession(venue).feed, { type: 'venue', timeframe: '1m' });
  t.throws(() => parsedRowToSession({ ...BASE, risk_controls: { maxOrderQty: -1 } }), { message: /^session row s-1 is invalid: risk_controls\.maxOrderQty/ });
  t.throws(() => parsedRowToSession({ ...BASE, strategy: { id: 'bad id' } }), { message: /^session row s-1 is invalid: strategy\.id/ });
});

test('the fast path checks every field its schemas know (a field added to a schema must be added to the fast path)', (t) => {
  for (const [what, schema, fast] of fastPathKeys()) t.deepEqual([...fast].sort(), [...schema].sort(), what);
});
