export * from './broker.js';
export * from './broker-registry.js';
export * from './paper-broker.js';
export * from './broker-config.js';
export * from './broker-factory.js';
export * from './venue/venue-broker.js';
export * from './venue/client-order-id.js';
