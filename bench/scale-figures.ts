/**
 * Issue 11 figures of the full runner and the daemon at scale, measured the way the daemon runs:
 * config/default.json's runners section (stateCommitMs included), a real SQLite file, the real pool.
 * Imported by bench/run-all.ts, which prints them in one table.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Config } from '../src/daemon/config.js';
import { spawnSync } from 'node:child_process';
import { ROOT, daemonEnv, spawnDaemon, tempDir } from '../test/helpers/daemon.js';
import { buildTradingRig, type TradingRig } from '../test/helpers/trading.js';
import { startCheckpointer } from '../src/persistence/checkpointer.js';
import { pct } from './percentile.js';

const DEFAULT_RUNNERS = (JSON.parse(readFileSync(new URL('../config/default.json', import.meta.url), 'utf8')) as { runners: Config['runners'] }).runners;
/** sma-crossover at its defaults (fast 5, slow 20): about one order every 20 steps per session. */
export const SMA = { id: 'sma-crossover', params: { fast: 5, slow: 20, qty: 1 } };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RunnerFigure {
  sessions: number;
  intervalMs: number;
  demand: number;
  stepsPerSec: number;
  orders: number;
  p50: number;
  p99: number;
  /** Main-thread event-loop utilisation over the window (performance.eventLoopUtilization). */
  elu: number;
  failed: number;
}

async function rig(latencies: number[]): Promise<{ r: TradingRig; dir: string }> {
  const dir = tempDir('sessiond-bench-scale-');
  const r = await buildTradingRig({
    file: join(dir, 'sessiond.db'),
    runners: { ...DEFAULT_RUNNERS },
    runnerOptions: {
      onOrder: (e) => {
        if (e.latencyMs !== undefined) latencies.push(e.latencyMs);
      },
    },
    recover: false,
  });
  return { r, dir };
}

async function startSessions(r: TradingRig, n: number, intervalMs: number, prefix = 'b'): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      // One symbol per session: each session has its own market.
      r.manager.startSession({ id: `${prefix}-${i}`, kind: 'paper', strategy: SMA, symbols: [`S${i}`], feed: { type: 'synthetic', intervalMs, volatility: 0.01 } }),
    ),
  );
}

/**
 * The full runner (feed -> paper broker -> pool -> risk -> orders -> SQLite) with `sessions` sessions on
 * `intervalMs` bars: steps/s, bar-to-order latency and main-thread utilisation over a window after warm-up.
 */
export async function runnerFigure(sessions: number, intervalMs: number, warmupS: number, windowS: number): Promise<RunnerFigure> {
  const latencies: number[] = [];
  const { r, dir } = await rig(latencies);
  // As the daemon runs (Daemon.startBackground): WAL checkpoints in their own thread, not in the main thread's commits.
  const checkpointer = startCheckpointer(r.db);
  try {
    await startSessions(r, sessions, intervalMs);
    await sleep(warmupS * 1000);
    const s0 = r.services.runners.stats();
    const l0 = latencies.length;
    const e0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    await sleep(windowS * 1000);
    const elu = performance.eventLoopUtilization(e0).utilization;
    const ms = performance.now() - t0;
    const s1 = r.services.runners.stats();
    const lat = latencies.slice(l0);
    return {
      sessions,
      intervalMs,
      demand: (sessions * 1000) / intervalMs,
      stepsPerSec: (s1.steps - s0.steps) / (ms / 1000),
      orders: lat.length,
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      elu,
      failed: s1.failedSteps - s0.failedSteps,
    };
  } finally {
    await checkpointer?.close();
    await r.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export interface SpawnFigure {
  sessions: number;
  readyMs: number;
  recoveryMs: number;
  /** Whole daemon RSS a few seconds after ready, less an empty daemon's, per running session. */
  rssPerSessionKb: number;
  rssMb: number;
}

/** A daemon as `npm start` runs it (runners on, config/default.json) on a file with `sessions` running sessions. */
export async function spawnToReady(redisUrl: string, sessions: number, settleS: number): Promise<SpawnFigure> {
  // The installed command, as `npm start` runs it (bin/sessiond.js: the bundle that prepare builds).
  const build = spawnSync(process.execPath, [join(ROOT, 'bin/build.js')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
  const measure = async (dir: string) => {
    const t0 = performance.now();
    const d = spawnDaemon(daemonEnv(redisUrl, dir, { SESSIOND_RUNNERS: 'true', SESSIOND_HTTP: 'false' }), { command: [process.execPath, join(ROOT, 'bin/sessiond.js')] });
    try {
      await d.waitForLog((l) => l.msg === 'ready', 120_000);
      const readyMs = performance.now() - t0;
      const recovered = d.logs.find((l) => l.msg === 'sessions recovered')!;
      await sleep(settleS * 1000);
      return { readyMs, recoveryMs: Number(recovered.ms), recovered: Number(recovered.recovered), rss: rssKb(d.child.pid!) };
    } finally {
      d.kill('SIGTERM');
      await d.exited;
    }
  };
  const emptyDir = tempDir('sessiond-bench-empty-');
  const empty = await measure(emptyDir);
  // The sessions are started and run a little in-process, then the daemon starts on their file.
  const dir = tempDir('sessiond-bench-spawn-');
  const r = await buildTradingRig({ file: join(dir, 'sessiond.db'), runners: { ...DEFAULT_RUNNERS }, recover: false });
  await startSessions(r, sessions, 1000, 'r');
  await sleep(3000);
  await r.close();
  const full = await measure(dir);
  if (full.recovered !== sessions) throw new Error(`recovered ${full.recovered} of ${sessions}`);
  rmSync(dir, { recursive: true, force: true });
  rmSync(emptyDir, { recursive: true, force: true });
  return { sessions, readyMs: full.readyMs, recoveryMs: full.recoveryMs, rssPerSessionKb: (full.rss - empty.rss) / sessions, rssMb: full.rss / 1024 };
}
