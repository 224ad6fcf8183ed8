import { DelayedError, Queue, UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { CommandNotFoundError, OutOfOrderError, ValidationError, toSessiondError, type SessiondError } from '../domain/errors.js';
import { ID_RULE, derivedSessionId, describeId, isValidId } from '../domain/ids.js';
import type { CommandRecord } from '../persistence/ports.js';
import type { CommandSequenceLog } from '../persistence/sqlite-command-sequence.js';
import { SEQUENCED_COMMANDS, SequenceGate, sequenceKey } from './sequence-gate.js';
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
  /**
   * Where each session's command sequence stands (SQLite). With it, lifecycle jobs carrying `seq` apply strictly
   * in `seq` order per session; without it (in-process consumers in tests) `seq` is accepted and not enforced.
   */
  sequences?: CommandSequenceLog | undefined;
  /** How long a session waits for a missing `seq` before looking for it in the queue (and skipping it if absent). @defaultValue 10000 */
  sequenceGapMs?: number;
  logger?: Logger | undefined;
  onOutcome?: ((o: CommandOutcome) => void) | undefined;
}

/** How long a job held for an earlier `seq` waits in `delayed` before it is tried again (it is promoted sooner when its turn comes). */
const HOLD_RETRY_MS = 250;

/**
 * The session and `seq` a lifecycle job carries, with its data minus `seq`; undefined when it has none.
 * `start` names its session by `id`, or derives it from the command id.
 */
export function sequenceOf(name: string, data: unknown, commandId: string): { sessionId: string; seq: number; data: Record<string, unknown> } | undefined {
  if (!SEQUENCED_COMMANDS.has(name) || !data || typeof data !== 'object' || Array.isArray(data) || !('seq' in data)) return undefined;
  const { seq, ...rest } = data as Record<string, unknown>;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    throw new ValidationError(`invalid ${name} job: seq: must be a positive integer (from INCR on the session's sequence key)`);
  }
  const sessionId = name === 'start' ? (rest.id === undefined ? derivedSessionId(commandId) : rest.id) : rest.sessionId;
  // A bad session id is the schema's to report; without a valid one there is no sequence to keep.
  if (!isValidId(sessionId)) return undefined;
  return { sessionId, seq, data: rest };
}

export const DEFAULT_COMMAND_CONSUMER_OPTIONS = {
  queueName: DEFAULT_QUEUE_NAME,
  prefix: DEFAULT_QUEUE_PREFIX,
  concurrency: 16,
  lockDuration: 30_000,
  stalledInterval: 30_000,
  maxStalledCount: 1000,
  sequenceGapMs: 10_000,
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
  private readonly o: Required<Omit<CommandConsumerOptions, 'logger' | 'onOutcome' | 'handlers' | 'lease' | 'sequences'>> &
    Pick<CommandConsumerOptions, 'logger' | 'onOutcome' | 'lease' | 'sequences'> & { handlers: Record<string, CommandHandler> };
  private readonly gate: SequenceGate | undefined;
  /** Jobs held in `delayed` for an earlier seq, by session and seq: promoted when their turn comes. */
  private readonly held = new Map<string, Map<number, string>>();
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
    this.gate = options.sequences ? new SequenceGate(options.sequences, (id) => this.manager.commandRecord(id) !== undefined) : undefined;
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
    this.worker = new CommandWorker(this.o.queueName, (job, token) => this.process(job, token), {
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

  private async process(job: Job, token?: string): Promise<unknown> {
    const t0 = performance.now();
    const sessionId = sessionIdOf(job.data);
    const commandId = job.id ?? `${job.name}-${job.timestamp}`;
    try {
      if (job.data instanceof UnreadableJobData) throw new ValidationError(job.data.reason);
      if (!isValidId(commandId)) throw new ValidationError(`command id ${describeId(commandId)} breaks the id rule (${ID_RULE})`);
      // Fencing: nothing is applied unless this daemon's lease on the queue is current.
      if (this.o.lease && !this.o.lease.held) await this.o.lease.whenHeld();
      const sequenced = sequenceOf(job.name, job.data, commandId);
      const result = await (sequenced ? this.inSequence(job, token, commandId, sequenced) : this.execute(job.name, job.data, commandId));
      this.report(job.name, commandId, sessionId, t0);
      return result;
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      const e = toSessiondError(err);
      this.report(job.name, commandId, sessionId, t0, e);
      throw new UnrecoverableError(e.toWire());
    }
  }

  /**
   * A sequenced lifecycle command: applied when it is its session's next `seq`; held (moved to `delayed`, its
   * worker slot freed) while an earlier one is missing; after `sequenceGapMs` the missing one is looked for in
   * the queue, and skipped (recorded, logged) when it is nowhere: withdrawn, failed unread, or lost.
   */
  private async inSequence(job: Job, token: string | undefined, commandId: string, q: { sessionId: string; seq: number; data: Record<string, unknown> }): Promise<unknown> {
    const gate = this.gate;
    if (!gate) return this.execute(job.name, q.data, commandId);
    for (;;) {
      const a = gate.admit(q.sessionId, q.seq, commandId);
      if (a.kind === 'now') {
        gate.taken(q.sessionId, q.seq, commandId);
        this.held.get(q.sessionId)?.delete(q.seq);
        const p = this.execute(job.name, q.data, commandId);
        this.promoteNext(q.sessionId, q.seq + 1);
        const settle = () => gate.settled(q.sessionId, q.seq, commandId, new Date().toISOString());
        return p.then(
          (r) => {
            settle();
            return r;
          },
          (err: unknown) => {
            settle();
            throw err;
          },
        );
      }
      if (a.kind === 'replay') {
        this.held.get(q.sessionId)?.delete(q.seq);
        return this.execute(job.name, q.data, commandId);
      }
      if (a.kind === 'stale') {
        this.held.get(q.sessionId)?.delete(q.seq);
        await this.raiseCounter(q.sessionId, a.next - 1);
        this.o.logger?.warn(
          { sessionId: q.sessionId, seq: q.seq, commandId, takenBy: a.takenBy, next: a.next },
          `seq ${q.seq} of session ${q.sessionId} was already taken (its counter was reset: Redis lost data?); applied in arrival order, counter moved to ${a.next - 1}`,
        );
        return this.execute(job.name, q.data, commandId);
      }
      if (a.kind === 'reject') {
        this.held.get(q.sessionId)?.delete(q.seq);
        await this.raiseCounter(q.sessionId, a.next - 1);
        throw new OutOfOrderError(a.reason);
      }
      if (a.heldMs < this.o.sequenceGapMs || !token) {
        let m = this.held.get(q.sessionId);
        if (!m) this.held.set(q.sessionId, (m = new Map()));
        m.set(q.seq, job.id!);
        await job.moveToDelayed(Date.now() + HOLD_RETRY_MS, token);
        throw new DelayedError();
      }
      // Waited a full gap: is the missing command still on its way?
      if (await this.findPending(q.sessionId, a.expected)) {
        gate.stillComing(q.sessionId);
        continue;
      }
      const reason = `seq ${a.expected} of session ${q.sessionId} was not in the queue after ${this.o.sequenceGapMs} ms (withdrawn, failed unread, or lost)`;
      if (gate.skip(q.sessionId, a.expected, reason, new Date().toISOString())) {
        this.o.logger?.warn({ sessionId: q.sessionId, seq: a.expected, heldCommand: commandId }, `skipped a missing command: ${reason}`);
        this.promoteNext(q.sessionId, a.expected + 1);
      }
    }
  }

  /** Brings a job held for this seq back from `delayed` at once (it is retried every HOLD_RETRY_MS anyway). */
  private promoteNext(sessionId: string, seq: number): void {
    const id = this.held.get(sessionId)?.get(seq);
    if (id === undefined || !this.queue) return;
    void this.queue
      .getJob(id)
      .then((j) => j?.promote())
      .catch(() => undefined);
  }

  /** After a counter reset (Redis lost data), moves the session's sequence key past what is already settled. */
  private async raiseCounter(sessionId: string, atLeast: number): Promise<void> {
    try {
      await this.o.connection.eval(
        "local c = tonumber(redis.call('GET', KEYS[1]) or '0') if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
        1,
        sequenceKey(this.o.prefix, this.o.queueName, sessionId),
        String(atLeast),
      );
    } catch {
      // Best effort: the rejection says what to do.
    }
  }

  /** True when a job of the session with this seq waits anywhere in the queue (wait, active, delayed, ...). */
  private async findPending(sessionId: string, seq: number): Promise<boolean> {
    const c = this.o.connection;
    const ids = new Set<string>();
    for (const list of ['wait', 'active', 'paused']) for (const id of await c.lrange(this.key(list), 0, -1)) ids.add(id);
    for (const zset of ['delayed', 'prioritized']) for (const id of await c.zrange(this.key(zset), '0', '-1')) ids.add(id);
    const pipeline = c.pipeline();
    const order = [...ids];
    for (const id of order) pipeline.hmget(this.key(id), 'name', 'data');
    const replies = (await pipeline.exec()) ?? [];
    return replies.some(([err, value], i) => {
      if (err || !Array.isArray(value)) return false;
      const [name, text] = value as [string | null, string | null];
      try {
        const q = sequenceOf(name ?? '', JSON.parse(text ?? 'null'), order[i]!);
        return q?.sessionId === sessionId && q.seq === seq;
      } catch {
        return false;
      }
    });
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
      const data = JSON.parse(raw.data || '{}') as unknown;
      let q: ReturnType<typeof sequenceOf>;
      try {
        q = sequenceOf(name, data, id);
      } catch {
        continue; // a bad seq: the redelivered job reports it
      }
      if (q && this.gate) {
        // Only a session's next number is applied here; a later one waits for its redelivery to be held in turn.
        const a = this.gate.admit(q.sessionId, q.seq, id);
        if (a.kind === 'hold' || a.kind === 'reject' || a.kind === 'stale') continue;
        if (a.kind === 'now') this.gate.taken(q.sessionId, q.seq, id);
        const seq = q;
        const p = this.execute(name, q.data, id);
        try {
          await p;
        } catch {
          // The rejection is in the command log; the redelivered job reports it.
        }
        if (a.kind === 'now') this.gate.settled(seq.sessionId, seq.seq, id, new Date().toISOString());
        settled++;
        continue;
      }
      try {
        await this.execute(name, q ? q.data : data, id);
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
