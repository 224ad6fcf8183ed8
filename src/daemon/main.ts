import type { Logger } from 'pino';
import { sessionMachine } from '../../machines/session.machine.js';
import { EventBus } from '../http/event-bus.js';
import { readiness, redisCheck, sqliteCheck } from '../http/health.js';
import { describeMachine } from '../http/machine-definition.js';
import { Metrics, bookStatsFrom, sessionCountsFrom } from '../http/metrics.js';
import { createHttpServer, type HttpServer } from '../http/server.js';
import { CommandClient } from '../commands/command-client.js';
import { liveChannel } from '../commands/schemas.js';
import { Alerts } from '../notify/alerts.js';
import { WebhookNotifier } from '../notify/webhook-notifier.js';
import { SqliteWebhookOutbox } from '../notify/sqlite-webhook-outbox.js';
import type { StoredOrder } from '../persistence/order-repository.js';
import { SqliteOrderRepository } from '../persistence/sqlite-order-repository.js';
import type { RunnerMetrics } from './daemon.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startDaemon, type Daemon, type OpenedDaemon } from './daemon.js';
import type { InspectRelay } from './inspect.js';
import { createLogger } from './logger.js';
import { RedisNotInstalledError } from './redis-server.js';
import { LeaseHeldError } from './lease.js';
import { OwnerLockError } from './owner-lock.js';
import { SdNotify } from './sd-notify.js';
import { createTradingWiring } from './trading.js';
import { isEntry } from './entry.js';

/**
 * The `sessiond` process: config, logger, metrics and live events, daemon (HTTP up with /readyz 503
 * `recovery`, then recovery, then commands), then READY=1 to systemd. SIGTERM/SIGINT: STOPPING=1, close HTTP, drain the daemon, exit 0.
 */
export async function main(): Promise<void> {
  let config: Readonly<Config>;
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
  const sd = new SdNotify({ logger });
  // Created before the daemon so recovery and the first commands are already counted and streamed.
  const metrics = new Metrics();
  const bus = new EventBus();
  // @statelyai/inspect (and its WebSocket client) is loaded only when inspection is on.
  const relay: InspectRelay | undefined = config.inspect.enabled
    ? (await import('./inspect.js')).createInspectRelay({ port: config.inspect.port, logger })
    : undefined;
  const notifier = new WebhookNotifier({
    webhooks: config.notify.webhooks,
    timeoutMs: config.notify.timeoutMs,
    maxAttempts: config.notify.maxAttempts,
    backoffMs: config.notify.backoffMs,
    logger,
    onDelivery: (result) => metrics.webhookDelivery(result),
  });
  const alerts = new Alerts(notifier);
  bus.subscribe((e) => alerts.live(e));
  // Order events carry the persisted order; the repository exists once the database is open.
  let orderOf: (clientOrderId: string) => StoredOrder | undefined = () => undefined;
  const runnerHooks: RunnerMetrics = {
    runnerStep: (id) => metrics.runnerStep(id),
    runnerFailure: (kind) => metrics.runnerFailure(kind),
    barToOrder: (ms) => metrics.barToOrder(ms),
    setPoolStatsSource: (fn) => metrics.setPoolStatsSource(fn),
    orderUpdate: (e) => {
      metrics.orderUpdate(e);
      bus.publish({ type: 'order', sessionId: e.sessionId, clientOrderId: e.clientOrderId, status: e.status as StoredOrder['status'], order: orderOf(e.clientOrderId), at: new Date().toISOString() });
    },
  };

  // Signals that arrive while recovering are held, then honoured once there is something to drain.
  let pendingSignal: string | undefined;
  let stop: (signal: string) => void = (signal) => (pendingSignal ??= signal);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // HTTP starts before recovery (beforeRecover), so /readyz answers 503 `recovery` until every session is back
  // and the venues are reconciled; `recovery` is what it reports then.
  const recovery: { done: boolean; detail: string } = { done: false, detail: 'recovering sessions' };
  let http: HttpServer | undefined;
  // The page's and the API's writes: submitted to the queue like sessionctl's (only with a token).
  let commands: CommandClient | undefined;
  let daemon: Daemon;
  try {
    daemon = await startDaemon(config, logger, {
      // The runner reports steps, failures and pool stats to the same metrics.
      trading: (ctx) => {
        const orders = new SqliteOrderRepository(ctx.db);
        orderOf = (id) => orders.getByClientId(id);
        return createTradingWiring({ ...ctx, metrics: runnerHooks });
      },
      beforeRecover: async (opened) => {
        // Alerts from here on are stored before they are sent; what a previous run left undelivered is retried.
        if (notifier.enabled) notifier.attachOutbox(new SqliteWebhookOutbox(opened.db));
        metrics.setSources({ sessionCounts: sessionCountsFrom(opened.db), book: bookStatsFrom(opened.db, config.metrics.maxSessionLabels) });
        if (!config.http.enabled) return;
        commands = config.http.token ? new CommandClient({ redisUrl: opened.redisUrl, queueName: config.queue.name, prefix: config.queue.prefix }) : undefined;
        try {
          http = await startHttp(opened, recovery, config, logger, metrics, bus, commands);
        } catch (err) {
          logger.fatal({ err, host: config.http.host, port: config.http.port }, 'http server failed to start');
          throw new HttpStartError();
        }
      },
      onTransition: (n) => {
        metrics.transition(n.transition);
        bus.publish({ type: 'transition', session: n.session, transition: n.transition });
      },
      onOutcome: (o) => {
        metrics.commandOutcome(o);
        alerts.outcome(o);
      },
      onWrite: (ms) => metrics.sqliteWrite(ms),
      // The last alerts (daemon_stopping, any from the drain) get their grace while the outbox can still record them.
      beforeDatabaseClose: () => notifier.close(),
      ...(relay ? { inspect: (e) => relay.inspect(e) } : {}),
    });
  } catch (err) {
    await http?.close().catch(() => undefined);
    await commands?.close();
    relay?.close();
    if (err instanceof HttpStartError) process.exit(1);
    if (err instanceof RedisNotInstalledError) {
      process.stderr.write(`sessiond: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof OwnerLockError || err instanceof LeaseHeldError) {
      logger.fatal({ code: err.code }, `refused to start: ${err.message}`);
      process.stderr.write(`sessiond: ${err.message}\n`);
      process.exit(1);
    }
    logger.fatal({ err }, 'start failed');
    process.exit(1);
  }
  const d = daemon;
  recovery.detail = `${d.recovered} sessions in ${d.recoveryMs.toFixed(1)} ms`;
  recovery.done = true;
  metrics.setSources({ queueDepth: () => d.consumer.depth() });
  // `sessionctl watch` reads live events from Redis pub/sub: best effort, never in a command's way.
  const channel = liveChannel(config.queue.prefix, config.queue.name);
  bus.subscribe((e) => {
    d.redis.publish(channel, JSON.stringify(e)).catch(() => undefined);
  });

  // Only now: `systemctl start` returns and dependent units start once every session is back.
  if (!pendingSignal) {
    await sd.ready(`recovered ${d.recovered} sessions; consuming ${config.queue.name}`);
    logger.info({ pid: process.pid, recovered: d.recovered, systemd: sd.enabled }, 'ready');
    alerts.daemonStarted({ pid: process.pid, recovered: d.recovered });
    d.startBackground();
  }

  let stopping = false;
  stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: draining commands, stopping runners');
    (async () => {
      alerts.daemonStopping({ signal, pid: process.pid });
      await sd.stopping('draining commands');
      await http?.close();
      await commands?.close();
      await d.close();
      relay?.close();
      await notifier.close();
    })().then(
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
  if (pendingSignal) stop(pendingSignal);
}

/** The HTTP side failed to listen (logged already). */
class HttpStartError extends Error {}

async function startHttp(
  daemon: OpenedDaemon,
  recovery: { readonly done: boolean; readonly detail: string },
  config: Readonly<Config>,
  logger: Logger,
  metrics: Metrics,
  bus: EventBus,
  commands: CommandClient | undefined,
): Promise<HttpServer> {
  const orders = new SqliteOrderRepository(daemon.db);
  const http = createHttpServer({
    host: config.http.host,
    port: config.http.port,
    token: config.http.token,
    maxEventClients: config.http.maxEventClients,
    logger,
    metrics,
    bus,
    machine: describeMachine(sessionMachine),
    sources: {
      sessions: daemon.manager,
      orders,
      book: daemon.book,
      commands,
      readiness: () =>
        readiness({
          recovery: () => ({ ok: recovery.done, detail: recovery.detail }),
          redis: redisCheck(daemon.redis),
          sqlite: sqliteCheck(daemon.db, daemon.storage),
        }),
    },
  });
  const { host, port } = await http.listen();
  logger.info({ host, port, auth: config.http.token ? 'bearer' : 'none' }, 'http listening');
  return http;
}

// Run when this file is the program (`node --import=tsx src/daemon/main.ts`, npm run dev). bin/sessiond.js
// imports it (or its bundle, see bin/launch.js) and calls main() itself, so importing never starts a daemon.
if (isEntry(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
