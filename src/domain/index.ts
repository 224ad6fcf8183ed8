export * from './errors.js';
export * from './session.js';
export * from './backtest.js';
