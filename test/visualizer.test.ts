import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { chromium, type Browser } from 'playwright-core';
import { CommandClient } from '../src/commands/command-client.js';
import { ROOT, daemonEnv, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon.js';
import { startTestRedis, type RedisServerHandle } from './helpers/redis.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = join(ROOT, 'test-results', 'visualizer.png');

let redis: RedisServerHandle | undefined;
let daemon: DaemonProcess | undefined;
let client: CommandClient | undefined;
let browser: Browser | undefined;

test.after.always(async () => {
  await browser?.close().catch(() => undefined);
  await client?.close();
  daemon?.kill('SIGTERM');
  await daemon?.exited;
  await redis?.stop();
});

function sessionctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/sessionctl.js'), ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('the visualizer shows a session live: running, then paused after a sessionctl pause, without a reload', async (t) => {
  // CI installs Chromium: its absence is a broken environment, not a reason to skip.
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the visualizer test`);
    return;
  }
  redis = await startTestRedis();
  const queue = `test-visualizer-${randomUUID()}`;
  daemon = spawnDaemon(daemonEnv(redis.url, tempDir(), { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0', SESSIOND_QUEUE: queue }));
  const port = (await daemon.waitForLog((l) => l.msg === 'http listening')).port as number;
  const origin = `http://127.0.0.1:${port}`;
  client = new CommandClient({ redisUrl: redis.url, queueName: queue });
  await client.submit('start', { kind: 'paper', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'], id: 'viz-1' });
  await client.submit('start', { kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['MSFT'], id: 'viz-2' });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20_000 });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });

  await page.goto(`${origin}/#viz-1`);
  await page.waitForSelector('#current-state[data-state="running"]', { timeout: 10_000 });
  t.is(await page.textContent('#selected-id'), 'viz-1');
  // The chart is drawn from the machine definition: every state is a node, the current one highlighted.
  const nodes = await page.$$eval('#chart svg g.state', (gs) => gs.map((g) => g.getAttribute('data-state')));
  t.deepEqual([...nodes].sort(), ['created', 'paused', 'running', 'stopped']);
  t.deepEqual(await page.$$eval('#chart svg g.state.current', (gs) => gs.map((g) => g.getAttribute('data-state'))), ['running']);
  t.is(await page.textContent('#sessions tr[data-session-id="viz-1"] .status'), 'running');
  t.is(await page.textContent('#sessions tr[data-session-id="viz-2"] .status'), 'running');
  const edgeEvents = await page.$$eval('#chart svg g.edge', (gs) => gs.map((g) => g.getAttribute('data-events')).join(' '));
  for (const e of ['START', 'PAUSE', 'RESUME', 'STOP']) t.true(edgeEvents.includes(e), e);
  await page.waitForSelector('#live.on');

  // A marker on window survives only if the page is not reloaded.
  await page.evaluate(() => ((window as unknown as { __noReload: number }).__noReload = 42));

  const ctl = await sessionctl(['--redis', redis.url, '--queue', queue, 'pause', 'viz-1', '--reason', 'lunch break']);
  t.is(ctl.code, 0, ctl.stderr);
  const t0 = Date.now();
  await page.waitForSelector('#current-state[data-state="paused"]', { timeout: 5000 });
  const ms = Date.now() - t0;
  t.true(ms < 1000, `the page showed the pause ${ms} ms after sessionctl returned`);
  t.deepEqual(await page.$$eval('#chart svg g.state.current', (gs) => gs.map((g) => g.getAttribute('data-state'))), ['paused']);
  t.is(await page.textContent('#sessions tr[data-session-id="viz-1"] .status'), 'paused');
  t.is(await page.textContent('#sessions tr[data-session-id="viz-2"] .status'), 'running');
  t.is(await page.evaluate(() => (window as unknown as { __noReload?: number }).__noReload), 42, 'the page was not reloaded');

  // The newest history row is the pause: who, which command, why.
  const newest = await page.$$eval('#history tbody tr:first-child td', (tds) => tds.map((td) => td.textContent));
  t.is(newest[1], 'running → paused');
  t.is(newest[2], 'PAUSE');
  t.is(newest[3], 'command');
  t.truthy(newest[4]);
  t.is(newest[5], 'lunch break');
  t.truthy(await page.$('#chart svg g.edge.last[data-from="running"][data-to="paused"]'));

  mkdirSync(join(ROOT, 'test-results'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.true(statSync(SCREENSHOT).size > 1000);

  // Everything came from the daemon: no CDN, nothing external.
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:'));
  t.deepEqual(foreign, []);
  t.deepEqual(errors, []);
});
