// Runs a CommonJS bundle made by bin/build.js through node:vm with V8's code cache (<bundle>.cache, written at
// build time), so a start skips most of parsing and compiling ~3 MB of JavaScript. Node 20 has no code cache
// for ES modules (module.enableCompileCache is Node 22), hence CommonJS bundles. A cache made by another Node
// or V8 version is rejected by V8 and the bundle compiles as usual: slower, never wrong.
'use strict';
const { existsSync, readFileSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, resolve } = require('node:path');
const { pathToFileURL } = require('node:url');
const vm = require('node:vm');

/** The exact text V8 compiles: producing and consuming the cache must see the same source. */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname, __bundleImport) {${source}\n})`;
}

function compile(file, cachedData) {
  return new vm.Script(wrap(readFileSync(file, 'utf8')), {
    filename: file,
    cachedData,
  });
}

function evaluate(script, file) {
  const module = { exports: {} };
  // import() of an external, routed here by bin/build.js: the cached script has no dynamic-import callback.
  const bundleImport = (spec) => import(spec.startsWith('.') ? pathToFileURL(resolve(dirname(file), spec)).href : spec);
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file), bundleImport);
  return module.exports;
}

/** Evaluates the bundle (module top levels only: entries run nothing on import) and returns its exports. */
function loadBundle(file) {
  const cacheFile = `${file}.cache`;
  const cachedData = existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
  return evaluate(compile(file, cachedData), file);
}

/**
 * Build time: evaluates the bundle's module top levels (what every start runs), then stores V8's code for
 * everything compiled so far. Run it in a fresh `node` with no flags, as the installed commands run.
 */
function writeCodeCache(file) {
  const script = compile(file, undefined);
  evaluate(script, file);
  writeFileSync(`${file}.cache`, script.createCachedData());
}

module.exports = { loadBundle, writeCodeCache };
