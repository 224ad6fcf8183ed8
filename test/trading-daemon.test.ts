import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { CommandClient } from '../src/commands/command-client.js';
import { applyFills } from '../src/domain/pnl.js';
import type { Fill } from '../src/domain/order.js';
import type { SessionView } from '../src/domain/session.js';
import { daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';

const counter = fileURLToPath(new URL('./fixtures/strategies/counter.ts', import.meta.url));

interface OrderRow {
  client_order_id: string;
  status: string;
  filled_qty: number;
}
interface FillRow {
  id: string;
  client_order_id: string;
  session_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  qty: number;
  price: number;
  commission: number;
  at: string;
}

/** What the daemon's SQLite file says about one session, read through a separate read-only connection. */
function book(file: string, sessionId: string) {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    const orders = db.prepare('SELECT client_order_id, status, filled_qty FROM orders WHERE session_id = ? ORDER BY rowid').all(sessionId) as OrderRow[];
    const fills = db.prepare('SELECT * FROM fills WHERE session_id = ? ORDER BY at, rowid').all(sessionId) as FillRow[];
    const atBroker = db.prepare('SELECT client_order_id FROM paper_orders WHERE session_id = ? ORDER BY seq').all(sessionId) as { client_order_id: string }[];
    const brokerFills = db.prepare('SELECT id FROM paper_fills WHERE session_id = ?').all(sessionId) as { id: string }[];
    const positions = db.prepare('SELECT symbol, qty FROM positions WHERE session_id = ? ORDER BY symbol').all(sessionId) as { symbol: string; qty: number }[];
    const runner = db.prepare('SELECT steps, strategy_state FROM runner_state WHERE session_id = ?').get(sessionId) as { steps: number; strategy_state: string } | undefined;
    return { orders, fills, atBroker, brokerFills, positions, runner };
  } finally {
    db.close();
  }
}

// The daemon's SQLite file may not exist yet: a throw means "not yet".
const until = untilWithin(20_000, { pollMs: 50, retryOnError: true });

const isReady = (l: Record<string, unknown>) => l.msg === 'ready';

// stateCommitMs 0 writes the runner state every step; 1000 holds it back, so a restart re-runs up to a
// second of steps from an older state: no order may be lost or placed twice either way.
for (const stateCommitMs of [0, 1000]) {
  test(`a daemon killed mid-trading restarts on the same database without losing or duplicating an order (stateCommitMs ${stateCommitMs})`, async (t) => {
    const redis = await startTestRedis();
    const dir = tempDir('sessiond-trading-daemon-');
    const configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        runners: { enabled: true, poolSize: 2, stepTimeoutMs: 2000, maxRestarts: 2, restartBackoffMs: 100, approvalTtlMs: 60_000, stateCommitMs, batchWindowMs: 2, maxBatchSize: 64, maxCatchUpSteps: 3, defaultBarIntervalMs: 1000 },
        strategies: { modules: [counter] },
      }),
    );
    const env = daemonEnv(redis.url, dir, { SESSIOND_CONFIG: configFile });
    const file = env.SESSIOND_DB!;
    const client = new CommandClient({ redisUrl: redis.url, queueName: env.SESSIOND_QUEUE });
    const daemons: DaemonProcess[] = [];
    const spawn = async () => {
      const d = spawnDaemon(env);
      daemons.push(d);
      await d.waitForLog(isReady, 30_000);
      return d;
    };
    try {
      let d = await spawn();
      t.truthy(d.logs.find((l) => l.msg === 'runners enabled'));
      const feed = { type: 'synthetic', intervalMs: 20 };
      const started = await client.submit<SessionView>('start', {
        id: 'dt-auto',
        kind: 'paper',
        strategy: { id: 'test-counter', params: { every: 2 } },
        symbols: ['AAA'],
        feed,
      });
      t.is(started.status, 'running');
      await client.submit('start', {
        id: 'dt-confirm',
        kind: 'paper',
        strategy: { id: 'test-counter', params: { every: 3 } },
        symbols: ['BBB'],
        feed,
        executionMode: 'confirm',
      });
      await until('orders and fills', () => {
        const b = book(file, 'dt-auto');
        return b.orders.length >= 8 && b.fills.length >= 5;
      });

      d.kill('SIGKILL');
      t.is((await d.exited).signal, 'SIGKILL');
      const before = book(file, 'dt-auto');

      d = await spawn();
      t.is(d.logs.find((l) => l.msg === 'sessions recovered')?.recovered, 2);
      await until('trading again', () => book(file, 'dt-auto').orders.length >= before.orders.length + 8);

      // approve-order through the queue, exactly once per command id.
      const pending = await until('a pending order', () => book(file, 'dt-confirm').orders.find((o) => o.status === 'pending_approval'));
      const approved = await client.submit<{ status: string; clientOrderId: string }>('approve-order', { sessionId: 'dt-confirm', clientOrderId: pending.client_order_id }, { commandId: 'approve-dt' });
      t.like(approved, { clientOrderId: pending.client_order_id, status: 'accepted' });
      const err = await t.throwsAsync(client.submit('approve-order', { sessionId: 'dt-confirm', clientOrderId: 'dt-confirm:nope' }));
      t.like(err, { code: 'VALIDATION_ERROR', message: 'order dt-confirm:nope of session dt-confirm does not exist' });

      // `backtest` runs in the same daemon's pool and records its result.
      const csv = join(dir, 'backtest.csv');
      const rows = Array.from({ length: 60 }, (_, i) => {
        const p = 100 + 10 * Math.sin(i / 4);
        return `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${p},${p + 1},${p - 1},${p + 0.5},100`;
      });
      writeFileSync(csv, ['time,symbol,open,high,low,close,volume', ...rows].join('\n'));
      const bt = await client.submit<{ strategyId: string; steps: number; metrics: { trades: number } }>(
        'backtest',
        { strategyId: 'sma-crossover', data: csv, params: { fast: 2, slow: 5 } },
        { timeoutMs: 20_000 },
      );
      t.like(bt, { strategyId: 'sma-crossover', steps: 60 });
      t.true(bt.metrics.trades > 0);

      await client.submit('pause', { sessionId: 'dt-auto' });
      // Let the last order of the paused session settle (it stays open: no bars while paused).
      const after = book(file, 'dt-auto');

      // Nothing lost: every order and fill from before the kill is still there, unchanged where it was final.
      for (const o of before.orders) {
        const now = after.orders.find((x) => x.client_order_id === o.client_order_id);
        t.truthy(now, `order ${o.client_order_id} lost`);
        if (o.status === 'filled') t.is(now!.status, 'filled');
      }
      for (const f of before.fills) t.deepEqual(after.fills.find((x) => x.id === f.id), f, `fill ${f.id} lost or changed`);
      // Nothing duplicated: one broker order per book order, at most one fill per order, the same fills on both sides.
      const ids = after.orders.map((o) => o.client_order_id);
      t.is(new Set(ids).size, ids.length);
      t.deepEqual(after.atBroker.map((o) => o.client_order_id).sort(), [...ids].sort());
      for (const id of ids) t.true(after.fills.filter((f) => f.client_order_id === id).length <= 1, `order ${id} filled twice`);
      t.deepEqual(after.brokerFills.map((f) => f.id).sort(), after.fills.map((f) => f.id).sort());
      // Signal keys (and so order ids) are bar times: unique bars, no bar stepped twice into a new order.
      t.false(after.orders.some((o) => o.status === 'new'), 'every order acknowledged');
      // Positions are what the fills add up to.
      const fills: Fill[] = after.fills.map((f) => ({ id: f.id, clientOrderId: f.client_order_id, sessionId: f.session_id, symbol: f.symbol, side: f.side, qty: f.qty, price: f.price, commission: f.commission, at: f.at }));
      t.deepEqual(after.positions.map((p) => [p.symbol, p.qty]), applyFills(fills).map((p) => [p.symbol, p.qty]));
      // The strategy continued from its persisted state (its step counter did not start over).
      const stateBefore = JSON.parse(before.runner!.strategy_state) as { steps: number };
      const stateAfter = JSON.parse(after.runner!.strategy_state) as { steps: number };
      t.true(stateAfter.steps > stateBefore.steps + 5, `${stateBefore.steps} -> ${stateAfter.steps}`);
      t.is(stateAfter.steps, after.runner!.steps);

      const stopped = await client.submit<SessionView>('stop', { sessionId: 'dt-confirm' });
      t.is(stopped.status, 'stopped');
      d.kill('SIGTERM');
      t.is((await d.exited).code, 0);
    } finally {
      for (const d of daemons) d.kill('SIGKILL');
      await client.close();
      await redis.stop();
    }
  });
}
