import type { OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Pool, QueryResult } from 'pg';
import { SessionStoreUnavailableError } from '../../session.errors.js';
import { clientMember, readClient } from '../toolkit/field-codec.js';
import { assertUserIdKeepable, SessionStore } from '../session-store.js';
import { checkStoreOptions } from '../toolkit/options-check.js';
import { startSweeper, StoreWarnings } from '../toolkit/store-runtime.js';
import type { SessionChange, SessionSummary, StoreConnection, StoredSession } from '../session-store.js';
import type { PostgresStoreConfig } from '../store-config.js';
import type { PostgresPool } from '../driver-types.js';
import { clientJson, jsonObject, rowFields, rowTimes, SELECT_TIMES } from './postgres.codec.js';
import { AdvisoryUserLocks } from './postgres.locks.js';
import { createPool, lockConnectionOf } from './postgres.pool.js';
import { checkTable, createTable, quoteTable } from './postgres.schema.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool. The store never ends a pool it was given. */
  pool: PostgresPool;
  /** Table name, optionally schema-qualified (`auth.sessions`). @default 'sessions' */
  table?: string;
  /** How often expired rows are deleted (ms). @default 60000 */
  sweepInterval?: number;
  /** End the pool on shutdown: only for a pool the store created. @default false */
  ownsPool?: boolean;
  /**
   * How long {@link PostgresStore.withUserLock} waits for a user's lock held by another node,
   * and for the lock connection to answer (ms). @default 2000
   */
  lockTimeout?: number;
  /** Per-request statements as named prepared statements (see PostgresStoreConfig). @default true */
  preparedStatements?: boolean;
}

/** Rows deleted per sweeper statement: small, so no statement holds many row locks for long. */
const SWEEP_BATCH = 500;
/** Default of {@link PostgresStoreOptions.lockTimeout} (ms). */
const DEFAULT_LOCK_TIMEOUT = 2000;

/**
 * Sessions in one PostgreSQL table, shared by every node: a `jsonb` column holds the data, and a
 * commit is one `UPDATE` that applies the delta on the server (`data - removed || changed`) only
 * if the row still exists and has not expired, so concurrent writers to different fields both
 * survive and a write racing a logout finds no row. The client record is a nullable `client
 * jsonb` column beside the data, set, cleared or kept by that same statement.
 *
 * Expired rows are deleted by a sweeper on every node; each deleted row is reported to
 * {@link SessionStore.watchExpiry} listeners by the node whose `DELETE` removed it, so every
 * expiry is reported once across the nodes, within one sweep interval. Users' sign-in locks
 * ({@link withUserLock}) are PostgreSQL advisory locks held on one extra connection per store.
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

  private readonly warnings = new StoreWarnings('PostgreSQL session store', () => this.logger);
  private readonly pool: Pool;
  private readonly table: string;
  private readonly ownsPool: boolean;
  /** The prefix of this store's prepared statement names; null: statements are sent unnamed. */
  private readonly statementPrefix: string | null;
  private readonly timer: NodeJS.Timeout;
  private readonly userLocks: AdvisoryUserLocks;
  /** Set once the table is known to exist: until then the sweeper's timer does not sweep. */
  private tableFound = false;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    super();
    const { pool, table, sweepInterval, lockTimeout, preparedStatements } = options;
    checkStoreOptions({ type: 'postgres', pool, table, sweepInterval, lockTimeout, preparedStatements });
    this.pool = options.pool as Pool;
    this.table = quoteTable(options.table ?? 'sessions');
    // One name per statement and table: two stores on one pool may use different tables.
    this.statementPrefix = preparedStatements === false ? null : `nss_${createHash('sha256').update(this.table).digest('hex').slice(0, 12)}_`;
    this.ownsPool = options.ownsPool ?? false;
    this.userLocks = new AdvisoryUserLocks({
      open: (timeout) => lockConnectionOf(this.pool, timeout),
      namespace: `nestjs-session-sync:user-lock:${this.table}`,
      timeout: options.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
      failure: (cause, detail) => new SessionStoreUnavailableError(this.kind, cause, detail),
      warn: (message) => this.logger.warn(message),
    });
    this.timer = startSweeper(
      () => this.sweepOnTimer(),
      options.sweepInterval ?? 60_000,
      (error) => this.warnings.warn(error),
    );
  }

  /**
   * Builds a store from a config object: creates (and owns) a pool unless one is given, then
   * creates the table (`createTable: true`) or checks that it exists. `pg` is an optional peer
   * dependency, loaded only here. The config is checked as the module checks it, before any pool
   * exists.
   */
  static async fromConfig(config: PostgresStoreConfig): Promise<PostgresStore> {
    checkStoreOptions(config);
    const table = config.table ?? 'sessions';
    const created = config.pool ? undefined : await createPool(config);
    const { sweepInterval, lockTimeout, preparedStatements } = config;
    const store = new PostgresStore({
      pool: created ?? config.pool!,
      table,
      sweepInterval,
      lockTimeout,
      preparedStatements,
      ownsPool: created !== undefined,
    });
    created?.on('error', (error) => store.warnings.warn(error));
    try {
      await (config.createTable ? createTable(store.pool, table) : checkTable(store.pool, table));
    } catch (error) {
      await store.onApplicationShutdown();
      throw error;
    }
    store.tableFound = true;
    return store;
  }

  /** The store's pool, for reading express-session's connect-pg-simple sessions in the same database. */
  override get connection(): StoreConnection {
    return { type: 'postgres', pool: this.pool };
  }

  async get(id: string): Promise<StoredSession | null> {
    const { rows } = await this.statement(
      'get',
      `SELECT data, user_id, client, ${SELECT_TIMES} FROM ${this.table} WHERE id = $1 AND expires_at > now()`,
      [id],
    );
    if (rows.length === 0) return null;
    const [row] = rows;
    const data = rowFields(row.data);
    if (data === null) return null;
    return { id, data, ...rowTimes(row), userId: row.user_id ?? null, ...clientMember(readClient(row.client)) };
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    await this.statement(
      'create',
      `INSERT INTO ${this.table} (id, data, user_id, created_at, last_seen_at, expires_at, client)
       VALUES ($1, $2::jsonb, $3, to_timestamp($4 / 1000.0), to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0), $7::jsonb)
       ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id, created_at = EXCLUDED.created_at,
         last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at, client = EXCLUDED.client`,
      [
        session.id,
        jsonObject(session.data).json,
        session.userId,
        session.createdAt,
        session.lastSeenAt,
        session.expiresAt,
        clientJson(session.client),
      ],
    );
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    const { json, removed } = jsonObject(change.set);
    // userId and client: a flag says whether to write the value (set, or null to clear) or keep the column.
    const result = await this.statement(
      'commit',
      `UPDATE ${this.table}
       SET data = (data - $2::text[]) || $3::jsonb,
           last_seen_at = to_timestamp($4 / 1000.0), expires_at = to_timestamp($5 / 1000.0),
           user_id = CASE WHEN $6 THEN $7 ELSE user_id END,
           client = CASE WHEN $8 THEN $9::jsonb ELSE client END
       WHERE id = $1 AND expires_at > now()`,
      [
        id,
        [...change.unset, ...removed],
        json,
        change.lastSeenAt,
        change.expiresAt,
        change.userId !== undefined,
        change.userId ?? null,
        change.client !== undefined,
        clientJson(change.client),
      ],
    );
    return result.rowCount === 1;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    // One statement: the new row exists only if the old one was live and is now deleted.
    const result = await this.statement(
      'rotate',
      `WITH old AS (DELETE FROM ${this.table} WHERE id = $1 AND expires_at > now() RETURNING id)
       INSERT INTO ${this.table} (id, data, user_id, created_at, last_seen_at, expires_at, client)
       SELECT $2, $3::jsonb, $4, to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0), $8::jsonb
       WHERE EXISTS (SELECT 1 FROM old)`,
      [oldId, next.id, jsonObject(next.data).json, next.userId, next.createdAt, next.lastSeenAt, next.expiresAt, clientJson(next.client)],
    );
    return result.rowCount === 1;
  }

  async destroy(id: string): Promise<void> {
    await this.statement('destroy', `DELETE FROM ${this.table} WHERE id = $1`, [id]);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const { rows } = await this.pool.query(
      `SELECT id, client, ${SELECT_TIMES} FROM ${this.table} WHERE user_id = $1 AND expires_at > now() ORDER BY created_at`,
      [userId],
    );
    return rows.map((row) => ({ id: row.id, ...rowTimes(row), ...clientMember(readClient(row.client)) }));
  }

  /**
   * Destroys every session of one user, except `exceptId`. Rows of theirs that had expired but
   * were not swept yet are deleted too, and reported as expired (nobody else will), but not counted.
   */
  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    // One row back however many are deleted: the ids of the live ones, and of the expired ones.
    const { rows } = await this.pool.query(
      `WITH gone AS (DELETE FROM ${this.table} WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING id, expires_at)
       SELECT coalesce(array_agg(id) FILTER (WHERE expires_at > now()), '{}') AS live,
              coalesce(array_agg(id) FILTER (WHERE expires_at <= now()), '{}') AS expired
       FROM gone`,
      [userId, exceptId ?? null],
    );
    for (const id of rows[0].expired as string[]) this.reportExpired({ id, userId });
    return rows[0].live as string[];
  }

  /**
   * The user lock every node sharing the table sees. Callers of this store in this process queue
   * first ({@link withUserLock}); the one at the head then takes a PostgreSQL advisory lock keyed
   * by the table and the user, on a connection the store opens for these locks alone (see
   * {@link AdvisoryUserLocks} for why). The lock is released when `critical` settles, also when
   * it throws. Another node holding it for longer than `lockTimeout`, or a database that does not
   * answer, fails the call with SessionStoreUnavailableError (a 503): it never hangs. Different
   * users never wait for each other, and `critical` uses the pool as it would without the lock,
   * so no number of users signing in at once can exhaust it.
   */
  protected override lockUserAcrossNodes<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return this.userLocks.run(userId, critical);
  }

  /** One of the statements every request makes: named, so prepared once per connection, unless turned off. */
  private statement(name: string, text: string, values: unknown[]): Promise<QueryResult<any>> {
    return this.statementPrefix === null ? this.pool.query(text, values) : this.pool.query({ name: this.statementPrefix + name, text, values });
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /**
   * Deletes expired rows in small batches, and reports each row it deleted to the expiry
   * listeners. `SKIP LOCKED` lets several nodes sweep at once: each takes rows the others are not
   * deleting, so none waits on another, none deadlocks, and a row is deleted (and reported) by
   * exactly one of them. A row being extended is locked by that UPDATE and skipped; one extended
   * just before is re-checked under its lock (`FOR UPDATE` re-evaluates the condition on the
   * newest version), so a live session is never deleted.
   * @returns how many rows this call deleted.
   */
  async sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const { rows } = await this.pool.query(
        `DELETE FROM ${this.table} WHERE id IN (
           SELECT id FROM ${this.table} WHERE expires_at <= now() ORDER BY expires_at LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)
         RETURNING id, user_id`,
      );
      for (const row of rows) this.reportExpired({ id: row.id, userId: row.user_id ?? null });
      total += rows.length;
      if (rows.length < SWEEP_BATCH) return total;
    }
  }

  /** Stops the sweeper, closes the lock connection, and ends the pool if the store created it. */
  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.userLocks.close();
    if (this.closed || !this.ownsPool) return;
    this.closed = true;
    await this.pool.end();
  }

  /**
   * The timer's sweep: none until the table is known to exist. fromConfig creates or checks it
   * while the timer already runs, and a store built directly may be started before its table is
   * made: sweeping then would only log "relation does not exist".
   */
  private async sweepOnTimer(): Promise<number> {
    if (!this.tableFound) {
      const { rows } = await this.pool.query(`SELECT to_regclass($1) IS NOT NULL AS found`, [this.table]);
      if (!rows[0].found) return 0;
      this.tableFound = true;
    }
    return this.sweep();
  }
}
