export { SessionModule } from './session.module.js';
export { SESSION_ASYNC_OPTIONS_TYPE, SESSION_OPTIONS_TYPE } from './session.module-definition.js';
export type { SessionModuleExtras } from './session.module-definition.js';
export { SessionCookieOptions, SessionMetricsOptions, SessionModuleOptions, resolveSessionOptions } from './session.options.js';
export type {
  MetricsRegistry,
  OnMaxSessions,
  ResolvedMetricsOptions,
  ResolvedSessionOptions,
  SessionTokenFormat,
  SessionTransport,
} from './session.options.js';
export { SessionLegacyCookieOptions, SessionLegacyOptions } from './legacy/legacy-options.js';
export type { LegacyStoreType, ResolvedLegacyOptions } from './legacy/legacy-options.js';
export { SESSION_TOKEN_HEADER } from './transports/index.js';
export { parseDuration } from './session.validation.js';
export type { Duration } from './session.validation.js';
export { AllowAnonymous, Session } from './session.decorators.js';
export { SessionGuard } from './session.guard.js';
export { SessionService } from './session.service.js';
export type { UserSessionView } from './session.service.js';
export { SessionEvents } from './session.events.js';
export type { SessionEvent, SessionEventListener, SessionEventType } from './session.events.js';
export { SessionHealthIndicator } from './session.health.js';
export type { SessionHealthDetails, SessionHealthResult } from './session.health.js';
export { SESSION_METRIC_NAMES } from './session.metrics.js';
export { SessionMiddleware } from './pipeline/index.js';
export type { RegenerateOptions, SessionCallback, SessionData, SessionMethods, SessionObject } from './pipeline/index.js';
export {
  ALLOW_ANONYMOUS_KEY,
  InjectSessionOptions,
  InjectSessionStore,
  MAX_SESSION_FIELDS,
  RESERVED_FIELDS,
  SESSION_OPTIONS,
} from './session.constants.js';
export {
  SessionConfigError,
  SessionError,
  SessionFieldNotJsonError,
  SessionFieldNotStorableError,
  SessionInternalError,
  SessionLimitReachedError,
  SessionNotSignedInError,
  SessionReservedFieldError,
  SessionStoreUnavailableError,
  SessionStoreUnsupportedError,
  SessionTooLargeError,
  SessionTooManyFieldsError,
  SessionUserIdInvalidError,
} from './session.errors.js';
// From their own files, not crypto/index: its declarations reach jose's types, which an
// application without jose (an optional peer) could not resolve in its type check.
export { generateSessionId, isSessionId, hashSessionId } from './crypto/session-id.js';
export { SessionIdSigner } from './crypto/signer.js';
export { sessionJwtKey } from './crypto/keys.js';
export {
  CookieStore,
  CookieStoreConfig,
  createSessionStore,
  FileStore,
  FileStoreConfig,
  MAX_CREDENTIAL_BYTES,
  MemoryStore,
  MemoryStoreConfig,
  PostgresStore,
  PostgresStoreConfig,
  RedisStore,
  RedisStoreConfig,
  SessionStore,
  sessionTableDdl,
} from './stores/index.js';
export { assertUserIdKeepable } from './stores/session-store.js';
export type {
  CookieStoreOptions,
  ExpiredSession,
  ExpiryListener,
  FileStoreOptions,
  MemoryStoreOptions,
  PostgresPool,
  PostgresStoreOptions,
  RedisClient,
  RedisEndpoint,
  RedisStoreOptions,
  SessionChange,
  SessionClient,
  SessionFields,
  SessionFieldValue,
  SessionSummary,
  StoreConnection,
  StoredSession,
  StoreConfig,
} from './stores/index.js';
