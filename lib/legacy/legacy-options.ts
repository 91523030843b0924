/**
 * The `legacy` option: where an express-session deployment keeps its sessions, so that the module
 * can take them over as their users come back (see legacy-sessions.ts). The classes users write,
 * with their defaults; what the module reads of them is {@link ResolvedLegacyOptions}.
 */
import { IsIn, IsOptional, IsString } from 'class-validator';
import { SessionMessages } from '../session.errors.js';
import { copyOptions, IsCookieDomain, IsCookieName, IsCookiePath, isPlainObject, message, PATH, problemsOf, Rule } from '../session.validation.js';
import type { PostgresPool, RedisClient } from '../stores/driver-types.js';
import { isPostgresPool, isPostgresUrl, isRedisClient, isRedisUrl } from '../stores/store-config.js';

const LEGACY_STORES = ['connect-redis', 'connect-pg-simple'] as const;
export type LegacyStoreType = (typeof LEGACY_STORES)[number];

/** The members of `legacy` that only one of the two stores reads. */
const REDIS_ONLY = ['prefix', 'client', 'url'] as const;
const POSTGRES_ONLY = ['tableName', 'schemaName', 'pool', 'connectionString'] as const;

const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** express-session's cookie, by the attributes a browser tells cookies apart by: what clearing it needs. */
export class SessionLegacyCookieOptions {
  /** express-session's `name`. @default 'connect.sid' */
  @IsCookieName()
  name?: string;

  /** express-session's `cookie.path`. @default '/' */
  @IsCookiePath()
  path?: string;

  /** express-session's `cookie.domain`. @default undefined (the host that set it) */
  @IsCookieDomain()
  domain?: string;
}

/**
 * The express-session deployment this application replaces: its cookie, its secret and its
 * store. A request that brings that deployment's cookie and no credential of this module has its
 * old session moved into this module's store, once (see docs/migrating-from-express-session.md).
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: { type: 'redis', url: process.env.REDIS_URL },
 *   legacy: { store: 'connect-redis', secret: process.env.OLD_SESSION_SECRET! },
 * })
 * ```
 */
export class SessionLegacyOptions {
  /** Which store the express-session deployment used: `'connect-redis'` or `'connect-pg-simple'`. */
  @IsIn(LEGACY_STORES, message((v) => SessionMessages.oneOf(PATH, v, LEGACY_STORES)))
  store!: LegacyStoreType;

  /**
   * express-session's `secret`: one string, or the array it was given (every one verifies). The
   * 32-character rule of this module's own `secret` does not apply: it only reads what that
   * secret signed, and never signs anything with it.
   */
  @Rule('isLegacySecret', isLegacySecret, (v) => SessionMessages.legacySecret(v))
  secret!: string | string[];

  /** express-session's cookie, each attribute with its own default. @default {} */
  @IsOptional()
  @Rule('isObject', isPlainObject, (v) => SessionMessages.objectOption(PATH, "{ name: 'connect.sid' }", v))
  cookie?: SessionLegacyCookieOptions;

  /** connect-redis's `prefix`. @default 'sess:' */
  @IsOptional()
  @IsString(message((v) => SessionMessages.nonEmptyString(PATH, v)))
  prefix?: string;

  /**
   * connect-redis: an ioredis client on the Redis that holds the old sessions; never closed by the
   * module. @default the Redis store's client, when the module's store is Redis
   */
  @IsOptional()
  @Rule('isRedisClient', isRedisClient, (v) => SessionMessages.legacyDriver(PATH, 'an ioredis Redis or Cluster instance', v))
  client?: RedisClient;

  /** connect-redis: a `redis://` URL of that Redis, for a client the module creates and closes. @default undefined */
  @IsOptional()
  @Rule('isRedisUrl', isRedisUrl, (v) => SessionMessages.legacyDriver(PATH, 'a redis:// URL', v))
  url?: string;

  /** connect-pg-simple's `tableName`. @default 'session' */
  @IsOptional()
  @Rule('isTableName', isNonEmptyString, (v) => SessionMessages.nonEmptyString(PATH, v))
  tableName?: string;

  /** connect-pg-simple's `schemaName`. @default undefined (the search path's) */
  @IsOptional()
  @Rule('isSchemaName', isNonEmptyString, (v) => SessionMessages.nonEmptyString(PATH, v))
  schemaName?: string;

  /**
   * connect-pg-simple: a `pg` Pool on the database that holds the old sessions; never ended by the
   * module. @default the PostgreSQL store's pool, when the module's store is PostgreSQL
   */
  @IsOptional()
  @Rule('isPgPool', isPostgresPool, (v) => SessionMessages.legacyDriver(PATH, 'a pg Pool', v))
  pool?: PostgresPool;

  /** connect-pg-simple: a connection string, for a pool the module creates and ends. @default undefined */
  @IsOptional()
  @Rule('isPostgresUrl', isPostgresUrl, (v) => SessionMessages.legacyDriver(PATH, 'a postgres:// connection string', v))
  connectionString?: string;
}

export const SESSION_LEGACY_DEFAULTS = Object.freeze({
  cookie: {},
  prefix: 'sess:',
  tableName: 'session',
} as const);

export const SESSION_LEGACY_COOKIE_DEFAULTS = Object.freeze({
  name: 'connect.sid',
  path: '/',
} as const);

/** The `legacy` option with its defaults applied and its secret as a list. */
export interface ResolvedLegacyOptions {
  readonly store: LegacyStoreType;
  readonly secrets: readonly string[];
  readonly cookie: { readonly name: string; readonly path: string; readonly domain?: string };
  readonly prefix: string;
  readonly client?: RedisClient;
  readonly url?: string;
  readonly tableName: string;
  readonly schemaName?: string;
  readonly pool?: PostgresPool;
  readonly connectionString?: string;
}

function isLegacySecret(value: unknown): boolean {
  const secrets = Array.isArray(value) ? value : [value];
  return secrets.length > 0 && secrets.every(isNonEmptyString);
}

/** What is wrong with `legacy` as given (an object: the module's options class checks that much). */
export function legacyProblems(raw: object): string[] {
  const problems: string[] = [];
  const given = copyOptions(new SessionLegacyOptions(), raw as Record<string, unknown>, 'legacy.', problems);
  problems.push(...problemsOf(given, 'legacy.'));
  const cookie = copyOptions(new SessionLegacyCookieOptions(), cookieOf(given), 'legacy.cookie.', problems);
  problems.push(...problemsOf(cookie, 'legacy.cookie.'));
  problems.push(...combinationProblems(given));
  return problems;
}

/** `legacy`, checked by {@link legacyProblems}, with its defaults applied. */
export function legacyWithDefaults(given: SessionLegacyOptions): ResolvedLegacyOptions {
  const cookie = cookieOf(given);
  const defaults = SESSION_LEGACY_DEFAULTS;
  return {
    store: given.store,
    secrets: typeof given.secret === 'string' ? [given.secret] : [...given.secret],
    cookie: {
      name: cookie.name ?? SESSION_LEGACY_COOKIE_DEFAULTS.name,
      path: cookie.path ?? SESSION_LEGACY_COOKIE_DEFAULTS.path,
      domain: cookie.domain,
    },
    prefix: given.prefix ?? defaults.prefix,
    client: given.client,
    url: given.url,
    tableName: given.tableName ?? defaults.tableName,
    schemaName: given.schemaName,
    pool: given.pool,
    connectionString: given.connectionString,
  };
}

/** The `legacy.cookie` object as given; anything else was reported, and stands for no attributes. */
function cookieOf(given: SessionLegacyOptions): Partial<SessionLegacyCookieOptions> {
  return isPlainObject(given.cookie) ? given.cookie : SESSION_LEGACY_DEFAULTS.cookie;
}

/** Members that belong to the other store, and two ways of connecting given at once. */
function combinationProblems(given: SessionLegacyOptions): string[] {
  const problems: string[] = [];
  const foreign = given.store === 'connect-redis' ? POSTGRES_ONLY : given.store === 'connect-pg-simple' ? REDIS_ONLY : [];
  for (const member of foreign) if (given[member] !== undefined) problems.push(SessionMessages.legacyForeignOption(member, given.store));
  if (given.client !== undefined && given.url !== undefined) problems.push(SessionMessages.legacyOneConnection('client', 'url'));
  if (given.pool !== undefined && given.connectionString !== undefined)
    problems.push(SessionMessages.legacyOneConnection('pool', 'connectionString'));
  return problems;
}
