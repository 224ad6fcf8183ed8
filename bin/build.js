#!/usr/bin/env node
// `npm run build` (and `prepare`, so npm install / npm ci build it): emits src, machines and workers to
// dist/ with tsc (tsconfig.build.json: emit only, no type check, so it runs after npm ci --omit=dev without
// @types; `npm run typecheck` and `npm test` check types); then bundles each installed command's entry
// (daemon, sessionctl) with its dependencies into dist/<entry>.bundle.cjs with esbuild, plus V8's code cache
// for it (bin/bundle-loader.js), so a start reads one file and compiles little; then writes dist/BUILD_STAMP
// (build time and the source tree), which bin/launch.js compares with the sources' mtimes.
// Kept out of the bundles: native better-sqlite3, piscina (it finds its worker file beside itself), and the
// venue SDKs (ccxt, Alpaca), imported only when a broker of their type is configured. Strategy worker
// threads run dist/workers (compiled modules), not a bundle.
// CommonJS, like everything in bin/ (bin/package.json).
'use strict';
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { sourceTree } = require('./launch.js');

const ROOT = join(__dirname, '..');
/** The installed commands' entries (bin/sessiond.js, bin/sessionctl.js). */
const ENTRIES = ['src/daemon/main', 'src/cli/sessionctl'];
const EXTERNAL = [
  'better-sqlite3',
  'piscina',
  'ccxt',
  '@alpacahq/alpaca-trade-api',
  // sessionctl's `data download` (and the config loader and zod it needs) is imported only by that command:
  // it stays the compiled module beside the bundle, so every other command loads less.
  './data-download.js',
];

/**
 * V8 drops a script's dynamic-import callback when the script comes from the code cache, so `import()` left in
 * a cached bundle throws "A dynamic import callback was not specified" (seen on Node 20 with the ccxt broker
 * and `data download`). The bundle's `import("<external>")` calls go through the loader's `__bundleImport`
 * instead (bin/bundle-loader.js), a real ES-module import resolved from the bundle's folder. The build fails
 * if an external is imported dynamically some other way.
 */
function routeDynamicImports(file) {
  let text = readFileSync(file, 'utf8');
  for (const spec of EXTERNAL) {
    text = text.split(`import(${JSON.stringify(spec)})`).join(`__bundleImport(${JSON.stringify(spec)})`);
  }
  const left = [...text.matchAll(/\bimport\((["'][^"']+["'])\)/g)].map((m) => m[1]);
  if (left.length > 0) throw new Error(`build: ${file} still has dynamic imports the code cache would break: ${left.join(', ')}`);
  writeFileSync(file, text);
}

/**
 * ioredis adds its ~600 command methods one by one to a class prototype while its module loads. V8 copies a
 * fast-mode prototype's property table on each addition, so that loop alone took 25-40 ms of every start
 * (sessionctl and the daemon). Deleting a property first turns the prototype into dictionary mode, where
 * additions are cheap (V8 makes it fast again when it is first used): same methods, ~1 ms. Bundles only; when
 * the loop is not found (another ioredis), the module is bundled unchanged and the build says so.
 */
const IOREDIS_COMMANDER = /[\\/]ioredis[\\/]built[\\/]utils[\\/]Commander\.js$/;
const IOREDIS_LOOP = 'commands.forEach(function (commandName) {';
const prototypeLoopPlugin = {
  name: 'ioredis-prototype-loop',
  setup(build) {
    build.onLoad({ filter: IOREDIS_COMMANDER }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes(IOREDIS_LOOP)) {
        process.stderr.write(`build: ${args.path} has no command loop to speed up; bundled unchanged\n`);
        return { contents: text, loader: 'js' };
      }
      const prelude = 'Commander.prototype.__sessiondDictionaryMode = 0; delete Commander.prototype.__sessiondDictionaryMode;\n';
      return { contents: text.replace(IOREDIS_LOOP, prelude + IOREDIS_LOOP), loader: 'js' };
    });
  },
};

/** tsc, then the bundles and their code caches, then the stamp. */
async function build() {
  const started = new Date();
  rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit', cwd: ROOT });
  if (r.status !== 0) process.exit(r.status ?? 1);
  mkdirSync(join(ROOT, 'dist'), { recursive: true });

  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch {
    process.stderr.write('build: esbuild is not installed; the commands run the compiled modules (slower to start)\n');
  }
  if (esbuild) {
    for (const entry of ENTRIES) {
      // Beside the entry's compiled module, so paths modules compute from import.meta.url (the page's files,
      // config/default.json, workers/) resolve as they do from dist/src/<dir>/.
      const outfile = join(ROOT, 'dist', `${entry}.bundle.cjs`);
      await esbuild.build({
        entryPoints: [join(ROOT, 'dist', `${entry}.js`)],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        external: EXTERNAL,
        // Whitespace and syntax only: function and class names stay readable in stack traces and logs.
        minifyWhitespace: true,
        minifySyntax: true,
        keepNames: true,
        banner: { js: 'const __importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
        define: { 'import.meta.url': '__importMetaUrl' },
        logLevel: 'warning',
        plugins: [prototypeLoopPlugin],
      });
      routeDynamicImports(outfile);
      const c = spawnSync(
        process.execPath,
        ['-e', `require(${JSON.stringify(join(__dirname, 'bundle-loader.js'))}).writeCodeCache(${JSON.stringify(outfile)});`],
        { stdio: 'inherit', cwd: ROOT },
      );
      if (c.status !== 0) process.stderr.write(`build: no code cache for ${entry} (it still runs, compiling at start)\n`);
    }
  }
  // The stamp carries the time the build STARTED: a source saved while tsc ran counts as newer. Then the source
  // tree the build saw, which bin/launch.js checks at each start.
  writeFileSync(join(ROOT, 'dist', 'BUILD_STAMP'), `${started.toISOString()}\n${sourceTree().join('\n')}\n`);
  utimesSync(join(ROOT, 'dist', 'BUILD_STAMP'), started, started);
}

build().catch((err) => {
  console.error(err);
  process.exit(1);
});
