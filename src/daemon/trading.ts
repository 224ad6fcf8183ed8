import { z } from 'zod';
import { BrokerRegistry } from '../brokers/broker-registry.js';
import { PaperBroker } from '../brokers/paper-broker.js';
import { createVenueBrokers } from '../brokers/broker-factory.js';
import type { VenueBroker } from '../brokers/venue/venue-broker.js';
import { createBacktestHandler } from '../commands/backtest-command.js';
import type { CommandHandler } from '../commands/command-consumer.js';
import { InternalError, ValidationError } from '../domain/errors.js';
import { IdSchema } from '../domain/id-schema.js';
import { BarFiles } from '../market-data/bar-files.js';
import type { StrategyRef } from '../domain/session.js';
import type { Db } from '../persistence/database.js';
import type { CommandLog } from '../persistence/ports.js';
import { SqliteOrderRepository } from '../persistence/sqlite-order-repository.js';
import { SqliteRunnerStateRepository } from '../persistence/sqlite-runner-state-repository.js';
import { SqliteCommandLog, type SqliteSessionStore } from '../persistence/sqlite-session-store.js';
import { RecordingRunner } from '../runners/recording-runner.js';
import { RunnerService, type RunnerLogger, type RunnerServiceOptions } from '../runners/runner-service.js';
import type { StrategyDirectory } from '../sessions/ports.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { exactlyOnce } from '../sessions/exactly-once.js';
import { zodIssues } from '../sessions/zod-issues.js';
import { StrategyCatalog } from '../strategies/catalog.js';
import type { Config } from './config.js';
import type { DaemonHooks, TradingWiring } from './daemon.js';
import { DeferredStrategyPool } from './deferred-pool.js';

export type { RunnerMetrics } from './daemon.js';

/** `approve-order` / `reject-order` job data. */
export const OrderDecisionSchema = z
  .object({
    sessionId: IdSchema,
    clientOrderId: z.string().min(1).max(512),
    reason: z.string().max(1000).optional(),
  })
  .strict();
export type OrderDecision = z.output<typeof OrderDecisionSchema>;

/** Everything the trading side is made of, for callers that want the parts (tests, benchmarks, the backtest command). */
export interface TradingServices {
  catalog: StrategyCatalog;
  /** The StrategyPool (created at once, or on `pool.start()` / the first step with `deferPool`). */
  pool: DeferredStrategyPool;
  paper: PaperBroker;
  brokers: BrokerRegistry;
  orders: SqliteOrderRepository;
  runnerStates: SqliteRunnerStateRepository;
  runners: RunnerService;
  strategies: StrategyDirectory;
  /** The live venue brokers from config.brokers. */
  venues: VenueBroker[];
  /** The bar files commands may name (replay feeds, backtests): config.marketData. */
  barFiles: BarFiles;
  /** Closes the runners, the pool and the broker (not the database). Idempotent. */
  close(): Promise<void>;
}

export interface CreateTradingServicesOptions {
  db: Db;
  store: Pick<SqliteSessionStore, 'get' | 'updatePositions'>;
  /** Without `marketData`, bar files are read from ./data/bars with the default size limit. */
  config: Pick<Config, 'runners' | 'strategies' | 'paperBroker'> & Partial<Pick<Config, 'marketData' | 'brokers' | 'reconcile'>>;
  /** Where venue credentials are read from. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  logger?: RunnerLogger | undefined;
  /**
   * Create the pool's threads only on `services.pool.start()` or the first step (the daemon starts them right
   * after READY). @defaultValue false: created before this resolves
   */
  deferPool?: boolean;
  /** Overrides of the runner service's options (tests, benchmarks). */
  runnerOptions?: Partial<Omit<RunnerServiceOptions, 'sessions' | 'pool' | 'strategies' | 'brokers' | 'orders' | 'runnerStates'>>;
}

/**
 * Builds the strategy catalog (built-ins + config.strategies.modules), the shared StrategyPool
 * (config.runners.poolSize threads), the paper broker, the repositories and the RunnerService.
 * The caller attaches the SessionManager: `services.runners.attach(manager)`.
 */
export async function createTradingServices(options: CreateTradingServicesOptions): Promise<TradingServices> {
  const { db, store, config, logger } = options;
  const catalog = new StrategyCatalog({ modulePaths: [...config.strategies.modules] });
  await catalog.load();
  const pool = new DeferredStrategyPool({
    size: config.runners.poolSize,
    stepTimeoutMs: config.runners.stepTimeoutMs,
    modulePaths: [...config.strategies.modules],
    onWorkerError: (err) => logger?.warn({ err: err.message }, 'strategy worker error outside a step'),
  });
  if (options.deferPool !== true) await pool.start();
  const paper = new PaperBroker(db, { ...config.paperBroker });
  const brokers = new BrokerRegistry().register(paper);
  // Live venues from config.brokers (credentials from the environment; never logged).
  const venues: VenueBroker[] = await createVenueBrokers(config.brokers ?? {}, db, { env: options.env ?? process.env, logger });
  for (const v of venues) brokers.register(v);
  const orders = new SqliteOrderRepository(db);
  const runnerStates = new SqliteRunnerStateRepository(db);
  const barFiles = new BarFiles(config.marketData === undefined ? {} : { dirs: config.marketData.dirs, maxFileBytes: config.marketData.maxFileBytes });
  const runners = new RunnerService({
    sessions: store,
    pool,
    strategies: catalog,
    brokers,
    orders,
    runnerStates,
    maxRestarts: config.runners.maxRestarts,
    restartBackoffMs: config.runners.restartBackoffMs,
    approvalTtlMs: config.runners.approvalTtlMs,
    stateCommitMs: config.runners.stateCommitMs,
    batchWindowMs: config.runners.batchWindowMs,
    maxBatchSize: config.runners.maxBatchSize,
    maxCatchUpSteps: config.runners.maxCatchUpSteps,
    defaultBarIntervalMs: config.runners.defaultBarIntervalMs,
    initialEquity: config.paperBroker.initialCash,
    barFiles,
    logger,
    ...(config.reconcile !== undefined ? { reconcileIntervalMs: config.reconcile.intervalMs, unknownTimeoutMs: config.reconcile.unknownTimeoutMs } : {}),
    ...options.runnerOptions,
  });
  let closing: Promise<void> | undefined;
  return {
    catalog,
    pool,
    paper,
    brokers,
    orders,
    runnerStates,
    runners,
    strategies: strategyDirectory(catalog),
    venues,
    barFiles,
    close() {
      closing ??= (async () => {
        await runners.close();
        await pool.close();
        await paper.close();
        for (const v of venues) await v.close();
      })();
      return closing;
    },
  };
}

/** The manager's StrategyDirectory over a catalog: known id, params validated with defaults applied. */
export function strategyDirectory(catalog: StrategyCatalog): StrategyDirectory {
  return {
    resolve(ref: StrategyRef): StrategyRef {
      const resolved = catalog.resolve(ref.id, ref.params);
      return { id: resolved.id, name: ref.name ?? resolved.name, params: resolved.params };
    },
  };
}

/**
 * `approve-order` and `reject-order` ({ sessionId, clientOrderId, reason? }): exactly once per command id
 * (a redelivered job returns its first outcome from the command log). Success returns the order.
 */
export function orderCommandHandlers(runners: RunnerService, commands: CommandLog, now: () => Date = () => new Date()): Record<string, CommandHandler> {
  const handler =
    (name: string, apply: (d: OrderDecision) => Promise<unknown>): CommandHandler =>
    (data, { commandId }) => {
      const parsed = OrderDecisionSchema.safeParse(data);
      const sessionId = parsed.success ? parsed.data.sessionId : undefined;
      return exactlyOnce(commands, { id: commandId, name, sessionId }, now, async () => {
        if (!parsed.success) throw new ValidationError(`invalid ${name} job: ${zodIssues(parsed.error)}`);
        return apply(parsed.data);
      });
    };
  return {
    'approve-order': handler('approve-order', (d) => runners.approveOrder(d.sessionId, d.clientOrderId)),
    'reject-order': handler('reject-order', (d) => runners.rejectOrder(d.sessionId, d.clientOrderId, d.reason)),
  };
}

/**
 * Builds the trading side of the daemon from config: strategies, the worker pool, the paper broker and the
 * runners, plus the commands they answer: `approve-order`, `reject-order` and `backtest` (which runs in the
 * same pool). With `runners.enabled: false` sessions change state and nothing trades (RecordingRunner).
 */
export const createTradingWiring: NonNullable<DaemonHooks['trading']> = async ({ config, db, logger, store, metrics, storage }): Promise<TradingWiring> => {
  if (!config.runners.enabled) {
    logger.info('runners disabled (runners.enabled=false): sessions change state, nothing trades');
    return {
      runner: new RecordingRunner(),
      brokers: { has: (id) => id === 'paper' },
      // No runner ever places an order: a zero return and drawdown is the truth.
      performance: { performanceOf: () => ({ returnPct: 0, maxDrawdownPct: 0, trades: 0 }) },
    };
  }
  const services = await createTradingServices({
    db,
    store,
    config,
    logger,
    deferPool: true,
    runnerOptions: {
      storage,
      onStep: metrics === undefined ? undefined : (e) => (e.ok ? metrics.runnerStep(e.sessionId) : metrics.runnerFailure(e.failure ?? 'error')),
      onOrder:
        metrics === undefined
          ? undefined
          : (e) => {
              if (e.latencyMs !== undefined) metrics.barToOrder(e.latencyMs);
              metrics.orderUpdate?.(e);
            },
      onReconcileMismatch: metrics === undefined ? undefined : (brokerId) => metrics.reconcileMismatch?.(brokerId),
    },
  });
  metrics?.setPoolStatsSource(() => services.pool.stats());
  logger.info(
    { poolSize: config.runners.poolSize, strategies: services.catalog.list().map((s) => s.id), dataDirs: services.barFiles.dirs },
    'runners enabled',
  );
  let manager: SessionManager | undefined;
  const backtest: CommandHandler = (data, ctx) => {
    if (manager === undefined) return Promise.reject(new InternalError('the trading wiring is not attached to a session manager'));
    // Steps run in the daemon's pool (isolated, timed out) with a paper broker like the daemon's.
    return createBacktestHandler({ manager, catalog: services.catalog, pool: services.pool, files: services.barFiles, paperBroker: { ...config.paperBroker } })(data, ctx);
  };
  return {
    runner: services.runners,
    brokers: services.brokers,
    strategies: services.strategies,
    performance: services.runners,
    // The book's views read runner states as the runners hold them, not as last written (runners.stateCommitMs).
    runnerStates: { get: (id) => services.runners.runnerState(id), equityHistory: (id, o) => services.runners.equityHistory(id, o) },
    handlers: { ...orderCommandHandlers(services.runners, new SqliteCommandLog(store)), backtest },
    attach: (m) => {
      manager = m;
      services.runners.attach(m);
      // Recovery first, then every restored session's steps, released after READY (startBackground): the
      // first steps of 10,000 sessions would otherwise delay READY by their own work.
      services.runners.holdSteps();
    },
    close: () => services.close(),
    startBackground: () => {
      services.pool.start().catch((err: unknown) => logger.error({ err }, 'the strategy pool failed to start'));
      services.runners.releaseSteps();
    },
    // Before READY: live sessions' books brought to their venues' truth (or paused).
    afterRecover: async () => {
      if (services.venues.length > 0) await services.runners.reconcileVenues();
    },
  };
};
