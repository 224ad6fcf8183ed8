/**
 * `npm run bench`: every figure of issue 11 in ONE table, each with its target, the measured value and
 * whether it is met, the raw BullMQ baselines measured in the same run, the main thread's event-loop
 * utilisation, and the load average beside each figure (figures taken at load > 3 are not to be trusted:
 * the machine is shared).
 * Run: npm run bench [-- --quick] [-- --all]
 *   --quick  shorter windows and fewer commands (about 4 minutes);
 *   --all    then every other bench/*.ts in its own process, as before (their own output).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../src/daemon/redis-server.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, all: { type: 'boolean', default: false } } });
const quick = values.quick;
// Read by bench/lifecycle.ts when it loads.
process.env.BENCH_ROUND_TRIPS ??= quick ? '500' : '2000';
process.env.BENCH_COMMANDS ??= '10000';
const { rawRoundTrip, sessiondRoundTrip, rawThroughput, sessiondThroughput, summary } = await import('./lifecycle.js');
const { runnerFigure, spawnToReady } = await import('./scale-figures.js');

interface Row {
  figure: string;
  target: string;
  measured: string;
  met: boolean;
  baseline: string;
  elu: string;
  load: string;
}
const rows: Row[] = [];
const load = () => loadavg()[0]!.toFixed(2);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isNaN(n) ? 'n/a' : `${n.toFixed(1)} ms`);
const add = (row: Row) => {
  rows.push(row);
  console.error(`[${new Date().toISOString()}] ${row.figure}: ${row.measured} (load ${row.load})`);
};

const win = quick ? 5 : 10;
console.error(`issue 11 bench (${quick ? 'quick' : 'full'}), node ${process.version}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

// 1. 10,000 sessions at 1 s bars (demand 10,000 steps/s).
{
  const l = load();
  const f = await runnerFigure(10_000, 1000, quick ? 25 : 30, win);
  add({
    figure: 'full runner, 10,000 sessions, sma 5/20, 1 s bars: steps/s',
    target: '>= 10,000',
    measured: fmt(f.stepsPerSec),
    met: f.stepsPerSec >= 10_000 * 0.99,
    baseline: `demand ${fmt(f.demand)}`,
    elu: f.elu.toFixed(2),
    load: l,
  });
  add({ figure: '  same run: bar-to-order p99', target: '< 100 ms', measured: `${ms(f.p99)} (p50 ${ms(f.p50)}, ${f.orders} orders)`, met: f.p99 < 100, baseline: '', elu: f.elu.toFixed(2), load: l });
}
// 2. 1,000 sessions at 1 s bars.
{
  const l = load();
  const f = await runnerFigure(1000, 1000, 25, win * 2);
  add({ figure: 'full runner, 1,000 sessions, 1 s bars: bar-to-order p99', target: '< 20 ms', measured: `${ms(f.p99)} (p50 ${ms(f.p50)}, ${f.orders} orders, ${fmt(f.stepsPerSec)} steps/s)`, met: f.p99 < 20, baseline: '', elu: f.elu.toFixed(2), load: l });
}
// 3. Saturation: 1,000 sessions on 20 ms bars ask for 50,000 steps/s.
{
  const l = load();
  const f = await runnerFigure(1000, 20, 3, win);
  add({ figure: 'full runner at saturation, sma 5/20 (1,000 sessions, 20 ms bars): steps/s', target: '>= 25,000', measured: fmt(f.stepsPerSec), met: f.stepsPerSec >= 25_000, baseline: `demand ${fmt(f.demand)}`, elu: f.elu.toFixed(2), load: l });
}

const redis = await startRedisServer();
try {
  // 4, 5. The daemon as npm start runs it, on 10,000 running sessions.
  {
    const l = load();
    const f = await spawnToReady(redis.url, 10_000, 5);
    add({ figure: 'spawn to ready, 10,000 running sessions (daemon with runners)', target: '< 2 s', measured: `${(f.readyMs / 1000).toFixed(2)} s (recovery ${fmt(f.recoveryMs)} ms)`, met: f.readyMs < 2000, baseline: '', elu: '', load: l });
    add({ figure: 'RSS per running session at 10,000, whole daemon', target: '<= 30 KB', measured: `${f.rssPerSessionKb.toFixed(1)} KB (RSS ${f.rssMb.toFixed(0)} MB)`, met: f.rssPerSessionKb <= 30, baseline: 'less an empty daemon', elu: '', load: l });
  }
  // 6, 7. Commands: next to raw BullMQ doing a no-op in the same run.
  {
    const l = load();
    const raw = summary(await rawRoundTrip(redis.url));
    const ours = summary((await sessiondRoundTrip(redis.url)).samples);
    const ratio = ours.p50 / raw.p50;
    add({ figure: 'command round trip p50, vs raw BullMQ no-op', target: '<= 1.5x', measured: `${ratio.toFixed(2)}x (${ours.p50.toFixed(3)} ms)`, met: ratio <= 1.5, baseline: `raw p50 ${raw.p50.toFixed(3)} ms`, elu: '', load: l });
  }
  {
    const l = load();
    const rawTp = await rawThroughput(redis.url);
    const ourTp = await sessiondThroughput(redis.url);
    const ratio = ourTp / rawTp;
    add({ figure: `command throughput, ${fmt(Number(process.env.BENCH_COMMANDS))} over 1,000 sessions, vs raw`, target: '>= 0.5x', measured: `${ratio.toFixed(2)}x (${fmt(ourTp)}/s)`, met: ratio >= 0.5, baseline: `raw ${fmt(rawTp)} jobs/s`, elu: '', load: l });
  }
} finally {
  await redis.stop();
}

const head: (keyof Row)[] = ['figure', 'target', 'measured', 'met', 'baseline', 'elu', 'load'];
const titles: Record<keyof Row, string> = { figure: 'figure', target: 'target', measured: 'measured', met: 'met', baseline: 'raw baseline (same run)', elu: 'main ELU', load: 'load avg' };
console.log(`\n| ${head.map((h) => titles[h]).join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${head.map((h) => (h === 'met' ? (r.met ? 'yes' : 'no') : r[h])).join(' | ')} |`);
console.log(`\n(${quick ? 'quick' : 'full'} mode; main ELU: event-loop utilisation of the main thread over the window; figures at load > 3 are not to be trusted)`);

if (values.all) {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const own = new Set(['run-all.ts', 'scale-figures.ts']);
  let failed = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts') && !own.has(x)).sort()) {
    console.log(`\n=== bench/${f}`);
    const r = spawnSync(process.execPath, ['--import=tsx', `${dir}${f}`], { stdio: 'inherit' });
    if (r.status !== 0) failed++;
  }
  process.exitCode = failed ? 1 : 0;
}
process.exit(process.exitCode ?? 0);
