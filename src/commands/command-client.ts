import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { parseWireError, SessiondError } from '../domain/errors.js';
import { derivedSessionId, isValidId } from '../domain/ids.js';
import { DEFAULT_QUEUE_NAME, DEFAULT_QUEUE_PREFIX } from './queue-names.js';
import type { CommandName } from './schemas.js';
import { SEQUENCED_COMMANDS, sequenceKey } from './sequence-gate.js';

export interface CommandClientOptions {
  /** @defaultValue process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' */
  redisUrl?: string;
  /** @defaultValue 'session-commands' */
  queueName?: string;
  /** @defaultValue 'sessiond' */
  prefix?: string;
}

/** Options of every command job: one attempt (a rejection is final), results kept a day for late readers. */
export const COMMAND_JOB_OPTIONS = {
  attempts: 1,
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  removeOnFail: { age: 24 * 3600, count: 100_000 },
} as const;

/** No daemon finished the command in time. `removed` tells whether it was withdrawn unapplied. */
export class CommandTimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(
    readonly commandId: string,
    readonly timeoutMs: number,
    readonly removed: boolean,
    redisError?: string,
  ) {
    super(
      redisError !== undefined
        ? `Redis unreachable (${redisError}); command ${commandId} was not submitted`
        : removed
          ? `no daemon took command ${commandId} within ${timeoutMs} ms; it was withdrawn and not applied`
          : `command ${commandId} did not finish within ${timeoutMs} ms; it is still queued or in progress`,
    );
    this.name = this.constructor.name;
  }
}

/** Redis did not accept the connection in time: nothing was submitted (surfaces as CommandTimeoutError). */
class RedisUnreachable extends Error {
  readonly code = 'TIMEOUT';
}

export interface SubmitOptions {
  /** The command id (BullMQ job id): resubmitting the same id returns the first outcome. */
  commandId?: string;
  /**
   * Give a lifecycle command (start, pause, resume, stop) its session's next `seq` (INCR on the session's
   * sequence key), so the daemon applies it in submission order even when delivery stalls. @defaultValue true
   */
  sequence?: boolean;
  /** @defaultValue 10000 */
  timeoutMs?: number;
  /**
   * How long to wait for Redis to accept the connection before giving up without submitting anything (an
   * unreachable Redis is said at once, not after the whole timeout). @defaultValue min(timeoutMs, 2000)
   */
  connectTimeoutMs?: number;
}

/** Submits commands to the queue and waits for their outcome: what sessionctl uses. */
export class CommandClient {
  private readonly connection: Redis;
  private readonly queue: Queue;
  private readonly queueName: string;
  private readonly prefix: string;
  private events: Promise<QueueEvents> | undefined;
  private eventsInstance: QueueEvents | undefined;
  private eventsConnection: Redis | undefined;
  private lastError: Error | undefined;
  private closing: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;

  constructor(options: CommandClientOptions = {}) {
    const url = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const queueName = options.queueName ?? DEFAULT_QUEUE_NAME;
    const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
    this.queueName = queueName;
    this.prefix = prefix;
    // disconnectTimeout: ioredis waits that long for a socket that already failed to say `close` (its default,
    // 2 s, kept sessionctl alive for 2 s after a refused connection).
    this.connection = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, disconnectTimeout: 200 });
    // Without listeners, an unreachable Redis is an unhandled 'error' event; the timeout reports it instead.
    this.connection.on('error', (err: Error) => (this.lastError = err));
    this.queue = new Queue(queueName, { connection: this.connection, prefix });
    this.queue.on('error', (err: Error) => (this.lastError = err));
  }

  /** The Redis error seen last (e.g. ECONNREFUSED), for messages. */
  get redisError(): Error | undefined {
    return this.lastError;
  }

  /**
   * QueueEvents reading from the stream's current end, fixed BEFORE any job is added: starting at '$' would
   * miss a completion that lands between waitUntilReady and the first XREAD.
   */
  private listen(): Promise<QueueEvents> {
    this.events ??= (async () => {
      const stream = `${this.prefix}:${this.queueName}:events`;
      const last = (await this.connection.xrevrange(stream, '+', '-', 'COUNT', 1)) as [string, string[]][];
      this.eventsConnection = this.connection.duplicate();
      this.eventsConnection.on('error', (err: Error) => (this.lastError = err));
      const events = new QueueEvents(this.queueName, {
        connection: this.eventsConnection,
        prefix: this.prefix,
        lastEventId: last[0]?.[0] ?? '0-0',
      });
      this.eventsInstance = events;
      events.on('error', (err: Error) => (this.lastError = err));
      await events.waitUntilReady();
      return events;
    })();
    return this.events;
  }

  /** Resolves with the job's return value, or throws a SessiondError carrying the daemon's code. */
  async submit<T = unknown>(name: CommandName | string, data: unknown, options: SubmitOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const jobId = options.commandId ?? randomUUID();
    let added = false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
    });
    const connectMs = Math.min(options.connectTimeoutMs ?? 2000, timeoutMs);
    const work = (async () => {
      await this.connected(connectMs);
      // Listen before adding, so a fast daemon's `completed` event is not missed.
      const events = await this.listen();
      // Resubmitting a kept job's id adds nothing: taking a seq for it would leave a gap the session waits on.
      const kept = options.commandId !== undefined && (await this.queue.getJob(jobId).catch(() => 'unreadable')) !== undefined;
      const payload = options.sequence === false || kept ? data ?? {} : await this.withSequence(name, data ?? {}, jobId);
      const job = await this.queue.add(name, payload, { ...COMMAND_JOB_OPTIONS, jobId });
      added = true;
      return job.waitUntilFinished(events);
    })();
    work.catch(() => undefined);
    try {
      return (await Promise.race([work, timeout])) as T;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof RedisUnreachable) throw new CommandTimeoutError(jobId, connectMs, true, this.lastError?.message ?? `no answer within ${connectMs} ms`);
      if (message === 'timeout') {
        // Not added (Redis unreachable) or withdrawn while still waiting: either way never applied.
        const removed = added ? await this.withdraw(jobId) : true;
        throw new CommandTimeoutError(jobId, timeoutMs, removed, added ? undefined : this.lastError?.message);
      }
      const { code, message: text } = parseWireError(message);
      throw new SessiondError(code, text);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves once Redis accepted the connection; rejects with RedisUnreachable after `ms` without it. Callers
   * waiting at the same time share one wait (one listener, however many commands are submitted meanwhile).
   */
  private connected(ms: number): Promise<void> {
    const c = this.connection;
    if (c.status === 'ready') return Promise.resolve();
    this.connecting ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        c.off('ready', onReady);
        this.connecting = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = () => done();
      const timer = setTimeout(() => done(new RedisUnreachable()), ms);
      c.on('ready', onReady);
      if (c.status === 'wait') c.connect().catch(() => undefined); // lazyConnect: nothing asked yet
    });
    return this.connecting;
  }

  /** A lifecycle command's data with its session's next `seq`; other commands' data unchanged. */
  private async withSequence(name: string, data: unknown, jobId: string): Promise<unknown> {
    if (!SEQUENCED_COMMANDS.has(name) || !data || typeof data !== 'object' || Array.isArray(data) || 'seq' in data) return data;
    const d = data as Record<string, unknown>;
    const sessionId = name === 'start' ? (d.id ?? derivedSessionId(jobId)) : d.sessionId;
    if (!isValidId(sessionId)) return data; // the daemon rejects it; no sequence to take
    const seq = await this.connection.incr(sequenceKey(this.prefix, this.queueName, sessionId));
    return { ...d, seq };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Never wait on Redis here: closing must work when Redis is unreachable.
      const pending = [this.eventsInstance?.close(), this.queue.close()].map((p) => p?.catch(() => undefined));
      // A connection that never came up has nothing to flush: do not wait for it.
      if (this.connection.status === 'ready') await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 1000).unref())]);
      // BullMQ does not quit connections it was given.
      this.eventsConnection?.disconnect();
      this.connection.disconnect();
    })();
    return this.closing;
  }

  private async withdraw(jobId: string): Promise<boolean> {
    try {
      const job = await this.queue.getJob(jobId);
      if (!job || (await job.getState()) !== 'waiting') return false;
      await job.remove();
      return true;
    } catch {
      return false;
    }
  }
}
