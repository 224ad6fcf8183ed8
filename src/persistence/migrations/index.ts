import { migration001 } from './001-sessions.js';
import { migration002 } from './002-trading.js';
import { migration003 } from './003-runners.js';
import { migration004 } from './004-command-sequence.js';
import { migration006 } from './006-backtest-provenance.js';
import { migration007 } from './007-venues.js';
import { migration008 } from './008-feed-checkpoint.js';
import { migration010 } from './010-webhook-outbox.js';
import { migration011 } from './011-open-orders-index.js';
import { migration012 } from './012-commands-rowid.js';
import { migration013 } from './013-order-status-history.js';
import type { Migration } from './types.js';

export type { Migration } from './types.js';

/** Every schema migration, in version order. Add new ones at the end; never edit a shipped one. */
export const MIGRATIONS: readonly Migration[] = [migration001, migration002, migration003, migration004, migration006, migration007, migration008, migration010, migration011, migration012, migration013];
