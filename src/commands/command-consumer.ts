import { Queue, UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { CommandNotFoundError, ValidationError, toSessiondError, type SessiondError } from '../domain/errors.js';
import { ID_RULE, describeId, isValidId } from '../domain/ids.js';
import type { CommandRecord } from '../persistence/ports.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { zodIssues } from '../sessions/zod-issues.js';
import {
  DEFAULT_QUEUE_NAME,
  DEFAULT_QUEUE_PREFIX,
  GetCommandSchema,
  GetSessionSchema,
  KNOWN_COMMANDS,
  KillSwitchSchema,
  ListSessionsSchema,
  READ_ONLY_COMMANDS,
  SessionCommandSchema,
} from './schemas.js';
import { CommandWorker, UnreadableJobData, unreadableReason } from './job-reader.js';
import type { z } from 'zod';

export interface CommandOutcome {
  commandId: string;
  name: string;
  sessionId?: string | undefined;
  outcome: 'ok' | 'error';
  code?: string | undefined;
  ms: number;
}

/** Extra command handlers (e.g. the runners' `approve-order`, `backtest`), keyed by job name. */
export type CommandHandler = (data: unknown, ctx: { commandId: string }) => Promise<unknown>;

export interface CommandConsumerOptions {
  /** An ioredis connection created with `maxRetriesPerRequest: null`; the consumer duplicates it, never quits it. */
  connection: Redis;
  /** @defaultValue 'session-commands' */
  queueName?: string;
  /** @defaultValue 'sessiond' */
  prefix?: string;
  /** @defaultValue 16 */
  concurrency?: number;
  /** How long a job's lock lives without renewal; a killed daemon's jobs are redelivered after it. @defaultValue 30000 */
  lockDuration?: number;
  /** @defaultValue 30000 */
  stalledInterval?: number;
  /** A stalled command is redelivered, never failed for stalling: its outcome comes from the command log. @defaultValue 1000 */
  maxStalledCount?: number;
  handlers?: Record<string, CommandHandler>;
  /**
   * The queue lease (src/daemon/lease.ts): checked before each command is applied; while it is not held (not
   * renewed within its ttl) commands wait for it. Without one the consumer assumes it alone consumes the queue.
   */
  lease?: { readonly held: boolean; whenHeld(): Promise<void> } | undefined;
  logger?: Logger | undefined;
  onOutcome?: ((o: CommandOutcome) => void) | undefined;
}

export const DEFAULT_COMMAND_CONSUMER_OPTIONS = {
  queueName: DEFAULT_QUEUE_NAME,
  prefix: DEFAULT_QUEUE_PREFIX,
  concurrency: 16,
  lockDuration: 30_000,
  stalledInterval: 30_000,
  maxStalledCount: 1000,
} as const;

function parse<S extends z.ZodType>(schema: S, data: unknown, name: string): z.output<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new ValidationError(`invalid ${name} job: ${zodIssues(r.error)}`);
  return r.data;
}

/**
 * Consumes the `session-commands` queue and applies each job through the SessionManager.
 * Success returns the session view; a rejection is an UnrecoverableError `CODE: message` (never retried).
 */
export class CommandConsumer {
  private readonly o: Required<Omit<CommandConsumerOptions, 'logger' | 'onOutcome' | 'handlers' | 'lease'>> &
    Pick<CommandConsumerOptions, 'logger' | 'onOutcome' | 'lease'> & { handlers: Record<string, CommandHandler> };
  /**
   * The one-line-per-command log. Its fields are fixed here (ids, command, outcome, code, latency, and our own
   * error message, which never echoes job data), so it skips redaction: deep redaction cost ~10x a line.
   */
  private readonly commandLog: Logger | undefined;
  private worker: CommandWorker | undefined;
  private queue: Queue | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly manager: SessionManager,
    options: CommandConsumerOptions,
  ) {
    this.o = { ...DEFAULT_COMMAND_CONSUMER_OPTIONS, ...options, handlers: options.handlers ?? {} };
    this.commandLog = this.o.logger?.child({}, { redact: { paths: [] } });
    if (!Number.isInteger(this.o.concurrency) || this.o.concurrency < 1) {
      throw new ValidationError('options.concurrency must be a positive integer');
    }
  }

  /**
   * Settles the jobs a killed daemon left active (in the order they were taken), then starts consuming.
   * Settling first keeps submission order: a command caught by a kill is applied before any later
   * command of its session. Assumes one daemon per queue (see README, scale-out).
   */
  async start(): Promise<{ settled: number }> {
    this.queue = new Queue(this.o.queueName, { connection: this.o.connection, prefix: this.o.prefix });
    // Without a listener BullMQ prints the error (with a Redis client's command args: a password) to stderr.
    this.queue.on('error', (err) => this.onWorkerError(err));
    const settled = await this.settleOrphans(this.queue);
    this.worker = new CommandWorker(this.o.queueName, (job) => this.process(job), {
      connection: this.o.connection,
      prefix: this.o.prefix,
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockDuration,
      stalledInterval: this.o.stalledInterval,
      maxStalledCount: this.o.maxStalledCount,
      autorun: true,
    });
    this.worker.on('error', (err) => this.onWorkerError(err));
    return { settled };
  }

  /** Waits for in-flight jobs, then stops taking new ones. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.worker?.close();
      await this.queue?.close();
    })();
    return this.closing;
  }

  /** True while the worker's Redis connection is up. */
  async isRedisReady(): Promise<boolean> {
    try {
      return (await this.o.connection.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Waiting + active jobs. */
  async depth(): Promise<{ waiting: number; active: number; delayed: number }> {
    const c = await this.queue!.getJobCounts('waiting', 'active', 'delayed');
    return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0 };
  }

  /** Applies one command; throws a SessiondError on rejection. Enqueues into the manager synchronously. */
  execute(name: string, data: unknown, commandId: string): Promise<unknown> {
    const ctx = { commandId, source: 'command' };
    try {
      // Only the contract's names: a lookup on a plain object would find `constructor`, `toString`, ...
      if (!KNOWN_COMMANDS.has(name)) throw new ValidationError(`unknown command ${describeId(name)}`);
      switch (name) {
        case 'start':
          return this.manager.startSession(data, ctx);
        case 'pause': {
          const d = parse(SessionCommandSchema, data, name);
          return this.manager.pauseSession(d.sessionId, d.reason, ctx);
        }
        case 'resume': {
          const d = parse(SessionCommandSchema, data, name);
          return this.manager.resumeSession(d.sessionId, ctx);
        }
        case 'stop': {
          const d = parse(SessionCommandSchema, data, name);
          return this.manager.stopSession(d.sessionId, d.reason, ctx);
        }
        case 'kill-switch': {
          const d = parse(KillSwitchSchema, data ?? {}, name);
          return this.manager.killSwitch({ liveOnly: d.liveOnly, reason: d.reason }, ctx);
        }
        case 'record-backtest':
          return this.manager.recordBacktest(data, ctx);
        case 'get-session':
          return Promise.resolve(this.manager.getSession(parse(GetSessionSchema, data, name).sessionId));
        case 'list-sessions':
          return Promise.resolve(this.manager.listSessions(parse(ListSessionsSchema, data ?? {}, name)));
        case 'get-command': {
          const id = parse(GetCommandSchema, data, name).commandId;
          const record = this.manager.commandRecord(id);
          if (!record) throw new CommandNotFoundError(id);
          return Promise.resolve(commandRecordView(record));
        }
        default: {
          const handler = Object.hasOwn(this.o.handlers, name) ? this.o.handlers[name] : undefined;
          if (handler) return handler(data, { commandId });
          throw new ValidationError(`command ${describeId(name)} is not available in this daemon (runners disabled?)`);
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async process(job: Job): Promise<unknown> {
    const t0 = performance.now();
    const sessionId = sessionIdOf(job.data);
    const commandId = job.id ?? `${job.name}-${job.timestamp}`;
    try {
      if (job.data instanceof UnreadableJobData) throw new ValidationError(job.data.reason);
      if (!isValidId(commandId)) throw new ValidationError(`command id ${describeId(commandId)} breaks the id rule (${ID_RULE})`);
      // Fencing: nothing is applied unless this daemon's lease on the queue is current.
      if (this.o.lease && !this.o.lease.held) await this.o.lease.whenHeld();
      const result = await this.execute(job.name, job.data, commandId);
      this.report(job.name, commandId, sessionId, t0);
      return result;
    } catch (err) {
      const e = toSessiondError(err);
      this.report(job.name, commandId, sessionId, t0, e);
      throw new UnrecoverableError(e.toWire());
    }
  }

  /** Worker errors, logged as what they are: a lost lock is not an unreachable Redis. */
  private onWorkerError(err: Error): void {
    const log = this.o.logger;
    const message = err.message;
    if (/^Missing lock for job|could not renew lock/.test(message)) {
      log?.warn({ err: message }, 'a command job lost its lock (the daemon was paused or busy past queue.lockDurationMs); BullMQ redelivers it and the command log answers it');
    } else if (err instanceof SyntaxError || /JSON/.test(message)) {
      log?.warn({ err: message }, 'a job in Redis is not readable; moving unreadable active jobs aside');
      void this.sweepUnreadable();
    } else if (/ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|Connection is closed|connect|Stream isn't writeable/i.test(message)) {
      log?.warn({ err: message }, 'command worker: Redis unreachable; retrying');
    } else {
      log?.warn({ err: message }, 'command worker error');
    }
  }

  private key(suffix: string): string {
    return `${this.o.prefix}:${this.o.queueName}:${suffix}`;
  }

  /** Active jobs whose hash BullMQ cannot parse are moved to `failed` (VALIDATION_ERROR), never left to loop. */
  private async sweepUnreadable(): Promise<void> {
    try {
      for (const id of await this.o.connection.lrange(this.key('active'), 0, -1)) {
        const raw = await this.o.connection.hgetall(this.key(id));
        const reason = Object.keys(raw).length === 0 ? undefined : unreadableReason(raw);
        if (reason !== undefined) await this.moveAside(id, reason);
      }
    } catch (err) {
      this.o.logger?.warn({ err: (err as Error).message }, 'could not sweep unreadable jobs');
    }
  }

  /**
   * Fails an active job BullMQ cannot read, the way BullMQ would (failed set, failedReason, finishedOn, a
   * `failed` event for waiting submitters), without parsing it. Its content is never logged.
   */
  private async moveAside(id: string, reason: string): Promise<void> {
    const failedReason = new ValidationError(reason).toWire();
    const now = Date.now();
    await this.o.connection
      .multi()
      .lrem(this.key('active'), 0, id)
      .zadd(this.key('failed'), now, id)
      .hset(this.key(id), 'failedReason', failedReason, 'finishedOn', String(now))
      .del(this.key(`${id}:lock`))
      .xadd(this.key('events'), '*', 'event', 'failed', 'jobId', id, 'failedReason', failedReason, 'prev', 'active')
      .exec();
    this.o.logger?.warn({ commandId: isValidId(id) ? id : describeId(id), code: 'VALIDATION_ERROR', err: reason }, 'unreadable command job moved to failed');
  }

  private report(jobName: string, jobId: string, sessionId: string | undefined, t0: number, err?: SessiondError): void {
    // Hostile names and ids are neither logged whole nor used as metric labels.
    const name = KNOWN_COMMANDS.has(jobName) ? jobName : 'unknown';
    const commandId = isValidId(jobId) ? jobId : describeId(jobId);
    const o: CommandOutcome = { commandId, name, sessionId, outcome: err ? 'error' : 'ok', code: err?.code, ms: performance.now() - t0 };
    this.o.onOutcome?.(o);
    const line = { commandId, command: name, sessionId, outcome: o.outcome, code: o.code, latencyMs: Number(o.ms.toFixed(3)) };
    if (err && err.code === 'INTERNAL') this.commandLog?.error({ ...line, err: err.message }, 'command failed');
    else this.commandLog?.info(err ? { ...line, err: err.message } : line, 'command');
  }

  private async settleOrphans(_queue: Queue): Promise<number> {
    // Newest first in the active list (RPOPLPUSH pushes left): reverse for the order they were taken.
    const ids = (await this.o.connection.lrange(`${this.o.prefix}:${this.o.queueName}:active`, 0, -1)).reverse();
    let settled = 0;
    for (const id of ids) {
      // Read the hash ourselves: Job.fromId throws on data that is not JSON, and the daemon would exit on
      // every start (a crash loop under systemd).
      const raw = await this.o.connection.hgetall(this.key(id));
      if (Object.keys(raw).length === 0) continue;
      const reason = unreadableReason(raw);
      if (reason !== undefined) {
        await this.moveAside(id, reason);
        continue;
      }
      const name = raw.name ?? '';
      if (!KNOWN_COMMANDS.has(name) || READ_ONLY_COMMANDS.has(name) || !isValidId(id)) continue;
      try {
        await this.execute(name, JSON.parse(raw.data || '{}'), id);
      } catch {
        // The rejection is in the command log; the redelivered job reports it.
      }
      settled++;
    }
    if (settled > 0) this.o.logger?.info({ settled }, 'settled commands left active by a previous run');
    return settled;
  }
}

/** The session a job names, for the log line; only an id that obeys the rule (a hostile one is not logged). */
function sessionIdOf(data: unknown): string | undefined {
  if (data && typeof data === 'object' && !(data instanceof UnreadableJobData)) {
    const d = data as { sessionId?: unknown; id?: unknown };
    if (isValidId(d.sessionId)) return d.sessionId;
    if (isValidId(d.id)) return d.id;
  }
  return undefined;
}

/** What `get-command` returns: the stored outcome, with an error as `{ code, message }`. */
export function commandRecordView(r: CommandRecord): Record<string, unknown> {
  const view: Record<string, unknown> = { id: r.id, name: r.name };
  if (r.sessionId !== undefined) view.sessionId = r.sessionId;
  view.outcome = r.outcome;
  if (r.outcome === 'ok') view.result = r.result ?? null;
  else view.error = { code: r.errorCode ?? 'INTERNAL', message: r.errorMessage ?? 'failed', ...(r.errorDetails !== undefined ? { details: r.errorDetails } : {}) };
  view.appliedAt = r.appliedAt;
  return view;
}
