export * from './feed.js';
export { BarsCsvParser, parseBarsCsv, parseBarsCsvRows, type CsvBarRow, type ParseBarsCsvOptions } from './csv.js';
export { BarFiles, DEFAULT_BAR_FILES_OPTIONS, type BarFilesOptions, type BarTable } from './bar-files.js';
export { createSyntheticFeed, seedFromSymbols, type SyntheticFeedOptions } from './synthetic-feed.js';
export { createReplayFeed, type ReplayFeedOptions } from './replay-feed.js';
