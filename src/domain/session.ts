import { z } from 'zod';
import { IdSchema } from './id-schema.js';
import { boundedParams, LIMITS } from './limits.js';

export const SESSION_STATUSES = ['created', 'running', 'paused', 'stopped'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];
export type SessionKind = 'paper' | 'live';
export type ExecutionMode = 'auto' | 'confirm' | 'signal-only';

const positiveNumber = z.number().finite().positive();

export const RiskControlsSchema = z
  .object({
    maxOrderQty: positiveNumber.optional(),
    maxOrderNotional: positiveNumber.optional(),
    maxPositionQty: positiveNumber.optional(),
    maxOpenOrders: z.number().int().positive().optional(),
    maxDailyLoss: positiveNumber.optional(),
  })
  .strict();
export type RiskControls = z.infer<typeof RiskControlsSchema>;

export const StrategyRefSchema = z
  .object({
    id: IdSchema,
    name: z.string().min(1).max(256).optional(),
    params: boundedParams().optional(),
  })
  .strict();
export type StrategyRef = z.infer<typeof StrategyRefSchema>;

export const FeedConfigSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('synthetic'),
      seed: z.number().int().optional(),
      intervalMs: z.number().int().positive().optional(),
      startPrice: positiveNumber.optional(),
      volatility: positiveNumber.optional(),
      barsPerStep: z.number().int().positive().optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('replay'),
      file: z.string().min(1),
      speed: z.number().positive().optional(),
      barsPerStep: z.number().int().positive().optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('venue'),
      /** A timeframe of the session's broker (`1s` where the venue has it, `1m`, `5m`, `1h`, `1d`, ...). */
      timeframe: z.string().regex(/^[1-9]\d{0,3}[smhdwM]$/, 'a timeframe such as 1s, 1m, 5m, 1h or 1d'),
      /** A venue feed steps one bar time at a time. */
      barsPerStep: z.literal(1).optional(),
    })
    .strict(),
]);
export type FeedConfig = z.infer<typeof FeedConfigSchema>;

/** What a `start` command carries. */
export const SessionConfigSchema = z
  .object({
    id: IdSchema.optional(),
    kind: z.enum(['paper', 'live']),
    strategy: StrategyRefSchema,
    brokerId: z.string().min(1).max(128).default('paper'),
    accountId: z.string().min(1).max(128).default('default'),
    symbols: z.array(z.string().regex(/^[A-Za-z0-9._/-]{1,32}$/)).min(1).max(LIMITS.symbols),
    executionMode: z.enum(['auto', 'confirm', 'signal-only']).default('auto'),
    riskControls: RiskControlsSchema.default({}),
    feed: FeedConfigSchema.optional(),
    flattenOnStop: z.boolean().default(false),
  })
  .strict();
export type SessionConfigInput = z.input<typeof SessionConfigSchema>;
export type SessionConfig = z.output<typeof SessionConfigSchema>;

/** A trading session as the domain sees it (the row, minus the actor snapshot). */
export interface Session {
  id: string;
  kind: SessionKind;
  status: SessionStatus;
  strategy: StrategyRef;
  brokerId: string;
  accountId: string;
  symbols: string[];
  executionMode: ExecutionMode;
  riskControls: RiskControls;
  feed?: FeedConfig | undefined;
  flattenOnStop: boolean;
  /** Open positions by symbol (kept current by the runner). */
  positions: Record<string, unknown>;
  stopReason?: string | undefined;
  error?: string | undefined;
  createdAt: string;
  startedAt?: string | undefined;
  stoppedAt?: string | undefined;
  updatedAt: string;
}

/** The contract view: what commands return and the API shows. */
export interface SessionView {
  id: string;
  kind: SessionKind;
  status: SessionStatus;
  strategyId: string;
  strategyName: string;
  brokerId: string;
  accountId: string;
  symbols: string[];
  executionMode: ExecutionMode;
  riskControls: RiskControls;
  stopReason?: string;
  error?: string;
  createdAt: string;
  startedAt?: string;
  stoppedAt?: string;
  updatedAt: string;
}

export function toSessionView(s: Session): SessionView {
  const view: SessionView = {
    id: s.id,
    kind: s.kind,
    status: s.status,
    strategyId: s.strategy.id,
    strategyName: s.strategy.name ?? s.strategy.id,
    brokerId: s.brokerId,
    accountId: s.accountId,
    symbols: [...s.symbols],
    executionMode: s.executionMode,
    riskControls: { ...s.riskControls },
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
  if (s.stopReason !== undefined) view.stopReason = s.stopReason;
  if (s.error !== undefined) view.error = s.error;
  if (s.startedAt !== undefined) view.startedAt = s.startedAt;
  if (s.stoppedAt !== undefined) view.stoppedAt = s.stoppedAt;
  return view;
}

export function isActive(status: SessionStatus): boolean {
  return status === 'running' || status === 'paused';
}
