import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ValidationError, toSessiondError, type SessiondError } from '../domain/errors.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { zodIssues } from '../sessions/zod-issues.js';
import {
  DEFAULT_QUEUE_NAME,
  DEFAULT_QUEUE_PREFIX,
  GetSessionSchema,
  KillSwitchSchema,
  ListSessionsSchema,
  READ_ONLY_COMMANDS,
  SessionCommandSchema,
} from './schemas.js';
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
  private readonly o: Required<Omit<CommandConsumerOptions, 'logger' | 'onOutcome' | 'handlers'>> &
    Pick<CommandConsumerOptions, 'logger' | 'onOutcome'> & { handlers: Record<string, CommandHandler> };
  /**
   * The one-line-per-command log. Its fields are fixed here (ids, command, outcome, code, latency, and our own
   * error message, which never echoes job data), so it skips redaction: deep redaction cost ~10x a line.
   */
  private readonly commandLog: Logger | undefined;
  private worker: Worker | undefined;
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
    const settled = await this.settleOrphans(this.queue);
    this.worker = new Worker(this.o.queueName, (job) => this.process(job), {
      connection: this.o.connection,
      prefix: this.o.prefix,
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockDuration,
      stalledInterval: this.o.stalledInterval,
      maxStalledCount: this.o.maxStalledCount,
      autorun: true,
    });
    this.worker.on('error', (err) => this.o.logger?.warn({ err: err.message }, 'command worker error (Redis unreachable?)'));
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
        default: {
          const handler = this.o.handlers[name];
          if (handler) return handler(data, { commandId });
          throw new ValidationError(`unknown command "${name}"`);
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
      const result = await this.execute(job.name, job.data, commandId);
      this.report(job.name, commandId, sessionId, t0);
      return result;
    } catch (err) {
      const e = toSessiondError(err);
      this.report(job.name, commandId, sessionId, t0, e);
      throw new UnrecoverableError(e.toWire());
    }
  }

  private report(name: string, commandId: string, sessionId: string | undefined, t0: number, err?: SessiondError): void {
    const o: CommandOutcome = { commandId, name, sessionId, outcome: err ? 'error' : 'ok', code: err?.code, ms: performance.now() - t0 };
    this.o.onOutcome?.(o);
    const line = { commandId, command: name, sessionId, outcome: o.outcome, code: o.code, latencyMs: Number(o.ms.toFixed(3)) };
    if (err && err.code === 'INTERNAL') this.commandLog?.error({ ...line, err: err.message }, 'command failed');
    else this.commandLog?.info(err ? { ...line, err: err.message } : line, 'command');
  }

  private async settleOrphans(queue: Queue): Promise<number> {
    // Newest first in the active list (RPOPLPUSH pushes left): reverse for the order they were taken.
    const ids = (await this.o.connection.lrange(`${this.o.prefix}:${this.o.queueName}:active`, 0, -1)).reverse();
    let settled = 0;
    for (const id of ids) {
      const job = await Job.fromId(queue, id);
      if (!job || READ_ONLY_COMMANDS.has(job.name)) continue;
      try {
        await this.execute(job.name, job.data, id);
      } catch {
        // The rejection is in the command log; the redelivered job reports it.
      }
      settled++;
    }
    if (settled > 0) this.o.logger?.info({ settled }, 'settled commands left active by a previous run');
    return settled;
  }
}

function sessionIdOf(data: unknown): string | undefined {
  if (data && typeof data === 'object') {
    const d = data as { sessionId?: unknown; id?: unknown };
    if (typeof d.sessionId === 'string') return d.sessionId;
    if (typeof d.id === 'string') return d.id;
  }
  return undefined;
}
