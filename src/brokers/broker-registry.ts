import { BrokerNotFoundError, ValidationError } from '../domain/errors.js';
import type { Broker } from './broker.js';

export interface RegisterBrokerOptions {
  /** Replace a broker already registered under the same id. @defaultValue false */
  replace?: boolean;
}

/**
 * The brokers sessions can name by `brokerId`. The daemon always registers the paper broker as `paper`.
 * The registry does not own the brokers: whoever created them closes them.
 *
 * @example
 * const brokers = new BrokerRegistry().register(new PaperBroker(db));
 * brokers.get('paper'); // PaperBroker
 * brokers.get('ibkr');  // throws BROKER_NOT_FOUND: broker ibkr is not registered
 */
export class BrokerRegistry {
  private readonly brokers = new Map<string, Broker>();

  register(broker: Broker, options: RegisterBrokerOptions = {}): this {
    if (typeof broker.id !== 'string' || broker.id.length === 0) {
      throw new ValidationError('broker.id must be a non-empty string');
    }
    if (this.brokers.has(broker.id) && !(options.replace ?? false)) {
      throw new ValidationError(`broker ${broker.id} is already registered`);
    }
    this.brokers.set(broker.id, broker);
    return this;
  }

  /** Throws BROKER_NOT_FOUND for an id nobody registered. */
  get(id: string): Broker {
    const broker = this.brokers.get(id);
    if (broker === undefined) throw new BrokerNotFoundError(id);
    return broker;
  }

  has(id: string): boolean {
    return this.brokers.has(id);
  }

  /** Registered brokers in registration order. */
  list(): Broker[] {
    return [...this.brokers.values()];
  }

  ids(): string[] {
    return [...this.brokers.keys()];
  }

  unregister(id: string): boolean {
    return this.brokers.delete(id);
  }
}
