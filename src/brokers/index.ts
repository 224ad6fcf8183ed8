export * from './broker.js';
export * from './broker-registry.js';
export * from './paper-broker.js';
