import { PaperBroker, type PaperBrokerOptions } from '../brokers/paper-broker.js';
import type { BacktestMetrics } from '../domain/backtest.js';
import { buildBook, type BookOrder } from '../domain/book.js';
import { ValidationError } from '../domain/errors.js';
import type { Fill, Order, Position } from '../domain/order.js';
import { periodsPerYearOf } from '../domain/equity-curve.js';
import { applyFill, markPosition, performanceMetrics, totalPnl, tradeCounts, utcDayStart } from '../domain/pnl.js';
import { checkOrderRisk } from '../domain/risk.js';
import type { RiskControls } from '../domain/session.js';
import type { Feed } from '../market-data/feed.js';
import { openDatabase } from '../persistence/database.js';
import type { EquityPoint } from '../persistence/runner-state-repository.js';
import { parseStrategyParams, runStrategyStep, type AnyStrategyDefinition, type JsonValue, type StepResult } from '../strategies/strategy-api.js';
import { clientOrderIdOf } from './order-router.js';
import type { EvaluateRequest, EvaluateResponse } from './strategy-pool.js';

export interface BacktestRunOptions {
  strategy: AnyStrategyDefinition;
  /** Validated with the strategy's schema (defaults applied). @defaultValue {} */
  params?: Record<string, unknown>;
  /** Bars to run over; build it with `createFeed(config, symbols, { accelerated: true })`. */
  feed: Feed;
  /** Steps to run at most; required for a synthetic feed (it never ends). */
  maxSteps?: number;
  /** The simulated broker's costs and starting cash (as the daemon's config.paperBroker). */
  paperBroker?: Omit<PaperBrokerOptions, 'id' | 'now'>;
  /** Checked before every order, as in a session; a refused order is recorded as rejected. @defaultValue {} */
  riskControls?: RiskControls;
  /**
   * Runs the steps through this pool (worker threads: a throwing or hanging strategy fails the backtest
   * instead of the daemon) instead of the main thread. StrategyPool fits.
   */
  pool?: { evaluate(request: EvaluateRequest): Promise<EvaluateResponse> };
  /**
   * Steps per year for `sharpeAnnualized`. @defaultValue a 365-day year over the median time between steps
   */
  periodsPerYear?: number;
  /** Prefix of client order ids. @defaultValue 'backtest' */
  id?: string;
}

export interface BacktestRunResult {
  dataRef: string;
  steps: number;
  bars: number;
  initialCash: number;
  /** The equity curve (equity-curve.ts): one point per step, positions marked at the closes, at its last bar time. */
  equity: EquityPoint[];
  /** Every order, oldest first; refused ones have status `rejected` and a `RISK_LIMIT: ...` reason. */
  orders: Order[];
  fills: Fill[];
  /** Every symbol traded, flat ones included (they carry realized PnL). */
  positions: Position[];
  trades: number;
  metrics: BacktestMetrics;
  /**
   * Bar time (epoch ms) of the step whose equity reached 0 or less (only shorts can: paperBroker.allowShort).
   * The run stops there, as a session is paused there: the metrics cover the curve up to that point.
   */
  equityExhaustedAt?: number;
}

/**
 * Runs a strategy over a feed with a paper broker (in an in-memory SQLite database), the same way a paper
 * session trades: each bar goes to the broker first (fills of earlier orders at its open), then the strategy
 * steps, then its signals pass the risk controls and become market/limit orders that fill on later bars.
 * Returns the equity curve, orders, fills and the metrics `record-backtest` takes.
 *
 * @example
 * const catalog = new StrategyCatalog();
 * const feed = createFeed({ type: 'replay', file: 'bars.csv' }, ['AAPL'], { accelerated: true });
 * const r = await runBacktest({ strategy: catalog.get('sma-crossover'), params: { fast: 5, slow: 20 }, feed });
 * await manager.recordBacktest({ strategyId: 'sma-crossover', params: r.params, dataRef: r.dataRef, metrics: r.metrics });
 */
export async function runBacktest(options: BacktestRunOptions): Promise<BacktestRunResult & { params: Record<string, unknown> }> {
  const { strategy, feed } = options;
  const maxSteps = options.maxSteps ?? (Number.isFinite(feed.length) ? Infinity : undefined);
  if (maxSteps === undefined) throw new ValidationError('options.maxSteps is required for a feed without an end (synthetic)');
  if (maxSteps !== Infinity && !(Number.isInteger(maxSteps) && maxSteps > 0)) throw new ValidationError('options.maxSteps must be a positive integer');
  const params = parseStrategyParams(strategy, options.params ?? {});
  const id = options.id ?? 'backtest';
  const controls = options.riskControls ?? {};
  const db = openDatabase(':memory:');
  try {
    const broker = new PaperBroker(db, { ...options.paperBroker, now: () => new Date(0) });
    const initialCash = broker.settings.initialCash;
    const positions = new Map<string, Position>();
    const lastPrice = new Map<string, number>();
    const fills: Fill[] = [];
    const refused: Order[] = [];
    const submitted = new Set<string>();
    const open = new Map<string, BookOrder>();
    const equity: EquityPoint[] = [];
    let state = strategy.initialState(params) as JsonValue;
    let steps = 0;
    let bars = 0;
    let exhaustedAt: number | undefined;
    let day = -Infinity;
    let dayStartPnl = 0;
    while (steps < maxSteps) {
      const batch = feed.next();
      if (batch === null || batch.length === 0) break;
      for (const bar of batch) {
        if (utcDayStart(bar.time) > day) {
          day = utcDayStart(bar.time);
          dayStartPnl = totalPnl([...positions.values()]);
        }
        for (const { order, fill } of await broker.onBar(bar, id)) {
          open.delete(order.clientOrderId);
          if (fill === undefined) continue; // ended without a fill (INSUFFICIENT_FUNDS at the fill price)
          fills.push(fill);
          positions.set(fill.symbol, applyFill(positions.get(fill.symbol), fill));
        }
        lastPrice.set(bar.symbol, bar.close);
        const p = positions.get(bar.symbol);
        // Flat positions too: their lastPrice is the last close (as in a session).
        if (p !== undefined) positions.set(bar.symbol, markPosition(p, bar.close));
      }
      bars += batch.length;
      // The book a session's step would see: fills at these bars' opens included.
      const book = buildBook({ initialEquity: initialCash, positions: positions.values(), lastPrices: Object.fromEntries(lastPrice), openOrders: [...open.values()] });
      const result: StepResult = options.pool
        ? await options.pool.evaluate({ sessionId: id, strategyId: strategy.id, params, state, bars: batch, book })
        : runStrategyStep(strategy, state, batch, params, book);
      state = result.state;
      const time = batch[batch.length - 1]!.time;
      for (const signal of result.signals) {
        const clientOrderId = clientOrderIdOf(id, signal.key);
        if (submitted.has(clientOrderId)) continue;
        const price = signal.type === 'limit' ? signal.limitPrice : lastPrice.get(signal.symbol);
        const order = {
          clientOrderId,
          sessionId: id,
          accountId: id,
          symbol: signal.symbol,
          side: signal.side,
          qty: signal.qty,
          type: signal.type,
          ...(signal.type === 'limit' && signal.limitPrice !== undefined ? { limitPrice: signal.limitPrice } : {}),
        };
        const verdict =
          price === undefined
            ? { ok: false as const, reason: `no price for ${signal.symbol}` }
            : checkOrderRisk({ symbol: signal.symbol, side: signal.side, qty: signal.qty, price }, controls, {
                positionQty: positions.get(signal.symbol)?.qty ?? 0,
                openOrders: open.size,
                dailyPnl: totalPnl([...positions.values()]) - dayStartPnl,
              });
        if (!verdict.ok) {
          const at = new Date(time).toISOString();
          refused.push({ ...order, brokerId: broker.id, status: 'rejected', filledQty: 0, reason: `RISK_LIMIT: ${verdict.reason}`, createdAt: at, updatedAt: at });
          continue;
        }
        const ack = await broker.submit(order);
        submitted.add(clientOrderId);
        if (ack.order.status === 'accepted') {
          open.set(clientOrderId, { clientOrderId, symbol: order.symbol, side: order.side, qty: order.qty, filledQty: 0, type: order.type, status: 'accepted', ...(order.limitPrice !== undefined ? { limitPrice: order.limitPrice } : {}) });
        }
      }
      const e = initialCash + totalPnl([...positions.values()]);
      equity.push({ at: time, equity: e });
      steps++;
      if (e <= 0) {
        exhaustedAt = time;
        break;
      }
    }
    const placed = (await Promise.all([...submitted].map((c) => broker.getOrder(c)))).filter((o): o is Order => o !== undefined);
    const counts = tradeCounts(fills);
    const trades = counts.closed + counts.open;
    let openPnl = 0;
    for (const p of positions.values()) if (p.qty !== 0) openPnl += p.unrealizedPnl;
    const curve = [initialCash, ...equity.map((e) => e.equity)];
    const perStep = performanceMetrics(curve, trades);
    const periodsPerYear = options.periodsPerYear ?? periodsPerYearOf(equity.map((e) => e.at));
    return {
      params,
      dataRef: feed.dataRef,
      steps,
      bars,
      initialCash,
      equity,
      orders: [...placed, ...refused],
      fills,
      positions: [...positions.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0)),
      trades,
      ...(exhaustedAt === undefined ? {} : { equityExhaustedAt: exhaustedAt }),
      metrics: {
        ...perStep,
        ...(periodsPerYear === undefined ? {} : { sharpeAnnualized: perStep.sharpe * Math.sqrt(periodsPerYear) }),
        openTrades: counts.open,
        openPnl,
      },
    };
  } finally {
    db.close();
  }
}
