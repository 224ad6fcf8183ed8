import { randomUUID } from 'node:crypto';
import { createActor, type Actor, type InspectionEvent } from 'xstate';
import { sessionMachine, type SessionEvent, type SessionMachine } from '../../machines/session.machine.js';
import {
  BrokerNotFoundError,
  InvalidTransitionError,
  PrerequisitesNotMetError,
  SessionNotFoundError,
  SessiondError,
  ValidationError,
  toSessiondError,
  type PrerequisiteCheck,
} from '../domain/errors.js';
import {
  BacktestMetricsSchema,
  check,
  judgeBacktest,
  type BacktestDataProvenance,
  type BacktestRecord,
  type BacktestThresholds,
  type PaperThresholds,
} from '../domain/backtest.js';
import {
  SessionConfigSchema,
  isActive,
  toSessionView,
  type Session,
  type SessionKind,
  type SessionStatus,
  type SessionView,
  type StrategyRef,
} from '../domain/session.js';
import type {
  BacktestRepository,
  CommandLog,
  CommandRecord,
  SessionStore,
  TransitionRecord,
} from '../persistence/ports.js';
import { exactlyOnce, recordFailure, replayOutcome, type Recorded } from './exactly-once.js';
import { GroupCommitter } from './group-committer.js';
import { KeyedQueue } from './keyed-queue.js';
import type { BrokerDirectory, PerformanceSource, SessionRunnerPort, StrategyDirectory } from './ports.js';
import { checkRestorable } from './restorable.js';
import { zodIssues } from './zod-issues.js';
import { z } from 'zod';
import { IdSchema } from '../domain/id-schema.js';
import { ID_RULE, derivedSessionId, describeId, isValidId } from '../domain/ids.js';
import { boundedParams, LIMITS } from '../domain/limits.js';

export interface PrerequisiteThresholds {
  backtest: BacktestThresholds;
  paper: PaperThresholds;
}

export interface PrerequisiteResult {
  strategyId: string;
  allPassed: boolean;
  checks: PrerequisiteCheck[];
}

/** Who is asking: the command id (for exactly-once) and where it came from. */
export interface CommandContext {
  commandId?: string | undefined;
  source?: string | undefined;
}

export interface TransitionNotice {
  session: SessionView;
  transition: TransitionRecord;
}

export interface SessionManagerOptions {
  store: SessionStore;
  commands: CommandLog;
  backtests: BacktestRepository;
  brokers: BrokerDirectory;
  runner: SessionRunnerPort;
  thresholds: PrerequisiteThresholds;
  performance: PerformanceSource;
  /** When absent, any strategy id is accepted with its params as given. */
  strategies?: StrategyDirectory | undefined;
  /** Injected clock (tests). @defaultValue () => new Date() */
  now?: (() => Date) | undefined;
  /** Called after every committed transition (live view, metrics). */
  onTransition?: ((notice: TransitionNotice) => void) | undefined;
  /** Milliseconds each write-ahead SQLite transaction took, and how many commands it carried (metrics). */
  onWrite?: ((ms: number, writes: number) => void) | undefined;
  /** XState inspection of every session actor (relay to a Stately inspector). */
  inspect?: ((event: InspectionEvent) => void) | undefined;
}

export const RecordBacktestSchema = z
  .object({
    strategyId: IdSchema,
    params: boundedParams().default({}),
    dataRef: z.string().min(1).max(LIMITS.dataRefChars).default('external'),
    metrics: BacktestMetricsSchema,
  })
  .strict();
export type RecordBacktestInput = z.input<typeof RecordBacktestSchema>;

type SessionActor = Actor<SessionMachine>;

/**
 * A non-stopped session held in memory: its last committed row and its actor. A recovered session's actor is
 * made from its persisted snapshot at its first event (actorOf): most of 10,000 restored sessions never get one
 * before they are stopped, and each costs time at the restart and memory after it.
 */
interface Entry {
  actor: SessionActor | undefined;
  session: Session;
}

/** Sessions restored per prepareRestore() (the runner reads their state, fills and positions together). */
const RESTORE_CHUNK = 1000;

type CommandName = 'start' | 'pause' | 'resume' | 'stop';


/**
 * Keeps every non-stopped session as an XState actor and applies lifecycle commands write-ahead:
 * validate -> next snapshot -> ONE SQLite transaction -> actor -> runner -> reply.
 * Commands for one session apply in the order they are called; different sessions run in parallel.
 *
 * @example
 * const view = await manager.startSession({ kind: 'paper', strategy: { id: 'sma-crossover' }, symbols: ['AAPL'] });
 * await manager.pauseSession(view.id);
 */
export class SessionManager {
  private readonly entries = new Map<string, Entry>();
  private readonly writer: GroupCommitter;
  private readonly queue = new KeyedQueue();
  private readonly now: () => Date;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: SessionManagerOptions) {
    this.now = opts.now ?? (() => new Date());
    this.writer = new GroupCommitter(opts.store, opts.onWrite);
  }

  /**
   * Restores every non-stopped session from its row and snapshot (checked to agree; the actor itself is made at
   * the session's first event, or now when an inspector watches) and brings its runner to that state.
   */
  async recover(): Promise<{ recovered: number; ms: number }> {
    const t0 = performance.now();
    const stored = this.opts.store.listRecoverable();
    for (const { session, snapshot } of stored) {
      checkRestorable(session, snapshot);
      const actor = this.opts.inspect === undefined ? undefined : this.createSessionActor(session.id, session.createdAt, snapshot);
      this.entries.set(session.id, { actor, session });
    }
    // Runners after every session is held, so a runner failure during restore finds its session.
    const active = stored.flatMap(({ session }) => (isActive(session.status) ? [session] : []));
    for (let i = 0; i < active.length; i += RESTORE_CHUNK) {
      const chunk = active.slice(i, i + RESTORE_CHUNK);
      this.opts.runner.prepareRestore?.(chunk);
      for (const session of chunk) await this.sideEffect(session, () => this.opts.runner.restore(session));
    }
    this.opts.runner.prepareRestore?.([]);
    return { recovered: stored.length, ms: performance.now() - t0 };
  }

  /** Validates the config, checks prerequisites (live) and the broker, creates the session and starts it. */
  startSession(input: unknown, ctx: CommandContext = {}): Promise<SessionView> {
    const parsed = SessionConfigSchema.safeParse(input);
    if (!parsed.success) return this.rejectEarly(ctx, 'start', new ValidationError(`invalid session config: ${zodIssues(parsed.error)}`));
    const config = parsed.data;
    const id = config.id ?? (ctx.commandId ? derivedSessionId(ctx.commandId) : randomUUID());
    if (!isValidId(id)) {
      return this.rejectEarly(ctx, 'start', new ValidationError(`session id ${describeId(id)} derived from the command id breaks the id rule (${ID_RULE}): pass an id`));
    }
    return this.queue.run(id, () =>
      this.once(ctx, 'start', id, async (recorded) => {
        const existing = this.entries.get(id)?.session ?? this.opts.store.get(id)?.session;
        if (existing && existing.status !== 'created') {
          throw new InvalidTransitionError(id, existing.status, 'start');
        }
        if (!existing) {
          const strategy = this.opts.strategies ? this.opts.strategies.resolve(config.strategy) : config.strategy;
          if (config.kind === 'live') {
            const prereq = await this.checkPrerequisites(strategy);
            if (!prereq.allPassed) throw new PrerequisitesNotMetError(strategy.id, prereq.checks);
          }
          if (!this.opts.brokers.has(config.brokerId)) throw new BrokerNotFoundError(config.brokerId);
          // Refused now (file and line), not accepted as running and failed by its runner later.
          await this.opts.runner.checkStart?.({ id, feed: config.feed, symbols: config.symbols, brokerId: config.brokerId });
          const at = this.now().toISOString();
          const session: Session = {
            id,
            kind: config.kind,
            status: 'created',
            strategy: { ...strategy, name: strategy.name ?? strategy.id },
            brokerId: config.brokerId,
            accountId: config.accountId,
            symbols: config.symbols,
            executionMode: config.executionMode,
            riskControls: config.riskControls,
            feed: config.feed,
            flattenOnStop: config.flattenOnStop,
            positions: {},
            createdAt: at,
            updatedAt: at,
          };
          const actor = this.createSessionActor(id, at);
          // Persist `created` on its own: a crash before START leaves a created session that a redelivery starts.
          try {
            await this.writer.write({
              create: true,
              session,
              snapshot: actor.getPersistedSnapshot(),
              transition: { sessionId: id, from: null, to: 'created', event: 'CREATE', commandId: ctx.commandId, source: ctx.source ?? 'command', at },
            });
          } catch (err) {
            actor.stop();
            throw err;
          }
          this.entries.set(id, { actor, session });
        }
        return this.applyLocked(id, 'start', { type: 'START', at: this.now().toISOString() }, ctx, recorded);
      }),
    );
  }

  pauseSession(id: string, reason?: string, ctx: CommandContext = {}): Promise<SessionView> {
    return this.command(id, 'pause', reason, ctx);
  }

  resumeSession(id: string, ctx: CommandContext = {}): Promise<SessionView> {
    return this.command(id, 'resume', undefined, ctx);
  }

  stopSession(id: string, reason?: string, ctx: CommandContext = {}): Promise<SessionView> {
    return this.command(id, 'stop', reason, ctx);
  }

  /**
   * Stops every running or paused session (or only live ones). Each stop is queued behind the
   * commands its session already has, so nothing submitted earlier is overtaken.
   */
  async killSwitch(options: { liveOnly?: boolean; reason?: string } = {}, ctx: CommandContext = {}): Promise<SessionView[]> {
    const commandId = ctx.commandId ?? `kill-switch-${randomUUID()}`;
    const prior = this.opts.commands.get(commandId);
    if (prior) return replayOutcome(prior) as SessionView[];
    const ids = new Set([...this.entries.keys(), ...this.queue.keys()]);
    await Promise.all(
      [...ids].map((id) =>
        this.queue.run(id, async () => {
          const current = this.entries.get(id)?.session;
          if (!current || !isActive(current.status)) return;
          if (options.liveOnly && current.kind !== 'live') return;
          const stop: SessionEvent = { type: 'STOP', at: this.now().toISOString(), reason: options.reason ?? 'kill_switch' };
          await this.applyLocked(id, 'stop', stop, { ...ctx, commandId }, { done: true });
        }),
      ),
    );
    const views = this.opts.store.sessionIdsByCommand(commandId).flatMap((sid) => {
      const s = this.opts.store.get(sid)?.session;
      return s ? [toSessionView(s)] : [];
    });
    this.opts.commands.record({ id: commandId, name: 'kill-switch', outcome: 'ok', result: views, appliedAt: this.now().toISOString() });
    return views;
  }

  /**
   * Stores a backtest result judged against the configured thresholds. `origin` says where it came from:
   * omitted (the record-backtest job) it is `recorded`; the daemon's backtest command passes
   * `{ source: 'run', data }` with the file it read. Only code in the daemon can pass it, never a job.
   */
  recordBacktest(input: unknown, ctx: CommandContext = {}, origin?: { source: 'run'; data: BacktestDataProvenance }): Promise<BacktestRecord> {
    const parsed = RecordBacktestSchema.safeParse(input);
    if (!parsed.success) return this.rejectEarly(ctx, 'record-backtest', new ValidationError(`invalid backtest: ${zodIssues(parsed.error)}`));
    const data = parsed.data;
    return this.queue.run(`backtest:${data.strategyId}`, () =>
      this.once(ctx, 'record-backtest', undefined, async () => {
        const checks = judgeBacktest(data.metrics, this.opts.thresholds.backtest);
        const record: BacktestRecord = {
          id: ctx.commandId ?? randomUUID(),
          strategyId: data.strategyId,
          params: data.params,
          dataRef: data.dataRef,
          metrics: data.metrics,
          passed: checks.every((c) => c.passed),
          checks,
          createdAt: this.now().toISOString(),
          source: origin?.source ?? 'recorded',
          ...(origin === undefined ? {} : { data: origin.data }),
        };
        await this.opts.backtests.save(record);
        return record;
      }),
    );
  }

  /**
   * A live session may start only when the strategy has a recorded backtest that passes the thresholds
   * and a paper session that ran long enough and met its thresholds. Every check is listed.
   */
  async checkPrerequisites(strategy: StrategyRef | string): Promise<PrerequisiteResult> {
    const strategyId = typeof strategy === 'string' ? strategy : strategy.id;
    const t = this.opts.thresholds;
    const checks: PrerequisiteCheck[] = [];

    const all = await this.opts.backtests.listByStrategy(strategyId);
    // By default only what the daemon ran counts: a hand-written record-backtest result proves nothing.
    const backtests = t.backtest.acceptRecorded === true ? all : all.filter((b) => b.source === 'run');
    const judged = backtests.map((b) => ({ b, checks: judgeBacktest(b.metrics, t.backtest) }));
    const passing = judged.find((j) => j.checks.every((c) => c.passed));
    const ignored = all.length - backtests.length;
    if (passing) {
      const from = passing.b.data === undefined ? '' : ` on ${passing.b.data.file} (sha256 ${passing.b.data.sha256.slice(0, 12)}, ${passing.b.data.rows} rows)`;
      checks.push(check('backtest', true, `backtest ${passing.b.id} (${passing.b.source})${from} passed (${passing.checks.map((c) => c.reason).join(', ')})`));
    } else if (judged.length === 0) {
      checks.push(
        check(
          'backtest',
          false,
          ignored > 0
            ? `no backtest run by the daemon for strategy ${strategyId}; ${ignored} recorded with record-backtest do not count (prerequisites.backtest.acceptRecorded is false)`
            : `no backtest recorded for strategy ${strategyId}`,
        ),
      );
    } else {
      const latest = judged[0]!;
      const failed = latest.checks.filter((c) => !c.passed).map((c) => c.reason);
      checks.push(check('backtest', false, `${judged.length} backtest(s), none passed; latest ${latest.b.id}: ${failed.join(', ')}`));
    }

    const papers = this.opts.store.list({ kind: 'paper', strategyId }).filter((s) => s.startedAt !== undefined);
    const candidates = papers.map((s) => {
      const runSeconds = this.runningSeconds(s.id);
      const perf = this.opts.performance.performanceOf(s);
      const failures: string[] = [];
      if (runSeconds < t.paper.minRunSeconds) failures.push(`ran ${Math.floor(runSeconds)}s of ${t.paper.minRunSeconds}s`);
      if (perf.returnPct < t.paper.minReturnPct) failures.push(`return ${perf.returnPct.toFixed(2)}% < ${t.paper.minReturnPct}%`);
      if (perf.maxDrawdownPct > t.paper.maxDrawdownPct) failures.push(`drawdown ${perf.maxDrawdownPct.toFixed(2)}% > ${t.paper.maxDrawdownPct}%`);
      return { s, runSeconds, perf, failures };
    });
    const good = candidates.find((c) => c.failures.length === 0);
    if (good) {
      checks.push(
        check('paper', true, `paper session ${good.s.id} ran ${Math.floor(good.runSeconds)}s, return ${good.perf.returnPct.toFixed(2)}%, drawdown ${good.perf.maxDrawdownPct.toFixed(2)}%`),
      );
    } else if (candidates.length === 0) {
      checks.push(check('paper', false, `no paper session of strategy ${strategyId} has run`));
    } else {
      const best = [...candidates].sort((a, b) => b.runSeconds - a.runSeconds)[0]!;
      checks.push(check('paper', false, `${candidates.length} paper session(s), none passed; longest ${best.s.id}: ${best.failures.join(', ')}`));
    }
    return { strategyId, allPassed: checks.every((c) => c.passed), checks };
  }

  /** A runner gave up: the session is stopped with stopReason `runner_failed` and the error. */
  handleRunnerFailure(id: string, error: string): Promise<SessionView | undefined> {
    return this.internal(id, { type: 'RUNNER_FAILED', at: this.now().toISOString(), error }, 'runner');
  }

  /** maxDailyLoss breached: the session is paused with reason `risk_breach`. */
  handleRiskBreach(id: string, reason: string): Promise<SessionView | undefined> {
    return this.internal(id, { type: 'RISK_BREACH', at: this.now().toISOString(), reason: `risk_breach: ${reason}` }, 'risk');
  }

  /** The recorded outcome of a command (SQLite), or undefined. */
  commandRecord(commandId: string): CommandRecord | undefined {
    return this.opts.commands.get(commandId);
  }

  getSession(id: string): SessionView {
    const found = this.opts.store.get(id);
    if (!found) throw new SessionNotFoundError(id);
    return toSessionView(found.session);
  }

  /** The full stored session (runners need its config). */
  getStoredSession(id: string): { session: Session; snapshot: unknown } {
    const found = this.opts.store.get(id);
    if (!found) throw new SessionNotFoundError(id);
    return found;
  }

  listSessions(filter: { activeOnly?: boolean; status?: SessionStatus; kind?: SessionKind } = {}): SessionView[] {
    const status = filter.activeOnly ? (['running', 'paused'] as const) : filter.status;
    return this.opts.store.list({ status, kind: filter.kind }).map(toSessionView);
  }

  /** Running and paused sessions. */
  getActiveSessions(): SessionView[] {
    return this.listSessions({ activeOnly: true });
  }

  history(id: string): TransitionRecord[] {
    if (!this.opts.store.get(id)) throw new SessionNotFoundError(id);
    return this.opts.store.history(id);
  }

  /** Number of actors held in memory (non-stopped sessions). */
  get actorCount(): number {
    return this.entries.size;
  }

  /** Waits for queued commands, then closes the runner without changing any session's status. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.queue.idle();
      await this.opts.runner.close();
      for (const { actor } of this.entries.values()) actor?.stop();
      this.entries.clear();
    })();
    return this.closing;
  }

  private command(id: string, name: Exclude<CommandName, 'start'>, reason: string | undefined, ctx: CommandContext): Promise<SessionView> {
    return this.queue.run(id, () =>
      this.once(ctx, name, id, (recorded) => {
        const at = this.now().toISOString();
        const event: SessionEvent =
          name === 'pause' ? { type: 'PAUSE', at, ...(reason ? { reason } : {}) }
          : name === 'stop' ? { type: 'STOP', at, ...(reason ? { reason } : {}) }
          : { type: 'RESUME', at };
        return this.applyLocked(id, name, event, ctx, recorded);
      }),
    );
  }

  private internal(id: string, event: SessionEvent, source: string): Promise<SessionView | undefined> {
    return this.queue.run(id, async () => {
      const entry = this.entries.get(id);
      if (!entry || !this.actorOf(entry).getSnapshot().can(event)) return undefined;
      return this.applyLocked(id, event.type.toLowerCase(), event, { source }, { done: true });
    });
  }

  /** Must run inside the session's queue slot. */
  private async applyLocked(id: string, commandName: string, event: SessionEvent, ctx: CommandContext, recorded: Recorded): Promise<SessionView> {
    const entry = this.entries.get(id);
    if (!entry) {
      const stored = this.opts.store.get(id);
      if (!stored) throw new SessionNotFoundError(id);
      throw new InvalidTransitionError(id, stored.session.status, commandName);
    }
    const actor = this.actorOf(entry);
    const before = actor.getSnapshot();
    if (!before.can(event)) throw new InvalidTransitionError(id, entry.session.status, commandName);
    // The actor computes the next snapshot; nothing is acted on until it is committed, and a failed
    // commit puts the actor back where it was.
    actor.send(event);
    const next = actor.getSnapshot();
    const to = String(next.value) as SessionStatus;
    const c = next.context;
    const session: Session = {
      ...entry.session,
      status: to,
      startedAt: c.startedAt,
      stoppedAt: c.stoppedAt,
      stopReason: c.stopReason,
      error: c.error,
      updatedAt: c.updatedAt,
    };
    const view = toSessionView(session);
    const reason = 'reason' in event ? event.reason : 'error' in event ? event.error : undefined;
    const command: CommandRecord | undefined =
      !recorded.done && ctx.commandId
        ? { id: ctx.commandId, name: commandName, sessionId: id, outcome: 'ok', result: view, appliedAt: c.updatedAt }
        : undefined;
    let record: TransitionRecord;
    try {
      record = await this.writer.write({
        session,
        snapshot: actor.getPersistedSnapshot(),
        transition: { sessionId: id, from: entry.session.status, to, event: event.type, commandId: ctx.commandId, source: ctx.source ?? 'command', reason, at: c.updatedAt },
        command,
      });
    } catch (err) {
      actor.stop();
      entry.actor = this.createSessionActor(id, entry.session.createdAt, sessionMachine.getPersistedSnapshot(before));
      throw err;
    }
    if (command) recorded.done = true;
    // Written; now act.
    if (to === 'stopped') {
      actor.stop();
      this.entries.delete(id);
    } else {
      entry.session = session;
    }
    this.opts.onTransition?.({ session: view, transition: record });
    const runner = this.opts.runner;
    const effect =
      event.type === 'START' ? () => runner.start(session)
      : event.type === 'RESUME' ? () => runner.resume(session)
      : to === 'paused' ? () => runner.pause(session)
      : () => runner.stop(session);
    await this.sideEffect(session, effect);
    return view;
  }

  private async sideEffect(session: Session, effect: () => Promise<void>): Promise<void> {
    try {
      await effect();
    } catch (err) {
      // SQLite cannot write: the runner holds and comes back by itself; nothing failed.
      if (this.opts.runner.holdForStorage?.(session.id, err)) return;
      // A runner that cannot even start fails its session, not the command that was already committed.
      if (session.status !== 'stopped') void this.handleRunnerFailure(session.id, toSessiondError(err).message);
    }
  }

  private once<T>(ctx: CommandContext, name: string, sessionId: string | undefined, fn: (recorded: Recorded) => Promise<T>): Promise<T> {
    return exactlyOnce(this.opts.commands, { id: ctx.commandId, name, sessionId }, this.now, fn);
  }

  private rejectEarly<T>(ctx: CommandContext, name: string, error: SessiondError): Promise<T> {
    if (ctx.commandId) {
      const prior = this.opts.commands.get(ctx.commandId);
      if (prior) {
        try {
          return Promise.resolve(replayOutcome(prior) as T);
        } catch (e) {
          return Promise.reject(e);
        }
      }
      recordFailure(this.opts.commands, { id: ctx.commandId, name }, error, this.now);
    }
    return Promise.reject(error);
  }

  /** The session's actor; a recovered session's is made now from its persisted snapshot, checked against its row. */
  private actorOf(entry: Entry): SessionActor {
    if (entry.actor === undefined) {
      const { session } = entry;
      const snapshot = this.opts.store.get(session.id)?.snapshot;
      checkRestorable(session, snapshot);
      entry.actor = this.createSessionActor(session.id, session.createdAt, snapshot);
    }
    return entry.actor;
  }

  private createSessionActor(sessionId: string, at: string, snapshot?: unknown): SessionActor {
    const actor = createActor(sessionMachine, {
      input: { sessionId, at },
      ...(snapshot ? { snapshot: snapshot as never } : {}),
      ...(this.opts.inspect ? { inspect: this.opts.inspect } : {}),
    });
    actor.start();
    return actor;
  }

  /** Seconds the session spent in `running`, from its transition history. */
  private runningSeconds(id: string): number {
    let total = 0;
    let since: number | undefined;
    for (const t of this.opts.store.history(id)) {
      const at = Date.parse(t.at);
      if (t.to === 'running' && since === undefined) since = at;
      else if (t.to !== 'running' && since !== undefined) {
        total += at - since;
        since = undefined;
      }
    }
    if (since !== undefined) total += this.now().getTime() - since;
    return total / 1000;
  }
}


