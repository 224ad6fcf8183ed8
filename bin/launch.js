// Runs an entry's main(): its bundle from dist/ when built and current, else its TypeScript source through tsx.
// "Current": dist/BUILD_STAMP (written by `npm run build`, which `prepare` runs at npm install / npm ci)
// is newer than every file and directory under src/, machines/ and workers/ that the build saw, and they all
// still exist. So a checkout where someone edited the source after building never runs old code; it only runs
// slower. SESSIOND_SOURCE=1 forces the source.
// Order when current: dist/<entry>.bundle.cjs (one file with its dependencies, V8 code cache beside it;
// see bin/build.js), else the compiled modules dist/<entry>.js (a build made without esbuild).
// CommonJS, like everything in bin/ (bin/package.json): Node loads a CommonJS entry faster than an ES module.
'use strict';
const { existsSync, readFileSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const ROOT = join(__dirname, '..');
const STAMP = join(ROOT, 'dist', 'BUILD_STAMP');
const SOURCE_DIRS = ['src', 'machines', 'workers'];

/**
 * The source tree as it is now: every directory (with a trailing /) and file under SOURCE_DIRS, relative to ROOT.
 * bin/build.js stores it in dist/BUILD_STAMP, so a start stats those paths (~2 ms) instead of listing every
 * directory again (~5-10 ms). A directory's mtime moves when a file is added, removed or renamed in it.
 */
function sourceTree() {
  const out = [];
  const walk = (rel) => {
    let entries;
    try {
      entries = readdirSync(join(ROOT, rel), { withFileTypes: true });
    } catch {
      return;
    }
    out.push(`${rel}/`);
    for (const e of entries) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  for (const d of SOURCE_DIRS) walk(d);
  return out;
}

/**
 * True when dist/ holds a build at least as new as the sources: every file and directory the build saw still
 * exists and none changed since the build started (so an edit, a new, a removed or a renamed file all count).
 */
function distIsCurrent() {
  if (process.env.SESSIOND_SOURCE === '1') return false;
  let stamp;
  try {
    stamp = readFileSync(STAMP, 'utf8');
  } catch {
    return false;
  }
  const built = statSync(STAMP).mtimeMs;
  const listed = stamp.split('\n').slice(1).filter((l) => l !== '');
  // A stamp without the tree (a build by an older bin/build.js): the tree as it is now.
  for (const p of listed.length > 0 ? listed : sourceTree()) {
    const st = statSync(join(ROOT, p), { throwIfNoEntry: false });
    if (st === undefined || st.mtimeMs > built) return false;
  }
  return true;
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

module.exports = { distIsCurrent, launch, sourceTree };
