import { IsBoolean, IsIn, IsOptional, IsString, Matches, MinLength, validateSync } from 'class-validator';
import type { ValidationError } from 'class-validator';
import type { LoggerService } from '@nestjs/common';
import { serialize as serializeCookie } from 'cookie';
import { SessionConfigError, SessionMessages } from './session.errors.js';
import { IsDuration, isPlainObject, IsPositiveInteger, message, parseDuration, PATH, Rule } from './session.validation.js';
import type { Duration } from './session.validation.js';
import { SessionStore } from './stores/session-store.js';
import { STORE_TYPES, STORE_CONFIG_CLASSES } from './stores/store-config.js';
import type { StoreConfig } from './stores/store-config.js';

const TRANSPORTS = ['cookie', 'header', 'both'] as const;
export type SessionTransport = (typeof TRANSPORTS)[number];

const TOKEN_FORMATS = ['signed-id', 'jwt'] as const;

const ON_MAX_SESSIONS = ['evict-oldest', 'reject'] as const;
export type OnMaxSessions = (typeof ON_MAX_SESSIONS)[number];
export type SessionTokenFormat = (typeof TOKEN_FORMATS)[number];

/** What may start a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** RFC 6265 token characters: what a cookie name may be made of. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The session cookie. */
export class SessionCookieOptions {
  /** Cookie name. @default 'sid' */
  @IsOptional()
  @Matches(COOKIE_NAME, message(SessionMessages.cookieName))
  name?: string;

  /** @default '/' */
  @IsOptional()
  @Matches(/^\//, message(SessionMessages.cookiePath))
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
  @IsOptional()
  @IsString(message((v) => SessionMessages.nonEmptyString(PATH, v)))
  @MinLength(1, message((v) => SessionMessages.nonEmptyString(PATH, v)))
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
  @Rule('isStore', (v) => v instanceof SessionStore || isStoreConfig(v), storeProblem)
  store?: StoreConfig | SessionStore;

  /** @default { name: 'sid', path: '/', httpOnly: true, secure: 'auto', sameSite: 'lax' } */
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
   * appear in them, only their hashes.
   * @default new Logger('SessionModule'), which follows the application's logger
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
}

/** The options after validation, with every default filled in and durations in milliseconds. */
export interface ResolvedSessionOptions {
  readonly secrets: readonly string[];
  readonly store: StoreConfig | SessionStore;
  readonly cookie: {
    readonly name: string;
    readonly path: string;
    readonly httpOnly: boolean;
    readonly secure: boolean | 'auto';
    readonly sameSite: 'lax' | 'strict' | 'none';
    readonly domain?: string;
    readonly partitioned: boolean;
    readonly maxAge?: number;
  };
  readonly transport: SessionTransport;
  readonly tokenFormat: SessionTokenFormat;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number | false;
  readonly touchAfter: number;
  readonly storeTimeout: number;
  readonly saveUninitialized: boolean;
  readonly noStoreWhenSignedIn: boolean;
  readonly userKey: string;
  readonly maxSessionsPerUser?: number;
  readonly onMaxSessions: OnMaxSessions;
  readonly recordClient: boolean;
  /** Set only when the application gave one; otherwise each part makes a `Logger('SessionModule')`. */
  readonly logger?: LoggerService;
  /** `false` when metrics are off. */
  readonly metrics: ResolvedMetricsOptions | false;
}

/** The `metrics` option when on, with its defaults filled in. */
export interface ResolvedMetricsOptions {
  /** Unset: prom-client's default registry, known only once prom-client is loaded. */
  readonly registry?: MetricsRegistry;
  readonly prefix: string;
}

/**
 * Validates options and merges the defaults, once, at start-up.
 * @throws SessionConfigError naming every bad option, its value and the fix.
 */
export function resolveSessionOptions(raw: unknown): ResolvedSessionOptions {
  if (!isPlainObject(raw)) throw new SessionConfigError([SessionMessages.optionsNotObject(raw)]);
  const problems: string[] = [];
  const options = copyOptions(new SessionModuleOptions(), raw, '', problems);
  problems.push(...problemsOf(options));
  const cookieRaw: Partial<SessionCookieOptions> = isPlainObject(options.cookie) ? options.cookie : {};
  problems.push(...problemsOf(copyOptions(new SessionCookieOptions(), cookieRaw, 'cookie.', problems), 'cookie.'));
  const metricsRaw: Partial<SessionMetricsOptions> = isPlainObject(options.metrics) ? options.metrics : {};
  problems.push(...problemsOf(copyOptions(new SessionMetricsOptions(), metricsRaw, 'metrics.', problems), 'metrics.'));
  if (isStoreConfig(options.store)) problems.push(...storeConfigProblems(options.store));
  if (problems.length) throw new SessionConfigError(problems);

  const name = cookieRaw.name ?? 'sid';
  const cookie = {
    name,
    path: cookieRaw.path ?? '/',
    httpOnly: cookieRaw.httpOnly ?? true,
    // A `__Host-`/`__Secure-` name asks for Secure, which browsers require of it: 'auto' would
    // leave the cookie unmarked over plain HTTP, and the browser would drop it silently.
    secure: cookieRaw.secure ?? (cookiePrefixOf(name) ? true : 'auto'),
    sameSite: cookieRaw.sameSite ?? 'lax',
    domain: cookieRaw.domain,
    partitioned: cookieRaw.partitioned ?? false,
    maxAge: cookieRaw.maxAge === undefined ? undefined : parseDuration(cookieRaw.maxAge),
  } as const;
  const idleTimeout = parseDuration(options.idleTimeout ?? '30m')!;
  const absoluteTimeout = options.absoluteTimeout === false ? false : parseDuration(options.absoluteTimeout ?? '12h')!;
  const touchAfter = options.touchAfter === undefined ? Math.floor(idleTimeout / 10) : parseDuration(options.touchAfter, 0)!;

  problems.push(...cookieAttributeProblems(cookie));
  if (cookie.sameSite === 'none' && cookie.secure !== true) problems.push(SessionMessages.sameSiteNoneNeedsSecure(cookie.secure));
  if (cookie.partitioned && cookie.secure !== true) problems.push(SessionMessages.partitionedNeedsSecure(cookie.secure));
  if (touchAfter >= idleTimeout) problems.push(SessionMessages.touchAfterTooLong(touchAfter, idleTimeout));
  if (absoluteTimeout !== false && absoluteTimeout < idleTimeout)
    problems.push(SessionMessages.absoluteShorterThanIdle(absoluteTimeout, idleTimeout));
  const transport = options.transport ?? 'cookie';
  const tokenFormat = options.tokenFormat ?? 'signed-id';
  if (tokenFormat === 'jwt' && transport === 'cookie') problems.push(SessionMessages.tokenFormatNeedsHeader(transport));
  if (tokenFormat === 'jwt' && isCookieStore(options.store)) problems.push(SessionMessages.tokenFormatCookieStore());
  if (options.maxSessionsPerUser !== undefined && isCookieStore(options.store)) problems.push(SessionMessages.maxSessionsCookieStore());
  if (options.onMaxSessions !== undefined && options.maxSessionsPerUser === undefined)
    problems.push(SessionMessages.onMaxSessionsAlone(options.onMaxSessions));
  if (problems.length) throw new SessionConfigError(problems);

  return {
    secrets: typeof options.secret === 'string' ? [options.secret] : [...options.secret],
    store: options.store ?? { type: 'memory' },
    cookie,
    transport,
    tokenFormat,
    idleTimeout,
    absoluteTimeout,
    touchAfter,
    storeTimeout: parseDuration(options.storeTimeout ?? '3s')!,
    saveUninitialized: options.saveUninitialized ?? false,
    noStoreWhenSignedIn: options.noStoreWhenSignedIn ?? true,
    userKey: options.userKey ?? 'userId',
    maxSessionsPerUser: options.maxSessionsPerUser,
    onMaxSessions: options.onMaxSessions ?? 'evict-oldest',
    recordClient: options.recordClient ?? false,
    logger: options.logger,
    metrics:
      options.metrics === true || isPlainObject(options.metrics) ? { registry: metricsRaw.registry, prefix: metricsRaw.prefix ?? 'session_' } : false,
  };
}

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
 * Copies user options onto an options class instance for validation. Prototype keys are
 * reported as unknown options rather than copied, where they would replace the instance's
 * prototype and leave class-validator nothing to check.
 */
function copyOptions<T extends object>(target: T, source: Record<string, unknown>, prefix: string, problems: string[]): T {
  for (const key of Object.keys(source)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') problems.push(SessionMessages.unknownOption(prefix + key));
    else Object.defineProperty(target, key, { value: source[key], enumerable: true, writable: true, configurable: true });
  }
  return target;
}

/** class-validator errors as our messages, with `{path}` filled in and unknown keys named. */
function problemsOf(target: object, prefix = ''): string[] {
  const errors: ValidationError[] = validateSync(target, { whitelist: true, forbidNonWhitelisted: true });
  return errors.flatMap((error) =>
    Object.entries(error.constraints ?? {}).map(([constraint, text]) =>
      constraint === 'whitelistValidation' ? SessionMessages.unknownOption(prefix + error.property) : text.split(PATH).join(prefix + error.property),
    ),
  );
}

/** The cookie name prefixes browsers hold to stricter rules (RFC 6265bis §4.1.3). */
function cookiePrefixOf(name: string): '__Host-' | '__Secure-' | undefined {
  if (name.startsWith('__Host-')) return '__Host-';
  return name.startsWith('__Secure-') ? '__Secure-' : undefined;
}

/**
 * Cookie attributes the `cookie` package would refuse when serialising `Set-Cookie` (so every
 * writing response would fail), and prefixed names whose rules the other attributes break (so
 * browsers would drop the cookie): both found at start-up rather than on the first response.
 */
function cookieAttributeProblems(cookie: { name: string; path: string; domain?: string; secure: boolean | 'auto' }): string[] {
  const problems: string[] = [];
  const refuses = (attributes: { path?: string; domain?: string }): boolean => {
    try {
      serializeCookie(cookie.name, '', attributes);
      return false;
    } catch {
      return true;
    }
  };
  if (cookie.domain !== undefined && refuses({ domain: cookie.domain })) problems.push(SessionMessages.cookieDomainInvalid(cookie.domain));
  if (refuses({ path: cookie.path })) problems.push(SessionMessages.cookiePathInvalid(cookie.path));
  const prefix = cookiePrefixOf(cookie.name);
  if (prefix && cookie.secure === false) problems.push(SessionMessages.cookiePrefixRule(prefix, 'marked Secure', '"cookie.secure" is false'));
  if (prefix === '__Host-') {
    const rule = 'marked Secure, with Path=/ and no Domain';
    if (cookie.path !== '/') problems.push(SessionMessages.cookiePrefixRule(prefix, rule, `"cookie.path" is ${JSON.stringify(cookie.path)}`));
    if (cookie.domain !== undefined)
      problems.push(SessionMessages.cookiePrefixRule(prefix, rule, `"cookie.domain" is ${JSON.stringify(cookie.domain)}`));
  }
  return problems;
}

/**
 * The secrets as a list (first signs or seals, all verify or open).
 * @throws SessionConfigError when they are missing, not strings, or shorter than 32 characters.
 */
export function resolveSecrets(value: unknown): string[] {
  if (!isSecret(value)) throw new SessionConfigError([secretProblem(value)]);
  return typeof value === 'string' ? [value] : [...(value as string[])];
}

/** The cookie store, as a config object or an instance (checked by kind: no import cycle). */
function isCookieStore(store: unknown): boolean {
  return store instanceof SessionStore ? store.kind === 'cookie' : isPlainObject(store) && store.type === 'cookie';
}

function isUserKey(value: unknown): boolean {
  return typeof value === 'string' && value.split('.').every((s) => s.length > 0 && s !== '__proto__' && s !== 'constructor' && s !== 'prototype');
}

/** An object with these methods: how loggers and registries are recognised without their classes. */
function hasMethods(value: unknown, methods: readonly string[]): boolean {
  const object = value as Record<string, unknown> | null;
  return typeof object === 'object' && object !== null && methods.every((m) => typeof object[m] === 'function');
}

function isLogger(value: unknown): boolean {
  return hasMethods(value, ['log', 'warn', 'error']);
}

/** Duck-typed: prom-client is not loaded to check, and an app may hold another copy of it. */
function isRegistry(value: unknown): boolean {
  return hasMethods(value, ['metrics', 'registerMetric', 'getSingleMetric']);
}

function isSecret(value: unknown): boolean {
  const secrets = Array.isArray(value) ? value : [value];
  return secrets.length > 0 && secrets.every((s) => typeof s === 'string' && s.length >= 32);
}

function secretProblem(value: unknown): string {
  if (value === undefined || value === null || value === '') return SessionMessages.secretMissing();
  if (typeof value === 'string') return SessionMessages.secretTooShort('secret', value.length);
  if (!Array.isArray(value) || value.length === 0 || value.some((s) => typeof s !== 'string')) return SessionMessages.secretType(value);
  const index = value.findIndex((s: string) => s.length < 32);
  return SessionMessages.secretTooShort(`secret[${index}]`, value[index].length);
}

function isStoreConfig(value: unknown): value is StoreConfig {
  return isPlainObject(value) && STORE_TYPES.has(value.type);
}

function storeProblem(value: unknown): string {
  if (!isPlainObject(value)) return SessionMessages.storeShape(value);
  return SessionMessages.storeType(value.type, [...STORE_TYPES]);
}
