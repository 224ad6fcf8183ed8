#!/usr/bin/env node
// The compiled daemon (built at npm install / npm ci), or its TypeScript source when dist/ is missing or stale.
import { launch } from './launch.js';
await launch('src/daemon/main');
