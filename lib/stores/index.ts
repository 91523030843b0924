import { MemoryStore } from './memory.store.js';
import { SessionStore } from './session-store.js';
import type { StoreConfig } from './store-config.js';

export { SessionStore } from './session-store.js';
export type { SessionChange, SessionFields, SessionFieldValue, SessionSummary, StoredSession } from './session-store.js';
export { MemoryStore } from './memory.store.js';
export type { MemoryStoreOptions } from './memory.store.js';
export { MemoryStoreConfig } from './store-config.js';
export type { StoreConfig } from './store-config.js';

/**
 * Turns a store config object into a store (or passes a store instance through). The module
 * calls it once at start-up; being a plain function, it can also be used and tested on its own.
 *
 * @example
 * ```ts
 * const store = createSessionStore({ type: 'memory', maxSessions: 10_000 });
 * ```
 */
export function createSessionStore(config: StoreConfig | SessionStore): SessionStore {
  if (config instanceof SessionStore) return config;
  switch (config.type) {
    case 'memory':
      return new MemoryStore({ maxSessions: config.maxSessions, sweepInterval: config.sweepInterval });
  }
}
