import { Logger } from '@nestjs/common';
import type { SessionModuleOptions } from '../lib/index.js';

/** Used only when SESSION_SECRET is unset, so `npm start` works out of the box. Never in production. */
export const DEV_SECRET = 'dev-only-secret-change-me-0123456789abcdef';

type Env = Record<string, string | undefined>;

/** Reads a duration variable: plain digits are milliseconds, anything else goes to `ms`. */
const duration = (value: string | undefined): string | number | undefined =>
  value === undefined || value === '' ? undefined : /^\d+$/.test(value) ? Number(value) : value;

/**
 * The sample's whole configuration comes from the environment (SPEC §4), so the same build can
 * run as many nodes. Bad values are not checked here: SessionModule's validation names them.
 */
export function sessionOptionsFromEnv(env: Env): SessionModuleOptions {
  const secret = list(env.SESSION_SECRET) ?? [warnDevSecret()];
  const options: SessionModuleOptions = {
    secret: secret.length === 1 ? secret[0] : secret,
    store: storeFromEnv(env) as SessionModuleOptions['store'],
    idleTimeout: duration(env.SESSION_IDLE_TIMEOUT),
    absoluteTimeout: env.SESSION_ABSOLUTE_TIMEOUT === 'false' ? false : duration(env.SESSION_ABSOLUTE_TIMEOUT),
    transport: env.SESSION_TRANSPORT as SessionModuleOptions['transport'],
    tokenFormat: env.SESSION_TOKEN_FORMAT as SessionModuleOptions['tokenFormat'],
    // Digits become a number; anything else reaches the module as given, and its validation names it.
    maxSessionsPerUser: count(env.SESSION_MAX_PER_USER),
    onMaxSessions: (env.SESSION_ON_MAX_SESSIONS || undefined) as SessionModuleOptions['onMaxSessions'],
    recordClient: flag(env.SESSION_RECORD_CLIENT),
    encryptionKeys: list(env.SESSION_ENCRYPTION_KEYS),
    legacy: legacyFromEnv(env),
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SessionModuleOptions;
}

/** A comma-separated list (one entry stays a list: the module takes either). */
function list(value: string | undefined): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  return value.split(',').map((entry) => entry.trim());
}

/** Plain digits as a number; any other text is passed on for validation to name. */
function count(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  return /^\d+$/.test(value) ? Number(value) : (value as unknown as number);
}

/** 'true' / 'false' as booleans; any other text is passed on for validation to name. */
function flag(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  return value === 'true' ? true : value === 'false' ? false : (value as unknown as boolean);
}

function storeFromEnv(env: Env): object {
  const type = env.SESSION_STORE ?? 'memory';
  switch (type) {
    case 'file':
      return { type, directory: env.SESSION_DIR ?? './.sessions' };
    case 'redis':
      return {
        type,
        ...redisConnectionFromEnv(env),
        prefix: env.REDIS_PREFIX ?? 'sess:',
        ...(env.SESSION_CONSISTENCY && { consistency: env.SESSION_CONSISTENCY }),
      };
    case 'postgres':
      // The sample creates its table at start-up; docs/stores.md gives the DDL to run yourself.
      return { type, connectionString: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', createTable: true };
    default:
      return { type };
  }
}

/**
 * The express-session deployment to take over (SESSION_LEGACY): on the sample's own Redis or
 * PostgreSQL when its store is that one, else on REDIS_URL or DATABASE_URL.
 */
function legacyFromEnv(env: Env): SessionModuleOptions['legacy'] {
  const store = env.SESSION_LEGACY;
  if (store === undefined || store === '') return undefined;
  const legacy: Record<string, unknown> = {
    store,
    // Unset: an empty list, which the module's validation names as a missing legacy secret.
    secret: list(env.SESSION_LEGACY_SECRET) ?? [],
    ...(env.SESSION_LEGACY_COOKIE && { cookie: { name: env.SESSION_LEGACY_COOKIE } }),
  };
  if (store === 'connect-redis') {
    if (env.SESSION_LEGACY_PREFIX !== undefined) legacy.prefix = env.SESSION_LEGACY_PREFIX;
    if (env.SESSION_STORE !== 'redis') legacy.url = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  } else if (store === 'connect-pg-simple') {
    if (env.SESSION_LEGACY_TABLE) legacy.tableName = env.SESSION_LEGACY_TABLE;
    if (env.SESSION_STORE !== 'postgres') legacy.connectionString = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  }
  return legacy as unknown as SessionModuleOptions['legacy'];
}

/** One way to reach Redis: Cluster nodes, else Sentinels, else a URL. */
function redisConnectionFromEnv(env: Env): object {
  if (env.REDIS_CLUSTER_NODES) return { cluster: endpoints(env.REDIS_CLUSTER_NODES) };
  if (env.REDIS_SENTINELS) return { sentinels: endpoints(env.REDIS_SENTINELS), name: env.REDIS_SENTINEL_NAME };
  return { url: env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
}

/** `host:port,host:port` as endpoint objects (a malformed entry is left for validation to name). */
function endpoints(list: string): { host: string; port: number }[] {
  return list.split(',').map((entry) => {
    const at = entry.trim().lastIndexOf(':');
    return { host: entry.trim().slice(0, at), port: Number(entry.trim().slice(at + 1)) };
  });
}

function warnDevSecret(): string {
  new Logger('Sample').warn('SESSION_SECRET is not set: using a development secret. Set SESSION_SECRET in production.');
  return DEV_SECRET;
}
