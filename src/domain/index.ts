export * from './errors.js';
export * from './session.js';
export * from './backtest.js';
export * from './market.js';
export * from './order.js';
export * from './risk.js';
export * from './pnl.js';
