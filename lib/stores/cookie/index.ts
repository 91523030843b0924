export { CookieStore, MAX_CREDENTIAL_BYTES } from './cookie.store.js';
export type { CookieStoreOptions } from './cookie.store.js';
