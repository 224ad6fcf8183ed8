export * from './feed.js';
export { parseBarsCsv, parseBarsCsvRows, type CsvBarRow, type ParseBarsCsvOptions } from './csv.js';
export { createSyntheticFeed, seedFromSymbols, type SyntheticFeedOptions } from './synthetic-feed.js';
export { createReplayFeed, type ReplayFeedOptions } from './replay-feed.js';
