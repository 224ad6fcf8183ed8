// The runners' public part. The worker entry (workers/strategy-worker.ts) stays out of every barrel.
export * from './strategy-pool.js';
export * from './runner-service.js';
export { clientOrderIdOf, type OrderEvent } from './order-router.js';
export * from './backtest-runner.js';
export { RecordingRunner, type RunnerCall } from './recording-runner.js';
