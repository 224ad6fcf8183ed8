export * from './schemas.js';
export * from './command-consumer.js';
export * from './command-client.js';
export * from './backtest-command.js';
export * from './sequence-gate.js';
