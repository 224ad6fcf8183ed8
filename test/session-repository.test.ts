import test from 'ava';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Session } from '../src/domain/session.js';
import { migrate, openDatabase, schemaVersion } from '../src/persistence/database.js';
import { MIGRATIONS } from '../src/persistence/migrations/index.js';
import { SqliteSessionStore } from '../src/persistence/sqlite-session-store.js';
import { SqliteLiveTradingSessionRepository, SqlitePaperTradingSessionRepository } from '../src/persistence/sqlite-session-repositories.js';
import { tempDir } from './helpers/daemon.js';

function session(id: string, status: Session['status'], extra: Partial<Session> = {}): Session {
  return {
    id,
    kind: 'paper',
    status,
    strategy: { id: 'sma-crossover', name: 'SMA', params: { fast: 5, slow: 20 } },
    brokerId: 'paper',
    accountId: 'acct-1',
    symbols: ['AAPL', 'MSFT'],
    executionMode: 'confirm',
    riskControls: { maxOrderQty: 10, maxDailyLoss: 500 },
    feed: { type: 'synthetic', seed: 7, intervalMs: 1000 },
    flattenOnStop: true,
    positions: { AAPL: { qty: 5, avgPrice: 101.5 } },
    stopReason: status === 'stopped' ? 'operator' : undefined,
    createdAt: '2026-01-01T00:00:00.000Z',
    startedAt: status === 'created' ? undefined : '2026-01-01T00:00:01.000Z',
    stoppedAt: status === 'stopped' ? '2026-01-01T00:00:02.000Z' : undefined,
    updatedAt: '2026-01-01T00:00:02.000Z',
    ...extra,
  };
}

function open() {
  const file = join(tempDir(), 'repo.db');
  const db = openDatabase(file);
  const store = new SqliteSessionStore(db);
  return { file, db, store, paper: new SqlitePaperTradingSessionRepository(store), live: new SqliteLiveTradingSessionRepository(store) };
}

test('save persists a session and getById returns it with all fields', async (t) => {
  const { db, paper, file } = open();
  const s = session('abc-123', 'running');
  await paper.save(s);
  db.close();
  // A fresh connection: the row really is on disk.
  const again = new SqlitePaperTradingSessionRepository(new SqliteSessionStore(openDatabase(file)));
  const loaded = await again.getById('abc-123');
  const { stopReason: _r, stoppedAt: _s, ...expected } = s;
  t.deepEqual(loaded, expected as Session);
  t.deepEqual(loaded?.positions, { AAPL: { qty: 5, avgPrice: 101.5 } });
  t.deepEqual(loaded?.feed, { type: 'synthetic', seed: 7, intervalMs: 1000 });
  t.is(await again.getById('missing'), null);
});

test('getActive returns only the running sessions of two running and one stopped', async (t) => {
  const { paper } = open();
  await paper.save(session('r1', 'running'));
  await paper.save(session('r2', 'running'));
  await paper.save(session('s1', 'stopped'));
  t.deepEqual((await paper.getActive()).map((s) => s.id).sort(), ['r1', 'r2']);
  t.is((await paper.getAll()).length, 3);
});

test('getActive includes paused sessions and excludes created ones', async (t) => {
  const { paper } = open();
  await paper.save(session('p', 'paused'));
  await paper.save(session('c', 'created'));
  t.deepEqual((await paper.getActive()).map((s) => s.id), ['p']);
});

test('delete removes a stopped session from the database', async (t) => {
  const { paper, db } = open();
  await paper.save(session('gone', 'stopped'));
  t.true(await paper.delete('gone'));
  t.is(await paper.getById('gone'), null);
  t.is((db.prepare('SELECT COUNT(*) AS n FROM sessions').get() as { n: number }).n, 0);
  t.false(await paper.delete('gone'));
});

test('paper and live repositories each see only their own kind', async (t) => {
  const { paper, live } = open();
  await paper.save(session('p1', 'running'));
  await live.save(session('l1', 'running', { kind: 'live' }));
  t.deepEqual((await paper.getAll()).map((s) => s.id), ['p1']);
  t.deepEqual((await live.getAll()).map((s) => s.id), ['l1']);
  t.is(await paper.getById('l1'), null);
  t.false(await paper.delete('l1'));
  await t.throwsAsync(paper.save(session('l2', 'running', { kind: 'live' })), { message: /holds paper sessions/ });
});

test('migrations set user_version and are not re-run', (t) => {
  const file = join(tempDir(), 'm.db');
  const db = openDatabase(file);
  t.is(schemaVersion(db), Math.max(...MIGRATIONS.map((m) => m.version)));
  db.close();
  const again = openDatabase(file); // would throw "table sessions already exists" if re-run
  t.is(schemaVersion(again), Math.max(...MIGRATIONS.map((m) => m.version)));
  t.is(again.pragma('journal_mode', { simple: true }), 'wal');
});

test('migration 12 makes commands a rowid table and keeps every command as it was', (t) => {
  const file = join(tempDir(), 'm12.db');
  const db = new BetterSqlite3(file);
  migrate(db, MIGRATIONS.filter((m) => m.version < 12));
  const insert = db.prepare('INSERT INTO commands (id, name, session_id, outcome, result, error_code, error_message, error_details, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  insert.run('c-ok', 'pause', 's1', 'ok', JSON.stringify({ session: { id: 's1', x: 'y'.repeat(2000) } }), null, null, null, '2026-12-02T00:00:00.000Z');
  insert.run('c-err', 'resume', null, 'error', null, 'INVALID_TRANSITION', 'no', '{"a":1}', '2026-12-02T00:00:01.000Z');
  const before = db.prepare('SELECT * FROM commands ORDER BY id').all();
  t.throws(() => db.prepare('SELECT rowid FROM commands').all(), { any: true, message: /no such column: rowid/ }, 'WITHOUT ROWID before');
  migrate(db, MIGRATIONS);
  t.deepEqual(db.prepare('SELECT * FROM commands ORDER BY id').all(), before);
  t.is(db.prepare('SELECT rowid FROM commands').all().length, 2);
  t.throws(() => insert.run('c-ok', 'pause', 's1', 'ok', null, null, null, null, '2026-12-02T00:00:02.000Z'), { any: true, message: /UNIQUE constraint failed: commands.id/ });
  db.close();
});

test('a failing commit leaves neither the session row, the history row nor the command record', (t) => {
  const { store, db } = open();
  const s = session('atomic', 'running');
  store.commit({ create: true, session: s, snapshot: { value: 'running' }, transition: { sessionId: 'atomic', from: null, to: 'running', event: 'START', commandId: 'c1', source: 'command', at: s.updatedAt } });
  // Same command id again: the history row's unique index refuses it, so the whole transaction rolls back.
  const changed = { ...s, status: 'paused' as const };
  t.throws(
    () =>
      store.commit({
      session: changed,
      snapshot: { value: 'paused' },
      transition: { sessionId: 'atomic', from: 'running', to: 'paused', event: 'START', commandId: 'c1', source: 'command', at: s.updatedAt },
      command: { id: 'c1', name: 'pause', outcome: 'ok', appliedAt: s.updatedAt },
      }),
    { any: true, message: /UNIQUE constraint failed/ },
  );
  t.is(store.get('atomic')!.session.status, 'running');
  t.deepEqual(store.get('atomic')!.snapshot, { value: 'running' });
  t.is(store.history('atomic').length, 1);
  t.is((db.prepare('SELECT COUNT(*) AS n FROM commands').get() as { n: number }).n, 0);
});

test('a corrupt row is reported as INTERNAL naming the session, not silently defaulted', (t) => {
  const { store, file } = open();
  store.upsert(session('bad', 'running'));
  const raw = new BetterSqlite3(file);
  raw.prepare("UPDATE sessions SET symbols = '{not json' WHERE id = 'bad'").run();
  raw.close();
  const err = t.throws(() => store.get('bad'));
  t.is((err as { code?: string }).code, 'INTERNAL');
  t.regex(err!.message, /symbols of bad/);
});

test('listRecoverable (one JSON text per row, built by SQLite) returns exactly what get returns, row by row', (t) => {
  const { store } = open();
  store.upsert(session('a', 'running'), { status: 'active', value: 'running', context: { sessionId: 'a', note: 'é ✓ "q" \\ \u2028' } });
  store.upsert(session('b', 'paused', { feed: undefined, riskControls: {}, positions: {}, error: 'x\ny', flattenOnStop: false }), null);
  store.upsert(session('c', 'created', { strategy: { id: 'sma-crossover', params: { w: [0.1, 1e-7, -1.5e300, 123456789.123456789], deep: { s: 'ü' } } }, symbols: ['BTC/USD', 'A.B'] }), { value: 'created' });
  store.upsert(session('d', 'stopped'), { value: 'stopped' });
  const recovered = store.listRecoverable();
  t.deepEqual(recovered.map((r) => r.session.id), ['a', 'b', 'c']);
  for (const r of recovered) t.deepEqual(r, store.get(r.session.id));
  t.is(recovered[2]!.session.feed?.type, 'synthetic');
  t.is(recovered[1]!.snapshot, null);
});

test('listRecoverable reports a row whose JSON column is corrupt as INTERNAL naming the session and the column', (t) => {
  const { store, file } = open();
  store.upsert(session('good', 'running'), { value: 'running' });
  store.upsert(session('bad', 'running'), { value: 'running' });
  const raw = new BetterSqlite3(file);
  // JSON5, which SQLite's json() would accept and JSON.parse does not.
  raw.prepare("UPDATE sessions SET risk_controls = '{maxOrderQty: 1}' WHERE id = 'bad'").run();
  raw.close();
  const err = t.throws(() => store.listRecoverable());
  t.is((err as { code?: string }).code, 'INTERNAL');
  t.regex(err!.message, /risk_controls of bad/);
  const raw2 = new BetterSqlite3(file);
  raw2.prepare("UPDATE sessions SET risk_controls = '{}', snapshot = '{not json' WHERE id = 'bad'").run();
  raw2.close();
  t.throws(() => store.listRecoverable(), { message: /snapshot of bad/ });
  // The row's strategy is still checked for its shape (its params against the strategy's schema when a runner is built).
  const raw3 = new BetterSqlite3(file);
  raw3.prepare(`UPDATE sessions SET snapshot = '{}', strategy = '{"id":"sma-crossover","params":[5,20]}' WHERE id = 'bad'`).run();
  raw3.close();
  t.throws(() => store.listRecoverable(), { message: /^session row bad is invalid: strategy\.params/ });
  t.throws(() => store.get('bad'), { message: /^session row bad is invalid: strategy\.params/ });
});
