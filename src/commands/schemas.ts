import { z } from 'zod';

/** Job names of the `session-commands` queue: the contract other programs rely on. */
export const COMMAND_NAMES = [
  'start',
  'pause',
  'resume',
  'stop',
  'kill-switch',
  'record-backtest',
  'backtest',
  'approve-order',
  'reject-order',
  'get-session',
  'list-sessions',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Commands that only read: no command record, no ordering constraint. */
export const READ_ONLY_COMMANDS = new Set<string>(['get-session', 'list-sessions']);

export const SessionCommandSchema = z
  .object({ sessionId: z.string().min(1).max(128), reason: z.string().max(1000).optional() })
  .strict();

export const KillSwitchSchema = z
  .object({ liveOnly: z.boolean().default(false), reason: z.string().max(1000).optional() })
  .strict();

export const ListSessionsSchema = z
  .object({
    activeOnly: z.boolean().default(false),
    status: z.enum(['created', 'running', 'paused', 'stopped']).optional(),
    kind: z.enum(['paper', 'live']).optional(),
  })
  .strict();

export const GetSessionSchema = z.object({ sessionId: z.string().min(1).max(128) }).strict();

export const DEFAULT_QUEUE_NAME = 'session-commands';
export const DEFAULT_QUEUE_PREFIX = 'sessiond';
