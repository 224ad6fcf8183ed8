import type { Session, SessionKind } from '../domain/session.js';
import { ValidationError } from '../domain/errors.js';
import type { PaperTradingSessionRepository, LiveTradingSessionRepository } from './ports.js';
import type { SqliteSessionStore } from './sqlite-session-store.js';

/** The seed's repository contract over the shared `sessions` table, scoped to one kind. */
class SqliteKindSessionRepository implements PaperTradingSessionRepository {
  constructor(
    private readonly store: SqliteSessionStore,
    private readonly kind: SessionKind,
  ) {}

  async save(session: Session): Promise<void> {
    if (session.kind !== this.kind) {
      throw new ValidationError(`session ${session.id} is ${session.kind}; this repository holds ${this.kind} sessions`);
    }
    this.store.upsert(session);
  }

  async getById(id: string): Promise<Session | null> {
    const found = this.store.get(id);
    return found && found.session.kind === this.kind ? found.session : null;
  }

  async getAll(): Promise<Session[]> {
    return this.store.list({ kind: this.kind });
  }

  async getActive(): Promise<Session[]> {
    return this.store.list({ kind: this.kind, status: ['running', 'paused'] });
  }

  async delete(id: string): Promise<boolean> {
    const found = this.store.get(id);
    if (!found || found.session.kind !== this.kind) return false;
    return this.store.delete(id);
  }
}

export class SqlitePaperTradingSessionRepository extends SqliteKindSessionRepository {
  constructor(store: SqliteSessionStore) {
    super(store, 'paper');
  }
}

export class SqliteLiveTradingSessionRepository extends SqliteKindSessionRepository implements LiveTradingSessionRepository {
  constructor(store: SqliteSessionStore) {
    super(store, 'live');
  }
}
