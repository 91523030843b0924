/**
 * The module's options, from what users write to what the library reads: resolveSessionOptions()
 * checks them once at start-up and applies the defaults, giving ResolvedSessionOptions. The
 * classes users write, with their defaults, are in session.options-classes.ts, the tests of single
 * values in session.options-rules.ts; what the rest of the library uses of them is re-exported
 * here, so that it imports options from one place.
 */
import { Logger } from '@nestjs/common';
import type { LoggerService } from '@nestjs/common';
import { serialize as serializeCookie } from 'cookie';
import { resolveEncryptionKeys } from './crypto/encryption-keys.js';
import { legacyProblems, legacyWithDefaults } from './legacy/legacy-options.js';
import type { ResolvedLegacyOptions } from './legacy/legacy-options.js';
import { SessionConfigError, SessionMessages } from './session.errors.js';
import {
  SESSION_COOKIE_DEFAULTS,
  SESSION_METRICS_DEFAULTS,
  SESSION_OPTION_DEFAULTS,
  SessionCookieOptions,
  SessionMetricsOptions,
  SessionModuleOptions,
} from './session.options-classes.js';
import type { OptionDefaults } from './session.options-classes.js';
import { isCookieStore, isStoreConfig } from './session.options-rules.js';
import { storeConfigProblems } from './stores/toolkit/options-check.js';
import { copyOptions, isPlainObject, parseDuration, problemsOf } from './session.validation.js';

export { SessionCookieOptions, SessionMetricsOptions, SessionModuleOptions } from './session.options-classes.js';
export type { MetricsRegistry, OnMaxSessions, SessionTokenFormat, SessionTransport } from './session.options-classes.js';

/**
 * An options class with its defaults applied: a field that has a default value is always there,
 * the others stay optional; each keeps the type users write it in.
 */
type WithDefaults<Options, Defaults extends OptionDefaults<Options>> = Flatten<
  { readonly [K in keyof Options as K extends keyof Defaults ? K : never]-?: Exclude<Options[K], undefined> } & {
    readonly [K in keyof Options as K extends keyof Defaults ? never : K]?: Options[K];
  }
>;

/** One object type out of an intersection, as editors show it. */
type Flatten<T> = { [K in keyof T]: T[K] };

/**
 * The options after validation, with every default filled in. The fields written out below are
 * those whose resolved type differs from the one users write: durations become milliseconds,
 * the secret a list, the cookie and metrics objects get their own defaults; every other field
 * follows its option's type.
 */
export interface ResolvedSessionOptions extends Omit<
  WithDefaults<SessionModuleOptions, typeof SESSION_OPTION_DEFAULTS>,
  'secret' | 'cookie' | 'idleTimeout' | 'absoluteTimeout' | 'touchAfter' | 'storeTimeout' | 'metrics' | 'encryptionKeys' | 'legacy'
> {
  /** `secret` as a list, whether one string or several were given: the first signs, all verify. */
  readonly secrets: readonly string[];
  readonly cookie: ResolvedCookieOptions;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number | false;
  /** Given, or a tenth of `idleTimeout`: a default derived from another option, so not in the defaults. */
  readonly touchAfter: number;
  readonly storeTimeout: number;
  /** `encryptionKeys` as 32-byte keys, the encrypting one first; empty when nothing is encrypted. */
  readonly encryptionKeys: readonly Buffer[];
  /** `false` when metrics are off. */
  readonly metrics: ResolvedMetricsOptions | false;
  /** Unset when no express-session deployment is taken over. */
  readonly legacy?: ResolvedLegacyOptions;
}

/** The `cookie` option with its defaults filled in, `maxAge` in milliseconds. */
export interface ResolvedCookieOptions extends Omit<WithDefaults<SessionCookieOptions, typeof SESSION_COOKIE_DEFAULTS>, 'maxAge'> {
  readonly maxAge?: number;
}

/**
 * The `metrics` option when on, with its defaults filled in. An unset registry stays unset: it
 * is prom-client's default registry, known only once prom-client is loaded.
 */
export type ResolvedMetricsOptions = WithDefaults<SessionMetricsOptions, typeof SESSION_METRICS_DEFAULTS>;

/** Where the module's warnings go: the `logger` option, or Nest's logger under the module's name. */
export function moduleLogger(options: Pick<ResolvedSessionOptions, 'logger'>): LoggerService {
  return options.logger ?? new Logger('SessionModule');
}

/**
 * Validates options and merges the defaults, once, at start-up.
 * @throws SessionConfigError naming every bad option, its value and the fix.
 */
export function resolveSessionOptions(raw: unknown): ResolvedSessionOptions {
  const options = validateOptions(raw);
  const resolved = applyDefaults(options);
  const problems = combinationProblems(resolved, options);
  if (problems.length) throw new SessionConfigError(problems);
  return resolved;
}

/**
 * The options copied onto their classes and checked one by one, the cookie, metrics and store
 * objects included.
 * @throws SessionConfigError naming every option that fails its own rules.
 */
function validateOptions(raw: unknown): SessionModuleOptions {
  if (!isPlainObject(raw)) throw new SessionConfigError([SessionMessages.optionsNotObject(raw)]);
  const problems: string[] = [];
  const options = copyOptions(new SessionModuleOptions(), raw, '', problems);
  problems.push(...problemsOf(options));
  problems.push(...problemsOf(copyOptions(new SessionCookieOptions(), cookieOf(options), 'cookie.', problems), 'cookie.'));
  problems.push(...problemsOf(copyOptions(new SessionMetricsOptions(), metricsOf(options), 'metrics.', problems), 'metrics.'));
  if (isStoreConfig(options.store)) problems.push(...storeConfigProblems(options.store));
  if (isPlainObject(options.legacy)) problems.push(...legacyProblems(options.legacy));
  if (problems.length) throw new SessionConfigError(problems);
  return options;
}

/** The `cookie` object as given; anything else was reported, and stands for no attributes. */
function cookieOf(options: SessionModuleOptions): Partial<SessionCookieOptions> {
  return isPlainObject(options.cookie) ? options.cookie : SESSION_OPTION_DEFAULTS.cookie;
}

/** The `metrics` object as given; `true` (or anything reported) stands for every field at its default. */
function metricsOf(options: SessionModuleOptions): Partial<SessionMetricsOptions> {
  return isPlainObject(options.metrics) ? options.metrics : {};
}

/** Validated options with every default applied and every duration in milliseconds. */
function applyDefaults(options: SessionModuleOptions): ResolvedSessionOptions {
  const defaults = SESSION_OPTION_DEFAULTS;
  const idleTimeout = parseDuration(options.idleTimeout ?? defaults.idleTimeout)!;
  const metrics = options.metrics ?? defaults.metrics;
  return {
    secrets: typeof options.secret === 'string' ? [options.secret] : [...options.secret],
    // A copy: the default is shared, the resolved options are each application's own.
    store: options.store ?? { ...defaults.store },
    cookie: cookieWithDefaults(cookieOf(options)),
    transport: options.transport ?? defaults.transport,
    tokenFormat: options.tokenFormat ?? defaults.tokenFormat,
    idleTimeout,
    absoluteTimeout: options.absoluteTimeout === false ? false : parseDuration(options.absoluteTimeout ?? defaults.absoluteTimeout)!,
    touchAfter: options.touchAfter === undefined ? Math.floor(idleTimeout / 10) : parseDuration(options.touchAfter, 0)!,
    storeTimeout: parseDuration(options.storeTimeout ?? defaults.storeTimeout)!,
    saveUninitialized: options.saveUninitialized ?? defaults.saveUninitialized,
    noStoreWhenSignedIn: options.noStoreWhenSignedIn ?? defaults.noStoreWhenSignedIn,
    userKey: options.userKey ?? defaults.userKey,
    maxSessionsPerUser: options.maxSessionsPerUser,
    encryptionKeys: options.encryptionKeys === undefined ? [] : resolveEncryptionKeys(options.encryptionKeys),
    onMaxSessions: options.onMaxSessions ?? defaults.onMaxSessions,
    recordClient: options.recordClient ?? defaults.recordClient,
    logger: options.logger,
    metrics: metrics === true || isPlainObject(metrics) ? metricsWithDefaults(metricsOf(options)) : false,
    legacy: options.legacy === undefined ? undefined : legacyWithDefaults(options.legacy),
  };
}

function cookieWithDefaults(cookie: Partial<SessionCookieOptions>): ResolvedCookieOptions {
  const defaults = SESSION_COOKIE_DEFAULTS;
  const name = cookie.name ?? defaults.name;
  return {
    name,
    path: cookie.path ?? defaults.path,
    httpOnly: cookie.httpOnly ?? defaults.httpOnly,
    // A `__Host-`/`__Secure-` name asks for Secure, which browsers require of it: 'auto' would
    // leave the cookie unmarked over plain HTTP, and the browser would drop it silently.
    secure: cookie.secure ?? (cookiePrefixOf(name) ? true : defaults.secure),
    sameSite: cookie.sameSite ?? defaults.sameSite,
    domain: cookie.domain,
    partitioned: cookie.partitioned ?? defaults.partitioned,
    maxAge: cookie.maxAge === undefined ? undefined : parseDuration(cookie.maxAge),
  };
}

function metricsWithDefaults(metrics: Partial<SessionMetricsOptions>): ResolvedMetricsOptions {
  return { registry: metrics.registry, prefix: metrics.prefix ?? SESSION_METRICS_DEFAULTS.prefix };
}

/**
 * The checks that span several options, on their resolved values. `onMaxSessions` is read as
 * given: its default alone asks for nothing.
 */
function combinationProblems(resolved: ResolvedSessionOptions, given: SessionModuleOptions): string[] {
  const { cookie, idleTimeout, absoluteTimeout, touchAfter, transport, tokenFormat, store, maxSessionsPerUser } = resolved;
  const problems = cookieAttributeProblems(cookie);
  if (cookie.sameSite === 'none' && cookie.secure !== true) problems.push(SessionMessages.sameSiteNoneNeedsSecure(cookie.secure));
  if (cookie.partitioned && cookie.secure !== true) problems.push(SessionMessages.partitionedNeedsSecure(cookie.secure));
  if (touchAfter >= idleTimeout) problems.push(SessionMessages.touchAfterTooLong(touchAfter, idleTimeout));
  if (absoluteTimeout !== false && absoluteTimeout < idleTimeout)
    problems.push(SessionMessages.absoluteShorterThanIdle(absoluteTimeout, idleTimeout));
  if (tokenFormat === 'jwt' && transport === 'cookie') problems.push(SessionMessages.tokenFormatNeedsHeader(transport));
  if (tokenFormat === 'jwt' && isCookieStore(store)) problems.push(SessionMessages.tokenFormatCookieStore());
  if (maxSessionsPerUser !== undefined && isCookieStore(store)) problems.push(SessionMessages.maxSessionsCookieStore());
  if (given.encryptionKeys !== undefined && isCookieStore(store)) problems.push(SessionMessages.encryptionKeysCookieStore());
  if (given.onMaxSessions !== undefined && maxSessionsPerUser === undefined) problems.push(SessionMessages.onMaxSessionsAlone(given.onMaxSessions));
  if (resolved.legacy && transport === 'header') problems.push(SessionMessages.legacyNeedsCookie(transport));
  if (resolved.legacy?.cookie.name === cookie.name) problems.push(SessionMessages.legacySameCookie(cookie.name));
  return problems;
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
function cookieAttributeProblems(cookie: ResolvedCookieOptions): string[] {
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
