import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { InspectionEvent } from 'xstate';
import { CommandConsumer, type CommandHandler, type CommandOutcome } from '../commands/command-consumer.js';
import { startCheckpointer, type Checkpointer } from '../persistence/checkpointer.js';
import { StorageGuard } from '../persistence/storage-guard.js';
import { openDatabase, type Db } from '../persistence/database.js';
import { SqliteBacktestRepository } from '../persistence/sqlite-backtest-repository.js';
import { SqliteCommandLog, SqliteSessionStore } from '../persistence/sqlite-session-store.js';
import { SqliteCommandSequenceLog } from '../persistence/sqlite-command-sequence.js';
import { SessionManager, type TransitionNotice } from '../sessions/session-manager.js';
import { SessionBook } from '../sessions/session-book.js';
import { bookQueryHandlers } from '../commands/book-queries.js';
import { SqliteOrderRepository } from '../persistence/sqlite-order-repository.js';
import type { RunnerStateRepository } from '../persistence/runner-state-repository.js';
import { SqliteRunnerStateRepository } from '../persistence/sqlite-runner-state-repository.js';
import { sessionBars } from './session-bars.js';
import type { BrokerDirectory, PerformanceSource, SessionRunnerPort, StrategyDirectory } from '../sessions/ports.js';
import type { Config } from './config.js';
import { ensureRedis, type EnsuredRedis } from './redis-server.js';
import { QueueLease } from './lease.js';
import { acquireOwnerLock, type OwnerLock } from './owner-lock.js';
import { redactUrl } from './config.js';

/** What a runner reports to metrics (implemented by src/http/metrics.ts). */
export interface RunnerMetrics {
  runnerStep(sessionId?: string): void;
  runnerFailure(kind: string): void;
  barToOrder(ms: number): void;
  /** A position still differing from its venue after reconciliation (the session is paused). */
  reconcileMismatch?(brokerId: string): void;
  setPoolStatsSource(fn: () => { utilization: number; threads: number; queueSize: number }): void;
  /** An order changed status (orders-by-status metrics, live events, alerts on rejection). */
  orderUpdate?(e: { sessionId: string; clientOrderId: string; status: string }): void;
}

/** What the trading side (runners, brokers, strategies) contributes to the daemon. */
export interface TradingWiring {
  runner: SessionRunnerPort;
  brokers: BrokerDirectory;
  strategies?: StrategyDirectory;
  performance: PerformanceSource;
  handlers?: Record<string, CommandHandler>;
  /** Called once the manager exists (runners report failures back to it). */
  attach?(manager: SessionManager): void;
  close?(): Promise<void>;
  /** After every session is recovered, before commands are consumed and READY (live venues' reconciliation). */
  afterRecover?(): Promise<void>;
  /** Right after READY: what READY does not wait for (the strategy pool's threads). */
  startBackground?(): void;
  /** Runner states as the runners hold them (newer than SQLite between two writes); read models use it. @defaultValue SQLite */
  runnerStates?: Pick<RunnerStateRepository, 'get' | 'equityHistory'>;
}

export interface DaemonHooks {
  /** Builds the trading side (src/daemon/trading.ts: runners, or the RecordingRunner when runners are disabled). */
  trading: (ctx: {
    config: Readonly<Config>;
    db: Db;
    logger: Logger;
    store: SqliteSessionStore;
    metrics?: RunnerMetrics;
    /** Storage faults go here; it says when SQLite writes again (the runners hold until then). */
    storage?: StorageGuard;
  }) => Promise<TradingWiring>;
  onTransition?: (n: TransitionNotice) => void;
  onOutcome?: (o: CommandOutcome) => void;
  onWrite?: (ms: number) => void;
  inspect?: (event: InspectionEvent) => void;
  /** Another daemon took the queue lease. @defaultValue exit the process with status 1 (systemd restarts it) */
  onLeaseLost?: () => void;
  /**
   * Called once SQLite, Redis, the lease, the manager and the book exist, before sessions are recovered (the
   * daemon's HTTP side starts here, so /readyz answers 503 `recovery` while recovery runs). A throw aborts
   * the start like any other start failure.
   */
  beforeRecover?: (d: OpenedDaemon) => Promise<void>;
  /** At close, after commands are drained and runners stopped, while SQLite is still open (the webhook outbox). */
  beforeDatabaseClose?: () => Promise<void>;
}

/** What exists before recovery: enough to serve reads (HTTP) while sessions come back. */
export type OpenedDaemon = Pick<Daemon, 'config' | 'db' | 'store' | 'manager' | 'redis' | 'redisUrl' | 'book' | 'storage'>;

export interface Daemon {
  config: Readonly<Config>;
  db: Db;
  store: SqliteSessionStore;
  manager: SessionManager;
  consumer: CommandConsumer;
  redis: Redis;
  redisUrl: string;
  recovered: number;
  recoveryMs: number;
  trading: TradingWiring;
  /** Sessions' orders, fills, positions, PnL, equity and bars, read from SQLite (CLI read jobs, HTTP API). */
  book: SessionBook;
  /** Whether SQLite can write (/readyz). */
  storage: StorageGuard;
  /**
   * Right after READY: starts the threads a start does not wait for (the WAL checkpointer, the strategy pool),
   * so they boot without taking the CPU from it. Idempotent.
   */
  startBackground(): void;
  /** Drains the queue worker, stops runners without changing any status, closes Redis and SQLite. Idempotent. */
  close(): Promise<void>;
}

/** Opens SQLite, recovers every session, then consumes commands. Resolves when ready. */
export async function startDaemon(config: Readonly<Config>, logger: Logger, hooks: DaemonHooks): Promise<Daemon> {
  // One daemon per database, before anything reads or migrates it.
  const owner: OwnerLock | undefined = acquireOwnerLock(config.database.file);
  let db: Db;
  try {
    db = openDatabase(config.database.file, { synchronous: config.database.synchronous });
  } catch (err) {
    owner?.release();
    throw err;
  }
  const store = new SqliteSessionStore(db);
  // Started by startBackground(), after READY (until then SQLite checkpoints on its own, every 1000 pages).
  let checkpointer: Checkpointer | undefined;
  const storage = new StorageGuard(db, { logger });
  let ensured: EnsuredRedis | undefined;
  let redis: Redis | undefined;
  let trading: TradingWiring | undefined;
  let lease: QueueLease | undefined;
  try {
    ensured = await ensureRedis(config.redis.url, {
      embedded: config.redis.embedded,
      dir: config.redis.embeddedDir,
      onUnexpectedExit: (how) => logger.error(how, 'the private redis-server exited before sessiond stopped it'),
    });
    if (ensured.embedded) {
      logger.info({ redisUrl: ensured.url, dir: config.redis.embeddedDir, pid: ensured.embedded.process.pid }, 'started a private redis-server');
    }
    redis = new Redis(ensured.url, { maxRetriesPerRequest: null });
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    void warnOnEviction(redis, logger);

    // One consuming daemon per queue: a standby waits here, before it recovers or runs anything.
    lease = new QueueLease({
      redis,
      prefix: config.queue.prefix,
      queue: config.queue.name,
      db: resolve(config.database.file),
      ttlMs: config.queue.leaseTtlMs,
      logger,
      onLost: () => (hooks.onLeaseLost ?? (() => process.exit(1)))(),
    });
    const fence = await lease.acquire({ standby: config.queue.standby });
    logger.info({ queue: config.queue.name, fence, ttlMs: config.queue.leaseTtlMs }, 'holding the queue lease');

    trading = await hooks.trading({ config, db, logger, store, storage });
    const manager = new SessionManager({
      store,
      commands: new SqliteCommandLog(store),
      backtests: new SqliteBacktestRepository(db),
      brokers: trading.brokers,
      strategies: trading.strategies,
      runner: trading.runner,
      performance: trading.performance,
      thresholds: config.prerequisites,
      onTransition: hooks.onTransition,
      onWrite: hooks.onWrite,
      inspect: hooks.inspect,
    });
    trading.attach?.(manager);
    const book = new SessionBook({
      sessions: manager,
      orders: new SqliteOrderRepository(db),
      runnerStates: trading.runnerStates ?? new SqliteRunnerStateRepository(db),
      bars: sessionBars({ defaultBarIntervalMs: config.runners.defaultBarIntervalMs }),
      initialEquity: config.paperBroker.initialCash,
    });
    await hooks.beforeRecover?.({ config, db, store, manager, redis, redisUrl: ensured.url, book, storage });
    const { recovered, ms } = await manager.recover();
    logger.info({ recovered, ms: Number(ms.toFixed(1)) }, 'sessions recovered');
    await trading.afterRecover?.();

    const consumer = new CommandConsumer(manager, {
      connection: redis,
      queueName: config.queue.name,
      prefix: config.queue.prefix,
      concurrency: config.queue.concurrency,
      lockDuration: config.queue.lockDurationMs,
      stalledInterval: config.queue.stalledIntervalMs,
      handlers: { ...bookQueryHandlers(book), ...trading.handlers },
      lease,
      sequences: new SqliteCommandSequenceLog(db),
      sequenceGapMs: config.queue.sequenceGapMs,
      logger,
      onOutcome: (o) => {
        // A command met a full disk or an I/O error: a probe write tells whether it lasts (then /readyz says
        // sqlite until a write commits again) and with which SQLite code.
        if (o.code === 'STORAGE_UNAVAILABLE') storage.probe();
        hooks.onOutcome?.(o);
      },
    });
    await consumer.start();
    logger.info({ queue: config.queue.name, prefix: config.queue.prefix, redisUrl: redactUrl(ensured.url) }, 'consuming commands');

    let closing: Promise<void> | undefined;
    const r = redis;
    const t = trading;
    const e = ensured;
    const l = lease;
    return {
      config,
      db,
      store,
      manager,
      consumer,
      redis: r,
      redisUrl: e.url,
      recovered,
      recoveryMs: ms,
      trading: t,
      book,
      storage,
      startBackground() {
        if (closing !== undefined || checkpointer !== undefined) return;
        checkpointer = startCheckpointer(db);
        t.startBackground?.();
      },
      close() {
        closing ??= (async () => {
          await withTimeout(consumer.close(), config.shutdown.drainTimeoutMs, () => logger.warn('queue drain timed out'));
          await manager.close();
          await t.close?.();
          await l.release();
          r.disconnect();
          await e.embedded?.stop();
          await hooks.beforeDatabaseClose?.().catch((err: unknown) => logger.warn({ err }, 'close hook failed'));
          storage.close();
          await checkpointer?.close();
          db.close();
          owner?.release();
        })();
        return closing;
      },
    };
  } catch (err) {
    await trading?.close?.().catch(() => undefined);
    await lease?.release();
    redis?.disconnect();
    await ensured?.embedded?.stop();
    storage.close();
    db.close();
    owner?.release();
    throw err;
  }
}

async function warnOnEviction(redis: Redis, logger: Logger): Promise<void> {
  try {
    const res = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = res[1];
    if (policy && policy !== 'noeviction') {
      logger.warn({ policy }, 'Redis maxmemory-policy is not noeviction: BullMQ may lose queued commands under memory pressure');
    }
  } catch {
    // CONFIG may be disabled (managed Redis); nothing to check then.
  }
}

async function withTimeout(p: Promise<void>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p,
    new Promise<void>((res) => {
      timer = setTimeout(() => {
        onTimeout();
        res();
      }, ms);
    }),
  ]);
  clearTimeout(timer);
}
