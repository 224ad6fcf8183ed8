export * from './strategy-api.js';
export * from './catalog.js';
export {
  smaCrossover,
  SmaCrossoverParamsSchema,
  type SmaCrossoverParams,
  type SmaCrossoverState,
  type SmaSymbolState,
} from './sma-crossover.js';
export {
  rsiMeanReversion,
  rsiFromAverages,
  RsiMeanReversionParamsSchema,
  type RsiMeanReversionParams,
  type RsiMeanReversionState,
  type RsiSymbolState,
} from './rsi-mean-reversion.js';
export { buyAndHold, BuyAndHoldParamsSchema, type BuyAndHoldParams, type BuyAndHoldState } from './buy-and-hold.js';
