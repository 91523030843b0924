/**
 * The options users write, one class each for the module, its cookie and its metrics: every
 * option's type, JSDoc, class-validator rules and, in the `*_DEFAULTS` objects, its default value.
 * session.options.ts validates them and applies the defaults.
 */
import { IsBoolean, IsIn, IsOptional, Matches } from 'class-validator';
import type { LoggerService } from '@nestjs/common';
import { SessionMessages } from './session.errors.js';
import { encryptionKeysProblem, isEncryptionKeys } from './crypto/encryption-keys.js';
import { isSecret, secretProblem } from './crypto/secrets.js';
import { isLogger, isRegistry, isStore, isUserKey, storeProblem } from './session.options-rules.js';
import {
  IsCookieDomain,
  IsCookieName,
  IsCookiePath,
  IsDuration,
  isPlainObject,
  IsPositiveInteger,
  message,
  parseDuration,
  PATH,
  Rule,
} from './session.validation.js';
import type { Duration } from './session.validation.js';
import type { SessionLegacyOptions } from './legacy/legacy-options.js';
import type { SessionStore } from './stores/session-store.js';
import type { StoreConfig } from './stores/store-config.js';

const TRANSPORTS = ['cookie', 'header', 'both'] as const;
export type SessionTransport = (typeof TRANSPORTS)[number];

const TOKEN_FORMATS = ['signed-id', 'jwt'] as const;
export type SessionTokenFormat = (typeof TOKEN_FORMATS)[number];

const ON_MAX_SESSIONS = ['evict-oldest', 'reject'] as const;
export type OnMaxSessions = (typeof ON_MAX_SESSIONS)[number];

/** What may start a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** The session cookie. */
export class SessionCookieOptions {
  /** Cookie name. @default 'sid' */
  @IsCookieName()
  name?: string;

  /** @default '/' */
  @IsCookiePath()
  path?: string;

  /** Keeps the cookie out of reach of page scripts. @default true */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  httpOnly?: boolean;

  /**
   * `'auto'` marks the cookie Secure when the request came over HTTPS, as the platform sees it
   * (behind a TLS-terminating proxy, set Express's `trust proxy` or Fastify's `trustProxy`).
   * @default 'auto'
   */
  @IsOptional()
  @IsIn([true, false, 'auto'], message((v) => SessionMessages.oneOf(PATH, v, [true, false, 'auto'])))
  secure?: boolean | 'auto';

  /** `'none'` needs `secure: true`. @default 'lax' */
  @IsOptional()
  @IsIn(['lax', 'strict', 'none'], message((v) => SessionMessages.oneOf(PATH, v, ['lax', 'strict', 'none'])))
  sameSite?: 'lax' | 'strict' | 'none';

  /** @default undefined (the host that set it) */
  @IsCookieDomain()
  domain?: string;

  /** CHIPS partitioned cookie; needs `secure: true`. @default false */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  partitioned?: boolean;

  /**
   * Lifetime of the cookie in the browser. Unset: a browser-session cookie, while the server
   * enforces the idle and absolute timeouts. When set, the cookie is re-sent whenever the
   * session's expiry is extended.
   * @default undefined
   */
  @IsOptional()
  @IsDuration()
  maxAge?: Duration;
}

/**
 * A prom-client `Registry` (`new Registry()`, or prom-client's `register`), by the members the
 * module uses and the options validation checks. Not prom-client's own type, so that the
 * published declarations import nothing an application may not have installed (see
 * stores/driver-types.ts).
 */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  registerMetric(metric: unknown): void;
  getSingleMetric(name: string): unknown;
}

/**
 * Prometheus metrics of the module (`metrics: { … }`). `prom-client` must be installed.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * SessionModule.forRoot({ secret, metrics: { registry: new Registry(), prefix: 'shop_session_' } })
 * ```
 */
export class SessionMetricsOptions {
  /**
   * Where the metrics are registered. Apps in one process that share a registry share its
   * session metrics (the same counters, summed); give each app its own registry to tell them apart.
   * @default prom-client's default registry (`register`)
   */
  @IsOptional()
  @Rule('isRegistry', isRegistry, (v) => SessionMessages.metricsRegistry(v))
  registry?: MetricsRegistry;

  /** Starts the name of every metric: `<prefix>created_total`… @default 'session_' */
  @IsOptional()
  @Matches(METRIC_PREFIX, message(SessionMessages.metricsPrefix))
  prefix?: string;
}

/**
 * Options of `SessionModule.forRoot()` / `forRootAsync()`, validated when the module starts.
 *
 * @example
 * ```ts
 * SessionModule.forRoot({ secret: process.env.SESSION_SECRET!, idleTimeout: '20m' })
 * ```
 */
export class SessionModuleOptions {
  /**
   * Signs session ids: a string of at least 32 characters, or several for rotation (the first
   * signs, all verify).
   */
  @Rule('isSecret', isSecret, secretProblem)
  secret!: string | string[];

  /** A store config object, or an instance of a class extending {@link SessionStore}. @default { type: 'memory' } */
  @IsOptional()
  @Rule('isStore', isStore, storeProblem)
  store?: StoreConfig | SessionStore;

  /** The session cookie's attributes, each with its own default. @default {} */
  @IsOptional()
  @Rule('isObject', isPlainObject, (v) => SessionMessages.objectOption(PATH, "{ name: 'sid' }", v))
  cookie?: SessionCookieOptions;

  /**
   * Where the signed id travels: `'cookie'`; `'header'` (`Authorization: Bearer <token>` in,
   * `X-Session-Token` out); or `'both'`, where a request's Authorization header wins over its
   * cookie and a new token is sent both ways.
   * @default 'cookie'
   */
  @IsOptional()
  @IsIn(TRANSPORTS, message((v) => SessionMessages.oneOf(PATH, v, TRANSPORTS)))
  transport?: SessionTransport;

  /**
   * How header tokens are written: `'signed-id'` (`id.signature`, opaque); or `'jwt'`, a signed
   * JWT (HS256; claims `sub` = the user, `sid`, `iat`, `exp`) for clients that read the claims.
   * A JWT still names a server-side session, looked up on every request, so a logout ends it.
   * Needs `transport: 'header' | 'both'` and a server-side store; cookies keep signed ids.
   * @default 'signed-id'
   */
  @IsOptional()
  @IsIn(TOKEN_FORMATS, message((v) => SessionMessages.oneOf(PATH, v, TOKEN_FORMATS)))
  tokenFormat?: SessionTokenFormat;

  /** Sliding expiry: a session unused this long is gone. @default '30m' */
  @IsOptional()
  @IsDuration()
  idleTimeout?: Duration;

  /** Hard limit from creation, whatever the activity; `false` disables it. @default '12h' */
  @IsOptional()
  @Rule('isDurationOrFalse', (v) => v === false || parseDuration(v) !== undefined, (v) => SessionMessages.durationOrFalse(PATH, v))
  absoluteTimeout?: Duration | false;

  /** An unmodified session refreshes its expiry in the store at most this often. @default idleTimeout / 10 */
  @IsOptional()
  @IsDuration(0)
  touchAfter?: Duration;

  /**
   * Longest wait for one store call; past it the request gets a 503 instead of hanging.
   * @default '3s'
   */
  @IsOptional()
  @IsDuration()
  storeTimeout?: Duration;

  /** Store (and send a cookie for) sessions nobody wrote to. @default false */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  saveUninitialized?: boolean;

  /**
   * `Cache-Control: no-store` on every response to a request whose session is signed in, reads
   * included, as OWASP advises: such a response may hold the user's data, and no browser or
   * shared cache should keep it. Responses that hand out a credential carry it regardless.
   * `false` leaves caching to the application.
   * @default true
   */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  noStoreWhenSignedIn?: boolean;

  /**
   * The data field naming the signed-in user: the guard and the per-user index read it. A dotted
   * path reads a nested field: `'passport.user'` is where Passport keeps its serialized user.
   * @default 'userId'
   */
  @IsOptional()
  @Rule('isUserKey', isUserKey, (v) => SessionMessages.userKey(v))
  userKey?: string;

  /**
   * Encrypts what a server-side store keeps at rest: each data field and the recorded client
   * with AES-256-GCM, bound to its session and field, and user ids in index keys and lock names
   * as a keyed token. Keys are 32 random bytes in base64url (`node -e "console.log(require('crypto')
   * .randomBytes(32).toString('base64url'))"`); the first encrypts, every one decrypts, and what
   * an older key encrypted is re-encrypted under the first when its session is next used. Not for
   * the cookie store, which seals whole sessions with keys derived from `secret`.
   * @default none (only session ids are hidden, by hashing)
   */
  @IsOptional()
  @Rule('isEncryptionKeys', isEncryptionKeys, encryptionKeysProblem)
  encryptionKeys?: string | string[];

  /**
   * Most live sessions one user may have, on all nodes together. A sign-in beyond it evicts the
   * user's oldest sessions, or is refused (`onMaxSessions`). Needs a store that lists a user's
   * sessions (not the cookie store).
   * @default unlimited
   */
  @IsOptional()
  @IsPositiveInteger()
  maxSessionsPerUser?: number;

  /**
   * What a sign-in beyond `maxSessionsPerUser` does: `'evict-oldest'` ends the user's oldest
   * sessions (by creation) to make room, never the one signing in; `'reject'` answers the sign-in
   * with 409 `SESSION_LIMIT_REACHED` and writes nothing, so the client keeps the session it had.
   * @default 'evict-oldest'
   */
  @IsOptional()
  @IsIn(ON_MAX_SESSIONS, message((v) => SessionMessages.oneOf(PATH, v, ON_MAX_SESSIONS)))
  onMaxSessions?: OnMaxSessions;

  /**
   * Record the user agent and IP address of the request that signs a session in, for
   * `SessionService.list()`. Off by default: they are personal data. The IP is the platform's
   * (`req.ip`: behind a proxy, set Express's `trust proxy` or Fastify's `trustProxy`).
   * @default false
   */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  recordClient?: boolean;

  /**
   * Where the module's warnings and errors go (a Nest `LoggerService`). Session ids never
   * appear in them, only their hashes. Unset, each part of the module makes its own
   * `new Logger('SessionModule')`, which follows the application's logger.
   * @default new Logger('SessionModule')
   */
  @IsOptional()
  @Rule('isLogger', isLogger, (v) => SessionMessages.logger(v))
  logger?: LoggerService;

  /**
   * Prometheus metrics through `prom-client` (an optional peer: install it to use this): sessions
   * created, rotated, destroyed and expired, and the latency and errors of store calls. `true`
   * registers them in prom-client's default registry; an object picks the registry and the name
   * prefix. Off, nothing is loaded and nothing is counted.
   * @default false
   */
  @IsOptional()
  @Rule('isMetrics', (v) => typeof v === 'boolean' || isPlainObject(v), (v) => SessionMessages.metricsOption(v))
  metrics?: boolean | SessionMetricsOptions;

  /**
   * The express-session deployment this application replaces (connect-redis or connect-pg-simple):
   * a request that brings its signed cookie and no credential of this module has its old session
   * moved into this module's store, under a new id, so that its user stays signed in across the
   * switch. See docs/migrating-from-express-session.md.
   * @default none (old sessions are not read)
   */
  @IsOptional()
  @Rule('isObject', isPlainObject, (v) => SessionMessages.objectOption(PATH, "{ store: 'connect-redis', secret: 'keyboard cat' }", v))
  legacy?: SessionLegacyOptions;
}

/**
 * The default values of an options class's fields, each of the type the field takes. A field
 * whose default is no value (unset, unlimited, derived from another option) has none here: its
 * JSDoc says what happens.
 */
export type OptionDefaults<Options> = { readonly [K in keyof Options]?: Exclude<Options[K], undefined> };

// Each default is written once, below; resolveSessionOptions() applies them and the types of the
// resolved options follow from them. A test holds them to the JSDoc above and to docs/options.md.

export const SESSION_OPTION_DEFAULTS = Object.freeze({
  store: { type: 'memory' },
  cookie: {},
  transport: 'cookie',
  tokenFormat: 'signed-id',
  idleTimeout: '30m',
  absoluteTimeout: '12h',
  storeTimeout: '3s',
  saveUninitialized: false,
  noStoreWhenSignedIn: true,
  userKey: 'userId',
  onMaxSessions: 'evict-oldest',
  recordClient: false,
  metrics: false,
} as const satisfies OptionDefaults<SessionModuleOptions>);

export const SESSION_COOKIE_DEFAULTS = Object.freeze({
  name: 'sid',
  path: '/',
  httpOnly: true,
  secure: 'auto',
  sameSite: 'lax',
  partitioned: false,
} as const satisfies OptionDefaults<SessionCookieOptions>);

export const SESSION_METRICS_DEFAULTS = Object.freeze({
  prefix: 'session_',
} as const satisfies OptionDefaults<SessionMetricsOptions>);
