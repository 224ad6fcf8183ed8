import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { parseWireError, SessiondError } from '../domain/errors.js';
import { DEFAULT_QUEUE_NAME, DEFAULT_QUEUE_PREFIX, type CommandName } from './schemas.js';

export interface CommandClientOptions {
  /** @defaultValue process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' */
  redisUrl?: string;
  /** @defaultValue 'session-commands' */
  queueName?: string;
  /** @defaultValue 'sessiond' */
  prefix?: string;
}

/** No daemon finished the command in time. `removed` tells whether it was withdrawn unapplied. */
export class CommandTimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(
    readonly commandId: string,
    readonly timeoutMs: number,
    readonly removed: boolean,
  ) {
    super(
      removed
        ? `no daemon took command ${commandId} within ${timeoutMs} ms; it was withdrawn and not applied`
        : `command ${commandId} did not finish within ${timeoutMs} ms; it is still queued or in progress`,
    );
    this.name = this.constructor.name;
  }
}

export interface SubmitOptions {
  /** The command id (BullMQ job id): resubmitting the same id returns the first outcome. */
  commandId?: string;
  /** @defaultValue 10000 */
  timeoutMs?: number;
}

/** Submits commands to the queue and waits for their outcome: what sessionctl uses. */
export class CommandClient {
  private readonly connection: Redis;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private ready: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: CommandClientOptions = {}) {
    const url = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const queueName = options.queueName ?? DEFAULT_QUEUE_NAME;
    const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
    this.connection = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
    this.queue = new Queue(queueName, { connection: this.connection, prefix });
    this.events = new QueueEvents(queueName, { connection: this.connection.duplicate(), prefix });
  }

  /** Resolves with the job's return value, or throws a SessiondError carrying the daemon's code. */
  async submit<T = unknown>(name: CommandName | string, data: unknown, options: SubmitOptions = {}): Promise<T> {
    this.ready ??= this.events.waitUntilReady().then(() => undefined);
    await this.ready;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const jobId = options.commandId ?? randomUUID();
    const job = await this.queue.add(name, data ?? {}, {
      jobId,
      attempts: 1,
      removeOnComplete: { age: 24 * 3600, count: 100_000 },
      removeOnFail: { age: 24 * 3600, count: 100_000 },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
    });
    try {
      return (await Promise.race([job.waitUntilFinished(this.events), timeout])) as T;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message === 'timeout') {
        const removed = await this.withdraw(jobId);
        throw new CommandTimeoutError(jobId, timeoutMs, removed);
      }
      const { code, message: text } = parseWireError(message);
      throw new SessiondError(code, text);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.events.close();
      await this.queue.close();
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
