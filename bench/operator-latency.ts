/**
 * Issue 10 figures, each the median of 10 runs: `sessionctl show` wall time (target < 300 ms) and daemon spawn
 * to ready with an empty database (target < 500 ms), for the installed commands (the esbuild bundle with V8's
 * code cache that bin/*.js run after npm ci) next to the compiled modules and the TypeScript path (tsx); and how long a replaced strategy worker thread takes
 * (a step after a thread died), compiled worker against the .ts worker.
 * Run: node --import=tsx bench/operator-latency.ts   (builds dist/ first; needs redis-server on PATH)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandClient } from '../src/commands/command-client.js';
import { startRedisServer } from '../src/daemon/redis-server.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RUNS = 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;

function build(): void {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/build.js')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
  console.log(`build (npm run build, also run by prepare at npm ci): ${(performance.now() - t0).toFixed(0)} ms`);
}

/** Spawns bin/sessiond.js and resolves with ms from spawn to its `ready` log line; then stops it. */
function daemonToReady(env: Record<string, string>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ready-'));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(ROOT, 'bin/sessiond.js')], {
      cwd: ROOT,
      env: { ...process.env, SESSIOND_DB: join(dir, 'd.db'), SESSIOND_HTTP_PORT: '0', SESSIOND_REDIS_EMBEDDED: 'false', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    let ms: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (ms === undefined && buf.includes('"msg":"ready"')) {
        ms = performance.now() - t0;
        child.kill('SIGTERM');
      }
    });
    child.on('exit', () => {
      rmSync(dir, { recursive: true, force: true });
      if (ms === undefined) reject(new Error('daemon exited before ready'));
      else resolve(ms);
    });
  });
}

function cliWall(args: string[], env: Record<string, string>): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/sessionctl.js'), ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`sessionctl ${args.join(' ')}: ${r.stderr}`);
  return ms;
}

/** ms for the first step after a thread of a 1-thread pool died: the replacement thread's start. */
async function replacedThread(poolModule: string): Promise<number[]> {
  const { StrategyPool } = (await import(poolModule)) as typeof import('../src/runners/strategy-pool.js');
  const out: number[] = [];
  const pool = new StrategyPool({ size: 1, stepTimeoutMs: 10_000, modulePaths: [join(ROOT, 'bench/fixtures/exiting-strategy.js')] });
  const bar = { symbol: 'X', time: 0, open: 1, high: 1, low: 1, close: 1, volume: 0 };
  const step = (strategyId: string) => pool.evaluate({ sessionId: 's', strategyId, params: {}, state: { bought: {} }, bars: [bar] });
  await step('buy-and-hold');
  for (let i = 0; i < RUNS; i++) {
    await step('bench-exiting').catch(() => undefined);
    const t0 = performance.now();
    await step('buy-and-hold');
    out.push(performance.now() - t0);
  }
  await pool.close();
  return out;
}

/** What bin/*.js can run: the installed bundle (esbuild + V8 code cache), the compiled modules, the source. */
const VARIANTS = [
  ['installed (bundle + code cache)', {}],
  ['compiled modules (dist, SESSIOND_BUNDLE=0)', { SESSIOND_BUNDLE: '0' }],
  ['TypeScript (tsx, SESSIOND_SOURCE=1)', { SESSIOND_SOURCE: '1' }],
] as const;

build();
const redis = await startRedisServer();
try {
  const queue = `bench-ready-${Date.now()}`;
  const base = { REDIS_URL: redis.url, SESSIOND_QUEUE: queue, SESSIOND_HTTP: 'true' };
  for (const [label, extra] of VARIANTS) {
    const readies: number[] = [];
    for (let i = 0; i < RUNS; i++) readies.push(await daemonToReady({ ...base, SESSIOND_QUEUE: `${queue}-${label.length}-${i}`, ...extra }));
    console.log(`daemon spawn -> ready, empty, ${label}: ${fmt(readies)}   target < 500 ms`);
  }

  // One daemon serves the CLI runs.
  const dir = mkdtempSync(join(tmpdir(), 'bench-cli-'));
  const daemon = spawn(process.execPath, [join(ROOT, 'bin/sessiond.js')], {
    cwd: ROOT,
    env: { ...process.env, ...base, SESSIOND_HTTP: 'false', SESSIOND_DB: join(dir, 'd.db'), SESSIOND_REDIS_EMBEDDED: 'false', SESSIOND_RUNNERS: 'false' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  await client.submit('start', { kind: 'paper', id: 'bench-1', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'] }, { timeoutMs: 30_000 });
  await client.close();
  const cliEnv = { REDIS_URL: redis.url };
  for (const [label, extra] of VARIANTS) {
    const walls: number[] = [];
    cliWall(['--queue', queue, 'show', 'bench-1'], { ...cliEnv, ...extra });
    for (let i = 0; i < RUNS; i++) walls.push(cliWall(['--queue', queue, 'show', 'bench-1'], { ...cliEnv, ...extra }));
    console.log(`sessionctl show wall time, ${label}: ${fmt(walls)}   target < 300 ms`);
  }
  const node = [] as number[];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    node.push(performance.now() - t0);
  }
  console.log(`(for scale: node -e 0 on this machine: ${fmt(node)})`);
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  rmSync(dir, { recursive: true, force: true });

  console.log(`replaced worker thread -> next step, compiled worker: ${fmt(await replacedThread(join(ROOT, 'dist/src/runners/strategy-pool.js')))}`);
  console.log(`replaced worker thread -> next step, .ts worker (tsx): ${fmt(await replacedThread('../src/runners/strategy-pool.js'))}`);
} finally {
  await redis.stop();
}
