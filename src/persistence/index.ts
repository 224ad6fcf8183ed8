export * from './database.js';
export * from './ports.js';
export * from './sqlite-session-store.js';
export * from './sqlite-session-repositories.js';
export * from './sqlite-backtest-repository.js';
export * from './order-repository.js';
export * from './sqlite-order-repository.js';
export type { Migration } from './migrations/index.js';
export * from './checkpointer.js';
