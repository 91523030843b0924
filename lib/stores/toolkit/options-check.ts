import { SessionConfigError } from '../../session.errors.js';
import { storeConfigProblems } from '../../session.options.js';
import type { StoreConfig } from '../store-config.js';

/**
 * Refuses a store's options with the SessionConfigError the module would give for the same
 * `store` option, so a store built directly (`new RedisStore({...})`) fails as one configured
 * through the module does, before it touches a client, a pool or a directory.
 */
export function checkStoreOptions(config: StoreConfig): void {
  const problems = storeConfigProblems(config);
  if (problems.length > 0) throw new SessionConfigError(problems);
}
