export * from './config.js';
export * from './daemon.js';
export * from './logger.js';
export * from './redis-server.js';
