export * from './session-manager.js';
export * from './ports.js';
export * from './keyed-queue.js';
export * from './zod-issues.js';
export * from './exactly-once.js';
