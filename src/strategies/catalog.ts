import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StrategyNotFoundError, ValidationError } from '../domain/errors.js';
import { buyAndHold } from './buy-and-hold.js';
import { rsiMeanReversion } from './rsi-mean-reversion.js';
import { smaCrossover } from './sma-crossover.js';
import {
  isStrategyDefinition,
  parseStrategyParams,
  type AnyStrategyDefinition,
  type StrategyParams,
} from './strategy-api.js';

/** The strategies every daemon has, in listing order. */
export const BUILT_IN_STRATEGIES: readonly AnyStrategyDefinition[] = Object.freeze([
  smaCrossover,
  rsiMeanReversion,
  buyAndHold,
]);

/** Where a catalog entry came from: `built-in` or the absolute path of its module. */
export interface StrategyInfo {
  id: string;
  name: string;
  source: string;
}

/** A strategy reference checked against the catalog, params validated with defaults applied. */
export interface ResolvedStrategy {
  id: string;
  name: string;
  params: StrategyParams;
}

export interface StrategyCatalogOptions {
  /**
   * Paths of user strategy modules, each exporting `strategy`. Relative paths resolve against
   * the working directory.
   * @defaultValue `[]`
   */
  modulePaths?: string[];
}

interface Entry {
  definition: AnyStrategyDefinition;
  source: string;
}

/** Absolute form of user module paths, so the main thread and workers load the same files. */
export function resolveModulePaths(modulePaths: readonly string[]): string[] {
  return modulePaths.map((p) => (isAbsolute(p) ? p : resolvePath(process.cwd(), p)));
}

/**
 * Loads the built-in strategies plus the user modules at `modulePaths`, keyed by id.
 * Shared by the catalog (main thread) and the strategy worker.
 * @throws ValidationError when a module cannot be imported, has no valid `strategy` export,
 * or reuses an id.
 */
export async function loadStrategyDefinitions(
  modulePaths: readonly string[],
): Promise<Map<string, { definition: AnyStrategyDefinition; source: string }>> {
  const entries = new Map<string, Entry>();
  for (const definition of BUILT_IN_STRATEGIES) entries.set(definition.id, { definition, source: 'built-in' });
  for (const path of resolveModulePaths(modulePaths)) {
    let mod: { strategy?: unknown };
    try {
      mod = (await import(pathToFileURL(path).href)) as { strategy?: unknown };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ValidationError(`strategy module ${path} could not be loaded: ${reason}`);
    }
    if (!isStrategyDefinition(mod.strategy)) {
      throw new ValidationError(
        `strategy module ${path} must export \`strategy\` with id, name, paramsSchema, initialState and step`,
      );
    }
    const existing = entries.get(mod.strategy.id);
    if (existing !== undefined) {
      throw new ValidationError(
        `strategy module ${path} defines id ${mod.strategy.id}, already defined by ${existing.source}`,
      );
    }
    entries.set(mod.strategy.id, { definition: mod.strategy, source: path });
  }
  return entries;
}

/**
 * The strategies this daemon can run (main thread). Built-ins are available at once;
 * `load()` adds the user modules.
 *
 * @example
 * const catalog = new StrategyCatalog({ modulePaths: ['./strategies/my-strategy.js'] });
 * await catalog.load();
 * const { id, params } = catalog.resolve('sma-crossover', { fast: 3 });
 */
export class StrategyCatalog {
  readonly modulePaths: readonly string[];
  #entries = new Map<string, Entry>();
  #loading: Promise<void> | undefined;

  constructor(options: StrategyCatalogOptions = {}) {
    const modulePaths = options.modulePaths ?? [];
    if (!Array.isArray(modulePaths) || modulePaths.some((p) => typeof p !== 'string' || p.length === 0)) {
      throw new ValidationError('options.modulePaths must be an array of non-empty strings');
    }
    this.modulePaths = Object.freeze(resolveModulePaths(modulePaths));
    for (const definition of BUILT_IN_STRATEGIES) this.#entries.set(definition.id, { definition, source: 'built-in' });
  }

  /** Imports the user modules. Idempotent: a second call waits on the first. */
  load(): Promise<void> {
    this.#loading ??= loadStrategyDefinitions(this.modulePaths).then((entries) => {
      this.#entries = entries;
    });
    return this.#loading;
  }

  /** True when `id` names a known strategy. */
  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** Every known strategy, built-ins first. */
  list(): StrategyInfo[] {
    return [...this.#entries.values()].map(({ definition, source }) => ({
      id: definition.id,
      name: definition.name,
      source,
    }));
  }

  /**
   * The definition of `id`, to run steps in the main thread (backtests, benchmarks).
   * @throws StrategyNotFoundError for an unknown id.
   */
  get(id: string): AnyStrategyDefinition {
    const entry = this.#entries.get(id);
    if (entry === undefined) throw new StrategyNotFoundError(id);
    return entry.definition;
  }

  /**
   * Checks a strategy reference: known id, valid params (defaults applied).
   * @throws StrategyNotFoundError for an unknown id; ValidationError naming the bad param.
   */
  resolve(id: string, params?: Record<string, unknown>): ResolvedStrategy {
    const definition = this.get(id);
    return { id: definition.id, name: definition.name, params: parseStrategyParams(definition, params ?? {}) };
  }
}
