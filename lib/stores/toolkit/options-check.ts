import { SessionConfigError } from '../../session.errors.js';
import { copyOptions, problemsOf } from '../../session.validation.js';
import { STORE_CONFIG_CLASSES } from '../store-config.js';
import type { StoreConfig } from '../store-config.js';

/**
 * What is wrong with a store config object, checked against its config class: the same check
 * whether the config comes through the module's options or a store is built directly.
 */
export function storeConfigProblems(config: StoreConfig): string[] {
  const ConfigClass = STORE_CONFIG_CLASSES[config.type];
  const problems: string[] = [];
  const instance = copyOptions(new ConfigClass(), config as object as Record<string, unknown>, 'store.', problems);
  return [...problems, ...problemsOf(instance, 'store.'), ...(ConfigClass.problems?.(instance) ?? [])];
}

/**
 * Refuses a store's options with the SessionConfigError the module would give for the same
 * `store` option, so a store built directly (`new RedisStore({...})`) fails as one configured
 * through the module does, before it touches a client, a pool or a directory.
 */
export function checkStoreOptions(config: StoreConfig): void {
  const problems = storeConfigProblems(config);
  if (problems.length > 0) throw new SessionConfigError(problems);
}
