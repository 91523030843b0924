export { LegacyCookieVerifier } from './legacy-cookie.js';
export { LegacySessions } from './legacy-sessions.js';
export type { LegacyTake } from './legacy-sessions.js';
export { SessionLegacyCookieOptions, SessionLegacyOptions } from './legacy-options.js';
export type { LegacyStoreType, ResolvedLegacyOptions } from './legacy-options.js';
