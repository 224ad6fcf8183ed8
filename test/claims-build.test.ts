import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ROOT, daemonEnv, spawnDaemon, tempDir } from './helpers/daemon.js';
import { startTestRedis } from './helpers/redis.js';

// README claim: `npm install` / `npm ci` build what the installed commands run (prepare -> bin/build.js): one
// esbuild bundle per command with V8's code cache, run by bin/sessiond.js and bin/sessionctl.js. Built in a
// copy of the checkout, so the suite's own dist/ is never rebuilt under other test files.

test('the build bundles the daemon and sessionctl with a code cache, and bin/*.js run the bundles', async (t) => {
  const dir = tempDir('sessiond-build-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const p of ['bin', 'src', 'machines', 'workers', 'config', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const build = spawnSync(process.execPath, [join(dir, 'bin/build.js')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  t.is(build.status, 0, build.stderr);
  for (const entry of ['src/daemon/main', 'src/cli/sessionctl']) {
    t.true(existsSync(join(dir, 'dist', `${entry}.bundle.cjs`)), `${entry} bundled`);
    t.true(existsSync(join(dir, 'dist', `${entry}.bundle.cjs.cache`)), `${entry} code cache`);
    // Without the entry's compiled module, only its bundle can run it.
    rmSync(join(dir, 'dist', `${entry}.js`));
  }

  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const env = daemonEnv(redis.url, dir, { SESSIOND_HTTP: 'true', SESSIOND_HTTP_PORT: '0', SESSIOND_RUNNERS: 'false' });
  const d = spawnDaemon(env, { command: [process.execPath, join(dir, 'bin/sessiond.js')] });
  t.teardown(async () => {
    d.kill('SIGKILL');
    await d.exited;
  });
  const ready = await d.waitForLog((l) => l.msg === 'ready', 60_000);
  t.is(ready.recovered, 0);
  const ctl = spawnSync(process.execPath, [join(dir, 'bin/sessionctl.js'), '--redis', redis.url, '--queue', env.SESSIOND_QUEUE!, 'show', 'nope'], { encoding: 'utf8', timeout: 30_000 });
  t.is(ctl.status, 1, ctl.stderr);
  t.regex(ctl.stderr, /^SESSION_NOT_FOUND: /);
  d.kill('SIGTERM');
  t.is((await d.exited).code, 0);

  // import() of an external from the cached bundle (ccxt, loaded when a ccxt broker is configured; sessionctl's
  // data download): V8's code cache drops the dynamic-import callback, so the build routes them through the loader.
  const configFile = join(dir, 'ccxt.json');
  writeFileSync(configFile, JSON.stringify({ brokers: { bn: { type: 'ccxt', exchange: 'binance', apiKeyEnv: 'BN_KEY', secretEnv: 'BN_SECRET', urls: { api: { public: 'http://127.0.0.1:9/api/v3', private: 'http://127.0.0.1:9/api/v3' } } } } }));
  const venueEnv = daemonEnv(redis.url, dir, { SESSIOND_CONFIG: configFile, SESSIOND_DB: join(dir, 'ccxt.db'), SESSIOND_RUNNERS: 'true', BN_KEY: 'build-test-key', BN_SECRET: 'build-test-secret' });
  const v = spawnDaemon(venueEnv, { command: [process.execPath, join(dir, 'bin/sessiond.js')] });
  t.teardown(async () => {
    v.kill('SIGKILL');
    await v.exited;
  });
  await v.waitForLog((l) => l.msg === 'ready', 60_000);
  v.kill('SIGTERM');
  t.is((await v.exited).code, 0, v.stderr());
  const dl = spawnSync(
    process.execPath,
    [join(dir, 'bin/sessionctl.js'), 'data', 'download', '--broker', 'nope', '--symbol', 'X', '--timeframe', '1m', '--from', '2024-01-01T00:00:00Z', '--to', '2024-01-02T00:00:00Z', '--out', join(dir, 'x.csv')],
    { encoding: 'utf8', timeout: 30_000, env: { ...process.env, SESSIOND_CONFIG: configFile, BN_KEY: 'k', BN_SECRET: 's' } },
  );
  t.regex(dl.stderr, /broker nope is not registered/, 'data download ran from the bundle');

  // The build stores the source tree it saw (dist/BUILD_STAMP); a start stats it rather than listing every
  // directory. A file added since the build makes the build stale through its directory's mtime, even when the
  // files carry older mtimes (as cp -p or tar leave them): the commands then run the TypeScript.
  const help = () => spawnSync(process.execPath, [join(dir, 'bin/sessionctl.js'), '--help'], { encoding: 'utf8', timeout: 60_000 }).stdout;
  const built = statSync(join(dir, 'dist', 'BUILD_STAMP')).mtimeMs / 1000;
  const cli = join(dir, 'src/cli/sessionctl.ts');
  writeFileSync(cli, readFileSync(cli, 'utf8').replace('Submit lifecycle commands', 'Edited after the build: submit lifecycle commands'));
  utimesSync(cli, built - 60, built - 60);
  t.regex(help(), /^Submit lifecycle commands/m, 'nothing newer than the build: the bundle runs');
  const added = join(dir, 'src/cli/added-after-build.ts');
  writeFileSync(added, 'export {};\n');
  utimesSync(added, built - 60, built - 60);
  t.regex(help(), /^Edited after the build/m, 'a file added since the build: the TypeScript runs');
});
