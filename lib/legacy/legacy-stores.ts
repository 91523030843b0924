import type { LoggerService } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { SessionConfigError, SessionMessages } from '../session.errors.js';
import { closeClient, createClient, loadIoredis, reportErrors } from '../stores/redis/redis.client.js';
import { createPool } from '../stores/postgres/postgres.pool.js';
import type { SessionStore } from '../stores/session-store.js';
import { StoreWarnings } from '../stores/toolkit/store-runtime.js';
import type { ResolvedLegacyOptions } from './legacy-options.js';

/**
 * Where express-session's stores keep a session, read once and removed in the same step, so that
 * of two requests bringing the same old cookie (on one node or two) exactly one gets its data.
 * The entry's expiry comes from the store (the Redis TTL, the `expire` column), never from the
 * JSON's `cookie.expires`: an active user's JSON can carry a past date, since express-session's
 * touches move only the store's expiry.
 */

/** An old session taken out of its store: its JSON, and how to put it back if it cannot move. */
export interface TakenLegacySession {
  json: string;
  /** Puts the entry back as it was, unless the old deployment has written one under its id meanwhile. */
  putBack(): Promise<void>;
}

export interface LegacyStore {
  /** `'connect-redis'` or `'connect-pg-simple'`: how logs and 503 answers name it. */
  readonly kind: string;
  /** The live entry of this id, removed in the same step; null when there is none (expired, or taken already). */
  take(id: string): Promise<TakenLegacySession | null>;
  /** Closes a connection the module made for the old sessions; one it was given stays open. */
  close(): Promise<void>;
}

/**
 * Reads, deletes and gives back the remaining TTL of a connect-redis entry in one step (GETDEL
 * alone loses the TTL that putting it back needs). Anything but a string under the key is not
 * connect-redis's, and is left alone: false.
 */
const TAKE_SCRIPT = `
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return false end
local value = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {value, ttl}`;

/** connect-redis: the session's JSON in the string `<prefix><id>`, with a TTL (none with `disableTTL`). */
class ConnectRedisStore implements LegacyStore {
  readonly kind = 'connect-redis';

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly owned: boolean,
  ) {}

  async take(id: string): Promise<TakenLegacySession | null> {
    const key = this.prefix + id;
    const taken = (await this.client.eval(TAKE_SCRIPT, 1, key)) as [string, number] | null;
    if (!taken) return null;
    const [json, ttl] = taken;
    return {
      json,
      putBack: async () => {
        // NX: an entry the old deployment wrote meanwhile is newer than this one. No TTL (-1): connect-redis's disableTTL.
        if (ttl > 0) await this.client.set(key, json, 'PX', ttl, 'NX');
        else await this.client.set(key, json, 'NX');
      },
    };
  }

  async close(): Promise<void> {
    if (this.owned) await closeClient(this.client);
  }
}

/**
 * connect-pg-simple: a row `(sid, sess json, expire timestamp)`. `expire` is a timestamp without
 * time zone, written in the database session's TimeZone, so it is compared in SQL, as
 * connect-pg-simple compares it, and handed back as text; its pruner leaves expired rows behind
 * for a while, which the comparison skips.
 */
class ConnectPgSimpleStore implements LegacyStore {
  readonly kind = 'connect-pg-simple';
  private readonly takeSql: string;
  private readonly putBackSql: string;

  constructor(
    private readonly pool: Pool,
    table: string,
    private readonly owned: boolean,
  ) {
    this.takeSql = `DELETE FROM ${table} WHERE sid = $1 AND expire >= now() RETURNING sess::text AS sess, expire::text AS expire`;
    this.putBackSql = `INSERT INTO ${table} (sid, sess, expire) VALUES ($1, $2::json, $3::timestamp) ON CONFLICT (sid) DO NOTHING`;
  }

  async take(id: string): Promise<TakenLegacySession | null> {
    const { rows } = await this.pool.query<{ sess: string; expire: string }>(this.takeSql, [id]);
    if (rows.length === 0) return null;
    const { sess, expire } = rows[0];
    return {
      json: sess,
      putBack: async () => {
        await this.pool.query(this.putBackSql, [id, sess, expire]);
      },
    };
  }

  async close(): Promise<void> {
    if (this.owned) await this.pool.end();
  }
}

/** connect-pg-simple's quoting of `schemaName` and `tableName`: always quoted, inner quotes doubled. */
function quotedTable(tableName: string, schemaName?: string): string {
  const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;
  return schemaName === undefined ? quote(tableName) : `${quote(schemaName)}.${quote(tableName)}`;
}

/**
 * The old sessions' store, on the connection `legacy` names, or else on the module store's own:
 * the Redis client or the PostgreSQL pool it shares (see SessionStore.connection).
 * @throws SessionConfigError when neither gives a connection of the right kind.
 */
export async function openLegacyStore(options: ResolvedLegacyOptions, moduleStore: SessionStore, logger: () => LoggerService): Promise<LegacyStore> {
  const shared = moduleStore.connection;
  if (options.store === 'connect-redis') {
    if (options.client) return new ConnectRedisStore(options.client as unknown as Redis, options.prefix, false);
    if (options.url) {
      const client = createClient(await loadIoredis(), { type: 'redis', url: options.url }) as Redis;
      reportErrors(client, new StoreWarnings('express-session sessions (connect-redis)', logger));
      return new ConnectRedisStore(client, options.prefix, true);
    }
    if (shared?.type !== 'redis')
      throw new SessionConfigError([SessionMessages.legacyNeedsConnection('connect-redis', moduleStore.kind, 'client or legacy.url')]);
    return new ConnectRedisStore(shared.client as unknown as Redis, options.prefix, false);
  }
  const table = quotedTable(options.tableName, options.schemaName);
  if (options.pool) return new ConnectPgSimpleStore(options.pool as unknown as Pool, table, false);
  if (options.connectionString) {
    const pool = await createPool({ type: 'postgres', connectionString: options.connectionString });
    const warnings = new StoreWarnings('express-session sessions (connect-pg-simple)', logger);
    pool.on('error', (error) => warnings.warn(error));
    return new ConnectPgSimpleStore(pool, table, true);
  }
  if (shared?.type !== 'postgres')
    throw new SessionConfigError([SessionMessages.legacyNeedsConnection('connect-pg-simple', moduleStore.kind, 'pool or legacy.connectionString')]);
  return new ConnectPgSimpleStore(shared.pool as unknown as Pool, table, false);
}
