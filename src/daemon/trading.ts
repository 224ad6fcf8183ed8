import type { DaemonHooks, TradingWiring } from './daemon.js';
import { RecordingRunner } from '../runners/recording-runner.js';

/**
 * Builds the trading side of the daemon (runners, brokers, strategies) from config.
 * Until runners land this is the RecordingRunner: sessions change state, nothing trades.
 */
export const createTradingWiring: NonNullable<DaemonHooks['trading']> = async (): Promise<TradingWiring> => ({
  runner: new RecordingRunner(),
  brokers: { has: (id) => id === 'paper' },
  performance: { performanceOf: () => ({ returnPct: 0, maxDrawdownPct: 0, trades: 0 }) },
});
