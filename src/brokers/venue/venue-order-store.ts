import type { Db } from '../../persistence/database.js';

export interface VenueOrderRecord {
  clientOrderId: string;
  brokerId: string;
  venueClientOrderId: string;
  venueOrderId?: string | undefined;
  sessionId: string;
  symbol: string;
  createdAt: string;
}

interface Row {
  client_order_id: string;
  broker_id: string;
  venue_client_order_id: string;
  venue_order_id: string | null;
  session_id: string;
  symbol: string;
  created_at: string;
}

function fromRow(r: Row): VenueOrderRecord {
  return {
    clientOrderId: r.client_order_id,
    brokerId: r.broker_id,
    venueClientOrderId: r.venue_client_order_id,
    venueOrderId: r.venue_order_id ?? undefined,
    sessionId: r.session_id,
    symbol: r.symbol,
    createdAt: r.created_at,
  };
}

/** `venue_orders`: the id each order carries at its venue, beside the internal one (migration 007). */
export class SqliteVenueOrderStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(`
        INSERT INTO venue_orders (client_order_id, broker_id, venue_client_order_id, venue_order_id, session_id, symbol, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_order_id) DO NOTHING`),
      setVenueId: db.prepare('UPDATE venue_orders SET venue_order_id = ? WHERE client_order_id = ? AND venue_order_id IS NULL'),
      byClientId: db.prepare('SELECT * FROM venue_orders WHERE client_order_id = ?'),
      byVenueId: db.prepare('SELECT * FROM venue_orders WHERE broker_id = ? AND venue_client_order_id = ?'),
    };
  }

  /** Written before the order is sent: whatever reaches the venue can be looked up after a crash. */
  record(r: VenueOrderRecord): void {
    this.stmts.insert.run(r.clientOrderId, r.brokerId, r.venueClientOrderId, r.venueOrderId ?? null, r.sessionId, r.symbol, r.createdAt);
  }

  setVenueOrderId(clientOrderId: string, venueOrderId: string): void {
    this.stmts.setVenueId.run(venueOrderId, clientOrderId);
  }

  byClientId(clientOrderId: string): VenueOrderRecord | undefined {
    const r = this.stmts.byClientId.get(clientOrderId) as Row | undefined;
    return r === undefined ? undefined : fromRow(r);
  }

  byVenueClientId(brokerId: string, venueClientOrderId: string): VenueOrderRecord | undefined {
    const r = this.stmts.byVenueId.get(brokerId, venueClientOrderId) as Row | undefined;
    return r === undefined ? undefined : fromRow(r);
  }
}
