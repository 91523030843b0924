import { SessionConfigError, SessionMessages } from '../session.errors.js';
import { CookieStore } from './cookie/index.js';
import { FileStore } from './file/index.js';
import { MemoryStore } from './memory/index.js';
import { PostgresStore } from './postgres/index.js';
import { RedisStore } from './redis/index.js';
import { SessionStore } from './session-store.js';
import type { StoreConfig } from './store-config.js';

export { SessionStore } from './session-store.js';
export type {
  ExpiredSession,
  ExpiryListener,
  SessionChange,
  SessionClient,
  SessionFields,
  SessionFieldValue,
  SessionSummary,
  StoreConnection,
  StoredSession,
} from './session-store.js';
export { MemoryStore } from './memory/index.js';
export type { MemoryStoreOptions } from './memory/index.js';
export { RedisStore } from './redis/index.js';
export type { RedisStoreOptions } from './redis/index.js';
export type { PostgresPool, RedisClient } from './driver-types.js';
export { PostgresStore, sessionTableDdl } from './postgres/index.js';
export type { PostgresStoreOptions } from './postgres/index.js';
export { FileStore } from './file/index.js';
export type { FileStoreOptions } from './file/index.js';
export { CookieStore, MAX_CREDENTIAL_BYTES } from './cookie/index.js';
export type { CookieStoreOptions } from './cookie/index.js';
export { STORE_TYPES, CookieStoreConfig, FileStoreConfig, MemoryStoreConfig, PostgresStoreConfig, RedisStoreConfig } from './store-config.js';
export type { RedisEndpoint, StoreConfig, StoreType } from './store-config.js';
export { sealedAtRest } from './sealed-at-rest.js';
// What the request pipeline shares with the stores (internal: lib/index.ts does not export them).
export { defineField, withKnownJson } from './toolkit/field-codec.js';
export { withinTime } from './toolkit/store-runtime.js';

/**
 * Turns a store config object into a store (or passes a store instance through). The module
 * calls it once at start-up; being a plain function, it can also be used and tested on its own.
 * Asynchronous because a store's driver (ioredis, pg, jose) is loaded only when that store is
 * chosen. The cookie store seals sessions with `secrets` (the module passes its own).
 *
 * @example
 * ```ts
 * const store = await createSessionStore({ type: 'redis', url: 'redis://127.0.0.1:6379' });
 * ```
 */
export async function createSessionStore(config: StoreConfig | SessionStore, secrets?: readonly string[]): Promise<SessionStore> {
  if (config instanceof SessionStore) return config;
  switch (config.type) {
    case 'memory':
      return new MemoryStore({ maxSessions: config.maxSessions, maxBytes: config.maxBytes, sweepInterval: config.sweepInterval });
    case 'redis':
      return RedisStore.fromConfig(config);
    case 'postgres':
      return PostgresStore.fromConfig(config);
    case 'file':
      return FileStore.fromConfig(config);
    case 'cookie':
      if (!secrets) throw new SessionConfigError([SessionMessages.cookieStoreSecret()]);
      return CookieStore.create({ secret: secrets });
  }
}
