import { ValidationError } from '../domain/errors.js';
import type { Session } from '../domain/session.js';
import { loadFeed, type Feed } from '../market-data/feed.js';
import { fnv1a } from '../market-data/synthetic-feed.js';
import type { RunnerStateRecord } from '../persistence/runner-state-repository.js';
import type { AnyStrategyDefinition, JsonValue, StrategyParams } from '../strategies/strategy-api.js';
import { feedConfigOf } from './feed-config.js';
import { message } from './runner-errors.js';
import type { ResolvedRunnerOptions } from './runner-options.js';
import { SessionRunner } from './session-runner.js';

/**
 * Builds a session's runner: its strategy, broker and feed, over its persisted record (a restore) or a fresh
 * one (a first start). The feed is positioned at the record's cursor.
 * `lenient`: a strategy that no longer resolves still gives a runner (it can cancel and flatten, not step).
 * @internal
 */
export async function buildRunner(
  o: ResolvedRunnerOptions,
  session: Session,
  record: RunnerStateRecord | undefined,
  opts: { lenient?: boolean } = {},
): Promise<SessionRunner> {
  let definition: AnyStrategyDefinition | undefined;
  let params: StrategyParams = session.strategy.params ?? {};
  try {
    const resolved = o.strategies.resolve(session.strategy.id, session.strategy.params);
    definition = o.strategies.get(resolved.id);
    params = resolved.params;
  } catch (err) {
    if (!opts.lenient) throw err;
  }
  const broker = o.brokers.get(session.brokerId);
  const config = feedConfigOf(session, o.defaultBarIntervalMs);
  const barMs = config.type === 'synthetic' ? config.intervalMs! : undefined;
  const now = Date.now();
  // A phase per session (from its id) inside the bar interval: sessions started together do not all
  // become due at the same instant, so load is smooth instead of one burst per interval.
  const startTime = record?.startTime ?? (barMs === undefined ? now : now - (fnv1a(session.id) % barMs));
  const feed: Feed = await loadFeed(config, session.symbols, { startTime, files: o.barFiles, venue: broker.bars, logger: o.logger });
  const at = o.now().toISOString();
  const rec: RunnerStateRecord = record ?? {
    sessionId: session.id,
    strategyId: session.strategy.id,
    state: (definition?.initialState(params) ?? null) as JsonValue,
    cursor: 0,
    startTime,
    steps: 0,
    lastPrices: {},
    dayStartPnl: 0,
    initialEquity: o.initialEquity,
    equity: o.initialEquity,
    peakEquity: o.initialEquity,
    maxDrawdownPct: 0,
    failures: 0,
    createdAt: at,
    updatedAt: at,
  };
  if (record === undefined && definition !== undefined) {
    // Checked once here; later states come back from the worker, which checks every step's result.
    const problem = describeState(rec.state);
    if (problem !== null) throw new ValidationError(`strategy ${session.strategy.id}: initial state ${problem}`);
  }
  if (record !== undefined) feed.seek(record.cursor, record.feedCheckpoint);
  return new SessionRunner(session, rec, feed, broker, definition, params, barMs, config.barsPerStep ?? 1);
}

function describeState(state: unknown): string | null {
  try {
    return JSON.stringify(JSON.parse(JSON.stringify(state))) === JSON.stringify(state) ? null : 'does not survive JSON';
  } catch (err) {
    return `is not JSON (${message(err)})`;
  }
}
