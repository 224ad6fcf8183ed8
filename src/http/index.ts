export * from './event-bus.js';
export * from './health.js';
export * from './machine-definition.js';
export * from './metrics.js';
export * from './server.js';
