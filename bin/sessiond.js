#!/usr/bin/env node
// The compiled daemon (built at npm install / npm ci), or its TypeScript source when dist/ is missing or stale.
// CommonJS (bin/package.json): Node starts a CommonJS entry ~20 ms sooner than an ES module one.
require('./launch.js').launch('src/daemon/main');
