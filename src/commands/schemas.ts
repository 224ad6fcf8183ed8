import { z } from 'zod';
import { IdSchema } from '../domain/id-schema.js';
import { LIMITS } from '../domain/limits.js';

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
  'get-command',
  'get-orders',
  'get-fills',
  'get-positions',
  'get-pnl',
  'get-history',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Commands that only read: no command record, no ordering constraint. */
export const READ_ONLY_COMMANDS = new Set<string>(['get-session', 'list-sessions', 'get-command', 'get-orders', 'get-fills', 'get-positions', 'get-pnl', 'get-history']);

/** The contract's job names: the only names the consumer handles (an own-property lookup, never a prototype's). */
export const KNOWN_COMMANDS: ReadonlySet<string> = new Set<string>(COMMAND_NAMES);

export const SessionCommandSchema = z
  .object({ sessionId: IdSchema, reason: z.string().max(LIMITS.reasonChars).optional() })
  .strict();

export const KillSwitchSchema = z
  .object({ liveOnly: z.boolean().default(false), reason: z.string().max(LIMITS.reasonChars).optional() })
  .strict();

export const ListSessionsSchema = z
  .object({
    activeOnly: z.boolean().default(false),
    status: z.enum(['created', 'running', 'paused', 'stopped']).optional(),
    kind: z.enum(['paper', 'live']).optional(),
  })
  .strict();

export const GetSessionSchema = z.object({ sessionId: IdSchema }).strict();

/** `get-command`: the recorded outcome of a command, from SQLite (it outlives Redis). */
export const GetCommandSchema = z.object({ commandId: IdSchema }).strict();

// The queue's names live in a module without zod, so the CLI loads no schema code.
export { DEFAULT_QUEUE_NAME, DEFAULT_QUEUE_PREFIX, liveChannel } from './queue-names.js';
