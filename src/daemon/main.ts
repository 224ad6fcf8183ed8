import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { startDaemon } from './daemon.js';
import { createTradingWiring } from './trading.js';
import { RedisNotInstalledError } from './redis-server.js';

/** The `sessiond` process: config, logger, daemon, signals. Exit 0 on SIGTERM/SIGINT after draining. */
export async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sessiond: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.log.level);
  let daemon;
  try {
    daemon = await startDaemon(config, logger, { trading: createTradingWiring });
  } catch (err) {
    if (err instanceof RedisNotInstalledError) {
      process.stderr.write(`sessiond: ${err.message}\n`);
      process.exit(1);
    }
    logger.fatal({ err }, 'start failed');
    process.exit(1);
  }
  logger.info({ pid: process.pid }, 'ready');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: draining commands, stopping runners');
    daemon.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
