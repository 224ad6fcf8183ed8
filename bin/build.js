#!/usr/bin/env node
// `npm run build` (and `prepare`, so npm install / npm ci build it): emits src, machines and workers to
// dist/ with tsc (tsconfig.build.json: emit only, no type check, so it runs after npm ci --omit=dev without
// @types; `npm run typecheck` and `npm test` check types), then writes dist/BUILD_STAMP, which bin/launch.js
// compares with the sources' mtimes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const started = new Date();
rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit', cwd: ROOT });
if (r.status !== 0) process.exit(r.status ?? 1);
mkdirSync(join(ROOT, 'dist'), { recursive: true });
// The stamp carries the time the build STARTED: a source saved while tsc ran counts as newer.
writeFileSync(join(ROOT, 'dist', 'BUILD_STAMP'), `${started.toISOString()}\n`);
utimesSync(join(ROOT, 'dist', 'BUILD_STAMP'), started, started);
