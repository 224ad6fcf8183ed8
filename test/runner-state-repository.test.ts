import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { openDatabase } from '../src/persistence/database.js';
import type { RunnerStateRecord } from '../src/persistence/runner-state-repository.js';
import { FAST_PATH_COLUMNS, SqliteRunnerStateRepository, columnsSchemaAccepts, columnsSchemaKeys, plainValidColumns, type ParsedRunnerStateRow } from '../src/persistence/sqlite-runner-state-repository.js';

const T0 = '2026-01-05T10:00:00.000Z';

function record(sessionId: string, over: Partial<RunnerStateRecord> = {}): RunnerStateRecord {
  return {
    sessionId,
    strategyId: 'sma-crossover',
    state: { closes: [1.5, 2.25] },
    cursor: 7,
    startTime: 1_000,
    steps: 7,
    lastPrices: { AAPL: 101.5 },
    dayStartPnl: 0,
    initialEquity: 100_000,
    equity: 100_010,
    peakEquity: 100_020,
    maxDrawdownPct: 0.01,
    failures: 0,
    createdAt: T0,
    updatedAt: T0,
    lastBarTime: 7_000,
    feedCheckpoint: { cursor: 7, logCloses: [4.6] },
    ...over,
  };
}

test('prefetch answers each session\'s next get as a read would, once; a save, saveMany or markFinalized drops the answer', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiond-runner-state-'));
  const db = openDatabase(path.join(dir, 'sessiond.db'));
  t.teardown(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ids = ['a', 'b', 'c', 'd'];
  for (const id of ids) {
    db.prepare(`INSERT INTO sessions (id, kind, status, strategy_id, strategy, broker_id, account_id, symbols, execution_mode, risk_controls, created_at, updated_at)
      VALUES (?, 'paper', 'running', 's', '{"id":"s"}', 'paper', 'default', '["AAPL"]', 'auto', '{}', ?, ?)`).run(id, T0, T0);
  }
  const repo = new SqliteRunnerStateRepository(db);
  for (const id of ['a', 'b', 'c']) repo.save(record(id));
  const asRead = repo.get('a');
  t.deepEqual(asRead, record('a'));
  repo.prefetch([...ids, 'missing']);
  repo.save(record('b', { cursor: 8, steps: 8 }));
  repo.saveMany([record('c', { equity: 99_000 })]);
  t.deepEqual(repo.get('a'), asRead);
  t.is(repo.get('b')?.cursor, 8);
  t.is(repo.get('c')?.equity, 99_000);
  t.is(repo.get('d'), undefined);
  t.is(repo.get('missing'), undefined);
  // Once: the next get reads SQLite (changed behind the repository's back here).
  db.prepare("UPDATE runner_state SET steps = 42 WHERE session_id = 'a'").run();
  t.is(repo.get('a')?.steps, 42);
  repo.prefetch(['a']);
  repo.markFinalized('a', T0);
  t.is(repo.get('a')?.finalizedAt, T0);
  // A corrupt row read ahead is still refused when it is used.
  db.prepare("UPDATE runner_state SET cursor = -1 WHERE session_id = 'b'").run();
  repo.prefetch(['b']);
  t.throws(() => repo.get('b'), { message: /^runner state of b is invalid: cursor/ });
  // Columns that are not strict JSON (JSON5 would pass SQLite's json()): read alone, reported as get reports them;
  // a checkpoint that is not JSON is only dropped (the feed replays), as get drops it.
  db.prepare("UPDATE runner_state SET cursor = 7, last_prices = '{AAPL: 1}' WHERE session_id = 'b'").run();
  db.prepare("UPDATE runner_state SET feed_checkpoint = '{cursor: 7}' WHERE session_id = 'c'").run();
  repo.prefetch(['b', 'c']);
  t.throws(() => repo.get('b'), { message: 'runner_state.last_prices of b is not valid JSON' });
  for (const bad of ['{"AAPL":"101"}', '{"AAPL":null}', '[1]', '{"AAPL":1e999}']) {
    db.prepare("UPDATE runner_state SET last_prices = ? WHERE session_id = 'b'").run(bad);
    repo.prefetch(['b']);
    t.throws(() => repo.get('b'), { message: /^runner_state\.last_prices of b is invalid/ }, bad);
    t.throws(() => repo.get('b'), { message: /^runner_state\.last_prices of b is invalid/ }, `${bad}, read alone`);
  }
  const c = repo.get('c');
  t.is(c?.feedCheckpoint, undefined);
  const { feedCheckpoint: _dropped, ...rest } = record('c', { equity: 99_000 });
  t.deepEqual(c, rest);
});

test("the runner state columns' fast path accepts only rows RunnerStateColumnsSchema accepts", (t) => {
  const base = {
    session_id: 'a', strategy_id: 'sma-crossover', strategy_state: {}, cursor: 7, start_time: 1_000, steps: 7, last_bar_time: 7_000,
    last_prices: {}, day_start: null, day_start_pnl: 0, initial_equity: 100_000, equity: 100_010, peak_equity: 100_020, max_drawdown_pct: 0.01,
    failures: 0, last_error: null, finalized_at: null, created_at: T0, updated_at: T0, feed_checkpoint: null,
  } as ParsedRunnerStateRow;
  const keys = Object.keys(base).filter((k) => !['strategy_state', 'last_prices', 'feed_checkpoint'].includes(k));
  const odd = fc.oneof(fc.constantFrom(null, undefined, 0, -1, 1, 1.5, -0, 2 ** 53, 2 ** 60, Infinity, NaN, '', 'x', [], {}, true), fc.jsonValue());
  let fast = 0;
  fc.assert(
    fc.property(fc.array(fc.record({ key: fc.constantFrom(...keys), value: odd }), { maxLength: 3 }), (changes) => {
      const row = { ...base } as Record<string, unknown>;
      for (const c of changes) row[c.key] = c.value;
      if (!plainValidColumns(row as ParsedRunnerStateRow)) return true;
      fast++;
      return columnsSchemaAccepts(row);
    }),
    { numRuns: 3000, seed: 11 },
  );
  t.true(fast > 300, `fast path taken ${fast} times`);
  // Every column the schema knows is one the fast path checks.
  t.deepEqual([...FAST_PATH_COLUMNS].sort(), columnsSchemaKeys().sort());
});
