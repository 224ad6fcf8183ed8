// Runs an entry's main(): its bundle from dist/ when built and current, else its TypeScript source through tsx.
// "Current": dist/BUILD_STAMP (written by `npm run build`, which `prepare` runs at npm install / npm ci)
// is newer than every file under src/, machines/ and workers/. So a checkout where someone edited the
// source after building never runs old code; it only runs slower. SESSIOND_SOURCE=1 forces the source.
// Order when current: dist/<entry>.bundle.cjs (one file with its dependencies, V8 code cache beside it;
// see bin/build.js), else the compiled modules dist/<entry>.js (a build made without esbuild).
// CommonJS, like everything in bin/ (bin/package.json): Node loads a CommonJS entry faster than an ES module.
'use strict';
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const ROOT = join(__dirname, '..');
const STAMP = join(ROOT, 'dist', 'BUILD_STAMP');
const SOURCE_DIRS = ['src', 'machines', 'workers'];

function newestMtime(dir, floor) {
  let newest = floor;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = newestMtime(p, newest);
    else if (e.isFile()) {
      const m = statSync(p).mtimeMs;
      if (m > newest) newest = m;
    }
  }
  return newest;
}

/** True when dist/ holds a build at least as new as every source file. */
function distIsCurrent() {
  if (process.env.SESSIOND_SOURCE === '1' || !existsSync(STAMP)) return false;
  const built = statSync(STAMP).mtimeMs;
  let newest = 0;
  for (const d of SOURCE_DIRS) newest = newestMtime(join(ROOT, d), newest);
  return newest <= built;
}

/** Runs main() of dist/<rel>.bundle.cjs or dist/<rel>.js when current, else of <rel>.ts through tsx. */
async function launch(rel) {
  let entry;
  if (distIsCurrent()) {
    const bundle = join(ROOT, 'dist', `${rel}.bundle.cjs`);
    if (existsSync(bundle) && process.env.SESSIOND_BUNDLE !== '0') {
      entry = require('./bundle-loader.js').loadBundle(bundle);
    } else {
      entry = await import(pathToFileURL(join(ROOT, 'dist', `${rel}.js`)).href);
    }
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    entry = await import(pathToFileURL(join(ROOT, `${rel}.ts`)).href);
  }
  await entry.main();
}

module.exports = { distIsCurrent, launch };
