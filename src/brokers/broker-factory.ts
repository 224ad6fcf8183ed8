import type { Db } from '../persistence/database.js';
import { AlpacaVenueClient } from './alpaca/alpaca-client.js';
import { credential, type BrokerConfig, type BrokersConfig } from './broker-config.js';
import { CcxtVenueClient, createCcxtExchange } from './ccxt/ccxt-client.js';
import { VenueBroker, type VenueBrokerLogger } from './venue/venue-broker.js';
import type { VenueClient } from './venue/venue-client.js';
import { SqliteVenueOrderStore } from './venue/venue-order-store.js';

/** The venue client of one broker definition, credentials read from the environment. */
export function createVenueClient(id: string, b: BrokerConfig, env: NodeJS.ProcessEnv = process.env): VenueClient {
  if (b.type === 'ccxt') {
    return new CcxtVenueClient(
      createCcxtExchange({
        exchange: b.exchange,
        sandbox: b.sandbox,
        apiKey: credential(env, id, b.apiKeyEnv),
        secret: credential(env, id, b.secretEnv),
        password: b.passwordEnv !== undefined ? credential(env, id, b.passwordEnv) : undefined,
        options: b.options,
        urls: b.urls,
        timeoutMs: b.timeoutMs,
      }),
    );
  }
  return new AlpacaVenueClient({
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
export function createVenueBrokers(brokers: BrokersConfig, db: Db, o: { env?: NodeJS.ProcessEnv; logger?: VenueBrokerLogger } = {}): VenueBroker[] {
  const store = new SqliteVenueOrderStore(db);
  return Object.entries(brokers).map(
    ([id, b]) => new VenueBroker(id, createVenueClient(id, b, o.env ?? process.env), store, { clientIdPrefix: b.clientIdPrefix, logger: o.logger }),
  );
}
