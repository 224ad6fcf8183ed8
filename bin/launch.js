// Runs a compiled entry from dist/ when it is built and current, else its TypeScript source through tsx.
// "Current": dist/BUILD_STAMP (written by `npm run build`, which `prepare` runs at npm install / npm ci)
// is newer than every file under src/, machines/ and workers/. So a checkout where someone edited the
// source after building never runs old code; it only runs slower. SESSIOND_SOURCE=1 forces the source.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
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
export function distIsCurrent() {
  if (process.env.SESSIOND_SOURCE === '1' || !existsSync(STAMP)) return false;
  const built = statSync(STAMP).mtimeMs;
  let newest = 0;
  for (const d of SOURCE_DIRS) newest = newestMtime(join(ROOT, d), newest);
  return newest <= built;
}

/** Imports dist/<rel>.js when current, else <rel>.ts through tsx. */
export async function launch(rel) {
  if (distIsCurrent()) {
    await import(new URL(`../dist/${rel}.js`, import.meta.url).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`../${rel}.ts`, import.meta.url).href);
}
