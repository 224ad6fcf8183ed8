import type { Db } from '../persistence/database.js';
import { credential, type BrokerConfig, type BrokersConfig } from './broker-config.js';
import { CcxtVenueClient, createCcxtExchange, loadCcxt, type CcxtModule } from './ccxt/ccxt-client.js';
import { VenueBroker, type VenueBrokerLogger } from './venue/venue-broker.js';
import type { VenueClient } from './venue/venue-client.js';
import { SqliteVenueOrderStore } from './venue/venue-order-store.js';

/** The Alpaca client module, imported only when an alpaca broker is configured (its SDK costs ~0.3 s to load). */
export type AlpacaModule = typeof import('./alpaca/alpaca-client.js');

/** The venue client of one broker definition, credentials read from the environment. */
export function createVenueClient(id: string, b: BrokerConfig, env: NodeJS.ProcessEnv, ccxt: CcxtModule | undefined, alpaca?: AlpacaModule): VenueClient {
  if (b.type === 'ccxt') {
    if (ccxt === undefined) throw new Error('createVenueClient: the ccxt module is not loaded');
    return new CcxtVenueClient(
      createCcxtExchange(ccxt, {
        exchange: b.exchange,
        sandbox: b.sandbox,
        apiKey: credential(env, id, b.apiKeyEnv),
        secret: credential(env, id, b.secretEnv),
        password: b.passwordEnv !== undefined ? credential(env, id, b.passwordEnv) : undefined,
        options: b.options,
        urls: b.urls,
        timeoutMs: b.timeoutMs,
        streams: b.streams,
        rateLimiter: b.rateLimiter,
      }),
      ccxt,
    );
  }
  if (alpaca === undefined) throw new Error('createVenueClient: the alpaca client module is not loaded');
  return new alpaca.AlpacaVenueClient({
    paper: b.paper,
    keyId: credential(env, id, b.keyIdEnv),
    secretKey: credential(env, id, b.secretKeyEnv),
    baseUrl: b.baseUrl,
    dataUrl: b.dataUrl,
    timeoutMs: b.timeoutMs,
    rateLimit: b.rateLimit,
  });
}

/** A VenueBroker per `brokers` entry. Throws MissingCredentialError naming the variable. */
export async function createVenueBrokers(brokers: BrokersConfig, db: Db, o: { env?: NodeJS.ProcessEnv; logger?: VenueBrokerLogger } = {}): Promise<VenueBroker[]> {
  const store = new SqliteVenueOrderStore(db);
  const ccxt = Object.values(brokers).some((b) => b.type === 'ccxt') ? await loadCcxt() : undefined;
  const alpaca = Object.values(brokers).some((b) => b.type === 'alpaca') ? await import('./alpaca/alpaca-client.js') : undefined;
  return Object.entries(brokers).map(
    ([id, b]) => new VenueBroker(id, createVenueClient(id, b, o.env ?? process.env, ccxt, alpaca), store, { clientIdPrefix: b.clientIdPrefix, logger: o.logger }),
  );
}
