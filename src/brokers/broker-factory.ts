import type { Db } from '../persistence/database.js';
import { AlpacaVenueClient } from './alpaca/alpaca-client.js';
import { credential, type BrokerConfig, type BrokersConfig } from './broker-config.js';
import { CcxtVenueClient, createCcxtExchange, loadCcxt, type CcxtModule } from './ccxt/ccxt-client.js';
import { VenueBroker, type VenueBrokerLogger } from './venue/venue-broker.js';
import type { VenueClient } from './venue/venue-client.js';
import { SqliteVenueOrderStore } from './venue/venue-order-store.js';

/** The venue client of one broker definition, credentials read from the environment. */
export function createVenueClient(id: string, b: BrokerConfig, env: NodeJS.ProcessEnv, ccxt: CcxtModule | undefined): VenueClient {
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
      }),
      ccxt,
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
export async function createVenueBrokers(brokers: BrokersConfig, db: Db, o: { env?: NodeJS.ProcessEnv; logger?: VenueBrokerLogger } = {}): Promise<VenueBroker[]> {
  const store = new SqliteVenueOrderStore(db);
  const ccxt = Object.values(brokers).some((b) => b.type === 'ccxt') ? await loadCcxt() : undefined;
  return Object.entries(brokers).map(
    ([id, b]) => new VenueBroker(id, createVenueClient(id, b, o.env ?? process.env, ccxt), store, { clientIdPrefix: b.clientIdPrefix, logger: o.logger }),
  );
}
