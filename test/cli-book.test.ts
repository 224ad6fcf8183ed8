import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import test from 'ava';
import { CommandClient } from '../src/commands/command-client.js';
import { ROOT, daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';
import { untilWithin } from './helpers/until.js';

let redis: RedisServerHandle;
let daemon: DaemonProcess;
let client: CommandClient;
let queue: string;

function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/sessionctl.js'), '--redis', redis.url, '--queue', queue, '--timeout', '30000', ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const until = untilWithin(30_000, { pollMs: 50 });

test.before(async () => {
  redis = await startTestRedis();
  queue = `test-cli-book-${randomUUID()}`;
  daemon = spawnDaemon(daemonEnv(redis.url, tempDir(), { SESSIOND_QUEUE: queue }));
  await daemon.waitForLog((l) => l.msg === 'ready', 60_000);
  client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  await client.submit('start', { kind: 'paper', id: 'c-trade', strategy: { id: 'buy-and-hold', params: { qty: 4 } }, symbols: ['AAPL'], feed: { type: 'synthetic', seed: 9, intervalMs: 50 } });
  await client.submit('start', {
    kind: 'paper',
    id: 'c-confirm',
    strategy: { id: 'buy-and-hold' },
    symbols: ['MSFT'],
    executionMode: 'confirm',
    feed: { type: 'synthetic', seed: 2, intervalMs: 50 },
  });
  await until('c-trade filled and c-confirm holding an order', async () => {
    const a = await client.submit<{ orders: { status: string }[] }>('get-orders', { sessionId: 'c-trade' });
    const b = await client.submit<{ orders: { status: string }[] }>('get-orders', { sessionId: 'c-confirm' });
    return a.orders[0]?.status === 'filled' && b.orders[0]?.status === 'pending_approval' ? true : undefined;
  });
  await client.submit('pause', { sessionId: 'c-trade', reason: 'freeze the marks' });
});

test.after.always(async () => {
  await client?.close();
  daemon?.kill('SIGKILL');
  await daemon?.exited;
  await redis?.stop();
});

test.serial('orders shows client order id, prices, fills and the expiry of a pending approval; --json is the page of the API', async (t) => {
  const table = await ctl('orders', 'c-confirm');
  t.is(table.code, 0, table.stderr);
  const [header, row] = table.stdout.split('\n');
  for (const col of ['ID', 'SYMBOL', 'SIDE', 'QTY', 'TYPE', 'LIMIT', 'STATUS', 'FILLED', 'AVGFILL', 'REASON', 'EXPIRES']) t.true(header!.includes(col), col);
  t.regex(row!, /^c-confirm:MSFT:\d+:buy\s+MSFT\s+buy\s+1\s+market\s+-\s+pending_approval\s+0\s+-\s+-\s+\d{4}-\d\d-\d\dT/);
  t.regex(table.stdout, /1-1 of 1 \(newest first/);

  const json = await ctl('orders', 'c-trade', '--json');
  const page = JSON.parse(json.stdout) as { total: number; orders: { clientOrderId: string; filledQty: number; avgFillPrice: number; status: string }[] };
  t.is(page.total, 1);
  t.is(page.orders[0]!.status, 'filled');
  t.is(page.orders[0]!.filledQty, 4);
  const text = await ctl('orders', 'c-trade');
  t.true(text.stdout.includes(page.orders[0]!.clientOrderId));
  t.true(text.stdout.includes(String(Number(page.orders[0]!.avgFillPrice.toFixed(8)))), 'average fill price without float noise');
  const bad = await ctl('orders', 'c-trade', '--limit', 'zero');
  t.is(bad.code, 2);
});

test.serial('fills, positions, pnl and history print tables, and JSON with --json', async (t) => {
  const fills = JSON.parse((await ctl('fills', 'c-trade', '--json')).stdout) as { fills: { qty: number; price: number; commission: number }[] };
  t.is(fills.fills.length, 1);
  const f = fills.fills[0]!;
  const fillsTable = (await ctl('fills', 'c-trade')).stdout;
  t.regex(fillsTable, /AT\s+ORDER\s+SYMBOL\s+SIDE\s+QTY\s+PRICE\s+COMMISSION/);
  t.true(fillsTable.includes(f.commission.toFixed(2)), 'money with two decimals');

  const positions = (await ctl('positions', 'c-trade')).stdout;
  t.regex(positions, /^AAPL\s+4\s/m);

  const pnl = JSON.parse((await ctl('pnl', 'c-trade', '--json')).stdout) as { sessions: { cash: number; equity: number; realizedPnl: number }[]; totals: { sessions: number; equity: number } };
  t.is(pnl.totals.sessions, 1);
  t.true(Math.abs(pnl.sessions[0]!.cash - (100_000 - f.qty * f.price - f.commission)) < 1e-6);
  const all = await ctl('pnl');
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /^SESSION\s+STATUS\s+REALIZED\s+UNREALIZED\s+EQUITY\s+CASH\s+DRAWDOWN\s+MAXDRAWDOWN\s+FILLS/);
  t.regex(all.stdout, /^c-trade\s+paused\s+-?\d+\.\d\d\s/m);
  t.regex(all.stdout, /^c-confirm\s+running\s/m);
  t.regex(all.stdout, /^TOTAL \(2\)\s+-?\d+\.\d\d/m);

  const history = (await ctl('history', 'c-trade')).stdout;
  t.regex(history, /created -> running\s+START\s+command/);
  t.regex(history, /running -> paused\s+PAUSE\s+command\s+\S+\s+freeze the marks/);
  const missing = await ctl('history', 'nope');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^SESSION_NOT_FOUND: /);
});

test.serial('watch prints transitions and order updates as they happen', async (t) => {
  const child = spawn(process.execPath, [join(ROOT, 'bin/sessionctl.js'), '--redis', redis.url, '--queue', queue, '--json', 'watch', 'c-confirm', '--max', '3'], { cwd: ROOT });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    await until('watch subscribed', async () => (err.includes('watching') ? true : undefined), 60_000);
    const pending = (await client.submit<{ orders: { clientOrderId: string }[] }>('get-orders', { sessionId: 'c-confirm', status: 'pending_approval' })).orders[0]!;
    await client.submit('approve-order', { sessionId: 'c-confirm', clientOrderId: pending.clientOrderId });
    await until('the fill reported', async () => (out.includes('"filled"') ? true : undefined));
    // Another session's transition (c-trade was paused): published, and filtered out by the watch.
    await client.submit('resume', { sessionId: 'c-trade' });
    await client.submit('stop', { sessionId: 'c-confirm', reason: 'watched' });
    t.is(await exited, 0, err);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; status?: string; transition?: { to: string; reason?: string }; sessionId?: string; session?: { id: string } });
    t.true(events.every((e) => (e.sessionId ?? e.session?.id) === 'c-confirm'));
    t.deepEqual(
      events.map((e) => (e.type === 'order' ? `order:${e.status}` : `transition:${e.transition!.to}`)),
      ['order:accepted', 'order:filled', 'transition:stopped'],
    );
  } finally {
    child.kill();
  }
});
