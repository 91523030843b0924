import { Equals, IsBoolean, IsIn, IsInt, IsOptional, IsString, Min, MinLength } from 'class-validator';
import type { ConnectionOptions } from 'node:tls';
import { SessionMessages } from '../session.errors.js';
import { IsPositiveInteger, message, PATH, Rule } from '../session.validation.js';
import type { PostgresPool, RedisClient } from './driver-types.js';
import { MAX_TIMER_DELAY } from './toolkit/store-runtime.js';

/**
 * Store config objects, one class per store type: each is both the type users write and the
 * class-validator schema their options are checked against at start-up. A static `problems()`
 * holds the checks that span several fields.
 */

/** A sweeper interval in ms: a whole number a Node timer can hold. */
const IsSweepInterval = () => IsPositiveInteger(MAX_TIMER_DELAY);

/**
 * Driver objects and URLs, recognised by what the stores use of them (see driver-types.ts): the
 * store configs and the `legacy` option check them alike.
 */
export const isRedisClient = (v: unknown): boolean => typeof (v as { defineCommand?: unknown } | null)?.defineCommand === 'function';
export const isRedisUrl = (v: unknown): boolean => typeof v === 'string' && /^rediss?:\/\/.+/.test(v);
export const isPostgresPool = (v: unknown): boolean => typeof (v as { connect?: unknown } | null)?.connect === 'function';
export const isPostgresUrl = (v: unknown): boolean => typeof v === 'string' && /^postgres(ql)?:\/\/.+/.test(v);

/** `{ type: 'memory' }`: one process only, nothing survives a restart. */
export class MemoryStoreConfig {
  @Equals('memory')
  type!: 'memory';

  /** Evict the least recently used session beyond this many. @default unlimited */
  @IsOptional()
  @IsPositiveInteger()
  maxSessions?: number;

  /**
   * The most the store holds, in bytes (counted as MemoryStore describes): beyond it the
   * least recently used sessions are evicted, and a session larger than all of it is refused (413).
   * @default 67108864 (64 MiB)
   */
  @IsOptional()
  @Rule('isByteCount', (v) => Number.isSafeInteger(v) && (v as number) > 0, (v) => SessionMessages.memoryMaxBytes(PATH, v))
  maxBytes?: number;

  /** How often expired sessions are reclaimed, in milliseconds. @default 60000 */
  @IsOptional()
  @IsSweepInterval()
  sweepInterval?: number;
}

/** Defaults of the Redis store's timeouts (ms). */
export const REDIS_DEFAULTS = { commandTimeout: 2000, replicaTimeout: 1000 } as const;

/** A Redis server, sentinel or cluster node. */
export interface RedisEndpoint {
  host: string;
  port: number;
}

const isEndpointList = (value: unknown): boolean =>
  Array.isArray(value) &&
  value.length > 0 &&
  value.every((e) => typeof e?.host === 'string' && e.host.length > 0 && Number.isInteger(e?.port) && e.port > 0 && e.port < 65536);

/**
 * `{ type: 'redis' }`: sessions shared by every node, on standalone Redis (`url`), Sentinel
 * (`sentinels` + `name`) or Cluster (`cluster`), or on a client you pass (`client`).
 */
export class RedisStoreConfig {
  @Equals('redis')
  type!: 'redis';

  /** `redis://[[user]:password@]host:port[/db]`, or `rediss://` for TLS. @default 'redis://127.0.0.1:6379' */
  @IsOptional()
  @Rule('isRedisUrl', isRedisUrl, SessionMessages.redisUrl)
  url?: string;

  /** An ioredis `Redis` or `Cluster` you created; the store uses it and never closes it. @default undefined */
  @IsOptional()
  @Rule('isRedisClient', isRedisClient, SessionMessages.redisClient)
  client?: RedisClient;

  /** Sentinels to ask for the current master. @default undefined */
  @IsOptional()
  @Rule('isEndpointList', isEndpointList, (v) => SessionMessages.endpoints(PATH, v))
  sentinels?: RedisEndpoint[];

  /** The master name the sentinels monitor; required with `sentinels`. @default undefined */
  @IsOptional()
  @IsString(message((v) => SessionMessages.nonEmptyString(PATH, v)))
  @MinLength(1, message((v) => SessionMessages.nonEmptyString(PATH, v)))
  name?: string;

  /** Cluster nodes to start from. @default undefined */
  @IsOptional()
  @Rule('isEndpointList', isEndpointList, (v) => SessionMessages.endpoints(PATH, v))
  cluster?: RedisEndpoint[];

  /** Key prefix. @default 'sess:' */
  @IsOptional()
  @Rule('isRedisPrefix', (v) => typeof v === 'string' && !/[{}]/.test(v), SessionMessages.redisPrefix)
  prefix?: string;

  /**
   * `'strong'` acknowledges a write only once a replica has it (`WAIT 1`): no acknowledged write
   * is lost in a failover, at the cost of a replica round trip per write.
   * @default 'eventual'
   */
  @IsOptional()
  @IsIn(['eventual', 'strong'], message((v) => SessionMessages.oneOf(PATH, v, ['eventual', 'strong'])))
  consistency?: 'eventual' | 'strong';

  /**
   * Report expired sessions to `SessionService.on('expired')`: each session keeps a small marker
   * key beside it, and the server must publish expiries (`notify-keyspace-events Ex`). Set it on
   * every node.
   * @default false
   */
  @IsOptional()
  @IsBoolean(message((v) => SessionMessages.boolean(PATH, v)))
  expiryEvents?: boolean;

  /** With `'strong'`, how long to wait for a replica before the write fails (ms). @default 1000 */
  @IsOptional()
  @IsPositiveInteger()
  replicaTimeout?: number;

  /** Longest wait for one Redis command before it fails (ms). @default 2000 */
  @IsOptional()
  @IsPositiveInteger()
  commandTimeout?: number;

  /** ACL user name. @default undefined */
  @IsOptional()
  @IsString(message((v) => SessionMessages.nonEmptyString(PATH, v)))
  username?: string;

  /** Password (also for the sentinels' master). @default undefined */
  @IsOptional()
  @IsString(message((v) => SessionMessages.nonEmptyString(PATH, v)))
  password?: string;

  /** Database number (not on Cluster). @default 0 */
  @IsOptional()
  @IsInt(message((v) => SessionMessages.positiveInteger(PATH, v)))
  @Min(0, message((v) => SessionMessages.positiveInteger(PATH, v)))
  db?: number;

  /** TLS: `true`, or Node TLS options (`ca`, `cert`, `servername`…). @default false */
  @IsOptional()
  @Rule('isTls', (v) => typeof v === 'boolean' || (typeof v === 'object' && v !== null), (v) => SessionMessages.boolean(PATH, v))
  tls?: boolean | ConnectionOptions;

  /** Checks that span several fields. */
  static problems(config: RedisStoreConfig): string[] {
    const ways = (['url', 'client', 'sentinels', 'cluster'] as const).filter((key) => config[key] !== undefined);
    const problems: string[] = [];
    if (ways.length > 1) problems.push(SessionMessages.redisOneConnection(ways));
    if (config.sentinels !== undefined && config.name === undefined) problems.push(SessionMessages.redisSentinelName());
    if (config.cluster !== undefined && config.db !== undefined && config.db !== 0) problems.push(SessionMessages.redisClusterDb());
    const replicaTimeout = config.replicaTimeout ?? REDIS_DEFAULTS.replicaTimeout;
    const commandTimeout = config.commandTimeout ?? REDIS_DEFAULTS.commandTimeout;
    if (config.consistency === 'strong' && replicaTimeout >= commandTimeout) {
      problems.push(SessionMessages.redisReplicaTimeout(replicaTimeout, commandTimeout));
    }
    return problems;
  }
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

/** `{ type: 'postgres' }`: sessions in one PostgreSQL table, shared by every node. */
export class PostgresStoreConfig {
  @Equals('postgres')
  type!: 'postgres';

  /** `postgres://user:password@host:5432/database`. @default 'postgres://postgres@127.0.0.1:5432/postgres' */
  @IsOptional()
  @Rule('isPostgresUrl', isPostgresUrl, (v) => SessionMessages.oneOf(PATH, v, ['a postgres:// connection string']))
  connectionString?: string;

  /** A `pg` Pool you created; the store uses it and never ends it. @default undefined */
  @IsOptional()
  @Rule('isPgPool', isPostgresPool, (v) => SessionMessages.oneOf(PATH, v, ['a pg Pool']))
  pool?: PostgresPool;

  /** Table name, optionally schema-qualified. @default 'sessions' */
  @IsOptional()
  @Rule('isTableName', (v) => typeof v === 'string' && TABLE_NAME.test(v), SessionMessages.postgresTable)
  table?: string;

  /** Create the table and its indexes at start-up if missing (safe with many nodes starting at once). @default false */
  @IsOptional()
  @Rule('isBoolean', (v) => typeof v === 'boolean', (v) => SessionMessages.boolean(PATH, v))
  createTable?: boolean;

  /**
   * Send the statements every request makes (read, write, touch, rotate, destroy) as named
   * prepared statements, which PostgreSQL parses and plans once per connection instead of on
   * every call. Turn it off behind a connection pooler that cannot keep prepared statements
   * across transactions (PgBouncer in transaction mode before 1.21, or without
   * `max_prepared_statements`). @default true
   */
  @IsOptional()
  @Rule('isBoolean', (v) => typeof v === 'boolean', (v) => SessionMessages.boolean(PATH, v))
  preparedStatements?: boolean;

  /** How often expired rows are deleted (ms). @default 60000 */
  @IsOptional()
  @IsSweepInterval()
  sweepInterval?: number;

  /** Longest wait for a connection or a query (ms). @default 2000 */
  @IsOptional()
  @IsPositiveInteger()
  queryTimeout?: number;

  /** Connections in the pool the store creates. @default 10 */
  @IsOptional()
  @IsPositiveInteger()
  poolSize?: number;

  /**
   * How long a sign-in waits for the lock of a user that another node holds, and for the lock
   * connection to answer (ms); then it fails with a 503. @default 2000
   */
  @IsOptional()
  @IsPositiveInteger()
  lockTimeout?: number;

  /** Checks that span several fields. */
  static problems(config: PostgresStoreConfig): string[] {
    return config.connectionString !== undefined && config.pool !== undefined ? [SessionMessages.postgresOneConnection()] : [];
  }
}

/** Defaults of the file store (ms). */
export const FILE_DEFAULTS = { sweepInterval: 60_000, lockTimeout: 2000 } as const;

/** `{ type: 'file', directory }`: sessions as files, shared by the processes of one host. */
export class FileStoreConfig {
  @Equals('file')
  type!: 'file';

  /** The store's directory, created (mode 0700) if missing; relative to the working directory. */
  @Rule('isDirectory', (v) => typeof v === 'string' && v.length > 0 && !v.includes('\0'), (v) => SessionMessages.nonEmptyString(PATH, v))
  directory!: string;

  /** How often expired session files are deleted (ms). @default 60000 */
  @IsOptional()
  @IsSweepInterval()
  sweepInterval?: number;

  /** How long a write waits for another process's lock on a session; older locks count as abandoned (ms). @default 2000 */
  @IsOptional()
  @IsPositiveInteger()
  lockTimeout?: number;
}

/**
 * `{ type: 'cookie' }`: no server-side state; each session is sealed into the client's cookie
 * with the module's secret. Stateless limits: see {@link CookieStore}.
 */
export class CookieStoreConfig {
  @Equals('cookie')
  type!: 'cookie';
}

/** Every store config object this version accepts. */
export type StoreConfig = MemoryStoreConfig | RedisStoreConfig | PostgresStoreConfig | FileStoreConfig | CookieStoreConfig;

/** A store config class: its decorators validate one field each, `problems()` the rest. */
interface StoreConfigClass {
  new (): object;
  problems?(config: object): string[];
}

export const STORE_CONFIG_CLASSES: Record<StoreConfig['type'], StoreConfigClass> = {
  memory: MemoryStoreConfig,
  redis: RedisStoreConfig,
  postgres: PostgresStoreConfig,
  file: FileStoreConfig,
  cookie: CookieStoreConfig,
};

/** Every store type a config object may name. */
export type StoreType = StoreConfig['type'];
export const STORE_TYPES: ReadonlySet<StoreType> = new Set(Object.keys(STORE_CONFIG_CLASSES) as StoreType[]);
