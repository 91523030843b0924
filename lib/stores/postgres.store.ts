import type { OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Pool, PoolConfig } from 'pg';
import { SessionFieldNotStorableError, SessionMessages } from '../session.errors.js';
import { defineField, encodeFields } from './field-codec.js';
import { SessionStore } from './session-store.js';
import { startSweeper, StoreWarnings } from './store-runtime.js';
import type { SessionChange, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import type { PostgresStoreConfig } from './store-config.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool. The store never ends a pool it was given. */
  pool: Pool;
  /** Table name, optionally schema-qualified (`auth.sessions`). @default 'sessions' */
  table?: string;
  /** How often expired rows are deleted (ms). @default 60000 */
  sweepInterval?: number;
  /** End the pool on shutdown: only for a pool the store created. @default false */
  ownsPool?: boolean;
}

/** Rows deleted per sweeper statement: small, so no statement holds many row locks for long. */
const SWEEP_BATCH = 500;

/** The columns of a session row, with times as milliseconds since the epoch. */
const SELECT_TIMES = `floor(extract(epoch from created_at) * 1000)::bigint AS created,
  floor(extract(epoch from last_seen_at) * 1000)::bigint AS last_seen,
  floor(extract(epoch from expires_at) * 1000)::bigint AS expires`;

/**
 * The DDL of the session table, run by `createTable: true` and shown to users who create it
 * themselves.
 */
export function sessionTableDdl(table = 'sessions'): string {
  const name = quoteTable(table);
  const index = (suffix: string) => quoteIdentifier(indexName(table.split('.').pop()!, suffix));
  return [
    `CREATE TABLE IF NOT EXISTS ${name} (`,
    `  id text PRIMARY KEY,`,
    `  data jsonb NOT NULL DEFAULT '{}'::jsonb,`,
    `  user_id text,`,
    `  created_at timestamptz NOT NULL,`,
    `  last_seen_at timestamptz NOT NULL,`,
    `  expires_at timestamptz NOT NULL`,
    `);`,
    `CREATE INDEX IF NOT EXISTS ${index('expires_at_idx')} ON ${name} (expires_at);`,
    `CREATE INDEX IF NOT EXISTS ${index('user_id_idx')} ON ${name} (user_id) WHERE user_id IS NOT NULL;`,
  ].join('\n');
}

/**
 * `<table>_<suffix>`; past PostgreSQL's 63-byte limit (where names are cut, and two indexes could
 * end up with the table's own name), a shortened name made unique by a hash of the table's.
 */
function indexName(base: string, suffix: string): string {
  const name = `${base}_${suffix}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(base).digest('hex').slice(0, 8);
  return `${base.slice(0, 63 - suffix.length - 10)}_${hash}_${suffix}`;
}

/**
 * The escapes JSON.stringify writes for what jsonb refuses: U+0000 and unpaired surrogates (an
 * escape counts when an even number of backslashes precedes its own).
 */
const UNSTORABLE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/**
 * Sessions in one PostgreSQL table, shared by every node: a `jsonb` column holds the data, and a
 * commit is one `UPDATE` that applies the delta on the server (`data - removed || changed`) only
 * if the row still exists and has not expired, so concurrent writers to different fields both
 * survive and a write racing a logout finds no row.
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: { type: 'postgres', connectionString: process.env.DATABASE_URL, createTable: true },
 * });
 * ```
 */
export class PostgresStore extends SessionStore implements OnApplicationShutdown {
  readonly kind = 'postgres';

  private readonly warnings = new StoreWarnings('PostgreSQL session store');
  private readonly pool: Pool;
  private readonly table: string;
  private readonly ownsPool: boolean;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    super();
    this.pool = options.pool;
    this.table = quoteTable(options.table ?? 'sessions');
    this.ownsPool = options.ownsPool ?? false;
    this.timer = startSweeper(() => this.sweep(), options.sweepInterval ?? 60_000, (error) => this.warnings.warn(error));
  }

  /**
   * Builds a store from a config object: creates (and owns) a pool unless one is given, then
   * creates the table (`createTable: true`) or checks that it exists. `pg` is an optional peer
   * dependency, loaded only here.
   */
  static async fromConfig(config: PostgresStoreConfig): Promise<PostgresStore> {
    const table = config.table ?? 'sessions';
    const pool = config.pool ?? (await createPool(config));
    const store = new PostgresStore({ pool, table, sweepInterval: config.sweepInterval, ownsPool: !config.pool });
    if (!config.pool) pool.on('error', (error) => store.warnings.warn(error));
    try {
      await (config.createTable ? store.createTable(table) : store.checkTable(table));
    } catch (error) {
      await store.onApplicationShutdown();
      throw error;
    }
    return store;
  }

  async get(id: string): Promise<StoredSession | null> {
    const { rows } = await this.pool.query(
      `SELECT data, user_id, ${SELECT_TIMES} FROM ${this.table} WHERE id = $1 AND expires_at > now()`,
      [id],
    );
    if (rows.length === 0) return null;
    const [row] = rows;
    if (typeof row.data !== 'object' || row.data === null || Array.isArray(row.data)) return null;
    const data: SessionFields = Object.create(null);
    for (const name of Object.keys(row.data)) defineField(data, name, row.data[name]);
    return {
      id,
      data,
      createdAt: Number(row.created),
      lastSeenAt: Number(row.last_seen),
      expiresAt: Number(row.expires),
      userId: row.user_id ?? null,
    };
  }

  async create(session: StoredSession): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table} (id, data, user_id, created_at, last_seen_at, expires_at)
       VALUES ($1, $2::jsonb, $3, to_timestamp($4 / 1000.0), to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0))
       ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id, created_at = EXCLUDED.created_at,
         last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at`,
      [session.id, jsonObject(session.data).json, session.userId, session.createdAt, session.lastSeenAt, session.expiresAt],
    );
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    const { json, removed } = jsonObject(change.set);
    const result = await this.pool.query(
      `UPDATE ${this.table}
       SET data = (data - $2::text[]) || $3::jsonb,
           last_seen_at = to_timestamp($4 / 1000.0), expires_at = to_timestamp($5 / 1000.0),
           user_id = CASE WHEN $6 THEN $7 ELSE user_id END
       WHERE id = $1 AND expires_at > now()`,
      [id, [...change.unset, ...removed], json, change.lastSeenAt, change.expiresAt, change.userId !== undefined, change.userId ?? null],
    );
    return result.rowCount === 1;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    // One statement: the new row exists only if the old one was live and is now deleted.
    const result = await this.pool.query(
      `WITH old AS (DELETE FROM ${this.table} WHERE id = $1 AND expires_at > now() RETURNING id)
       INSERT INTO ${this.table} (id, data, user_id, created_at, last_seen_at, expires_at)
       SELECT $2, $3::jsonb, $4, to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0)
       WHERE EXISTS (SELECT 1 FROM old)`,
      [oldId, next.id, jsonObject(next.data).json, next.userId, next.createdAt, next.lastSeenAt, next.expiresAt],
    );
    return result.rowCount === 1;
  }

  async destroy(id: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.table} WHERE id = $1`, [id]);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    const { rows } = await this.pool.query(
      `SELECT id, ${SELECT_TIMES} FROM ${this.table} WHERE user_id = $1 AND expires_at > now() ORDER BY created_at`,
      [userId],
    );
    return rows.map((row) => ({
      id: row.id,
      createdAt: Number(row.created),
      lastSeenAt: Number(row.last_seen),
      expiresAt: Number(row.expires),
    }));
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<number> {
    const { rows } = await this.pool.query(
      `WITH gone AS (DELETE FROM ${this.table} WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING expires_at)
       SELECT count(*) FILTER (WHERE expires_at > now())::int AS live FROM gone`,
      [userId, exceptId ?? null],
    );
    return rows[0].live;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /**
   * Deletes expired rows in small batches. `SKIP LOCKED` lets several nodes sweep at once: each
   * takes rows the others are not deleting, so none waits on another and none deadlocks.
   * @returns how many rows this call deleted.
   */
  async sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.pool.query(
        `DELETE FROM ${this.table} WHERE id IN (
           SELECT id FROM ${this.table} WHERE expires_at <= now() ORDER BY expires_at LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
      );
      total += result.rowCount ?? 0;
      if ((result.rowCount ?? 0) < SWEEP_BATCH) return total;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    if (this.closed || !this.ownsPool) return;
    this.closed = true;
    await this.pool.end();
  }

  // ---- Start-up ----------------------------------------------------------------------------

  /** Creates the table and its indexes; several nodes starting at once take turns. */
  private async createTable(table: string): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // CREATE ... IF NOT EXISTS is not safe against itself (two sessions can both try to
      // create the table's type): an advisory lock makes concurrent start-ups run it in turn.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`nestjs-session-sync:${table}`]);
      await client.query(sessionTableDdl(table));
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async checkTable(table: string): Promise<void> {
    const { rows } = await this.pool.query(`SELECT to_regclass($1) AS found`, [quoteTable(table)]);
    if (rows[0].found === null) throw new Error(SessionMessages.postgresTableMissing(table, sessionTableDdl(table)));
  }

}

/** Data fields as one JSON object text, and the fields whose value removes them. */
function jsonObject(fields: SessionFields): { json: string; removed: string[] } {
  const members: string[] = [];
  const removed: string[] = [];
  for (const [name, json] of encodeFields(fields)) {
    // Refused here, before anything is sent, as input the client can correct (a 400), rather
    // than by the server as an error that would read as an outage.
    if (json !== undefined && UNSTORABLE.test(json)) throw new SessionFieldNotStorableError(name, 'postgres');
    if (json === undefined) removed.push(name);
    else members.push(`${JSON.stringify(name)}:${json}`);
  }
  return { json: `{${members.join(',')}}`, removed };
}

/** Identifiers are validated at start-up; quoting keeps them exactly as given. */
function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}

/** Outage policy of the pool the store creates: bounded waits everywhere, so requests fail fast. */
async function createPool(config: PostgresStoreConfig): Promise<Pool> {
  let pg: typeof import('pg');
  try {
    pg = await import('pg');
  } catch {
    throw new Error(SessionMessages.driverMissing('postgres', 'pg'));
  }
  const Pool = pg.Pool ?? (pg as unknown as { default: typeof import('pg') }).default.Pool;
  const queryTimeout = config.queryTimeout ?? 2000;
  const options: PoolConfig = {
    connectionString: config.connectionString ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    max: config.poolSize ?? 10,
    connectionTimeoutMillis: queryTimeout,
    query_timeout: queryTimeout,
    statement_timeout: queryTimeout,
    idleTimeoutMillis: 30_000,
  };
  return new Pool(options);
}
