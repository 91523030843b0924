import type { OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { ClientConfig, Pool, PoolConfig } from 'pg';
import { SessionFieldNotStorableError, SessionMessages, SessionStoreUnavailableError } from '../session.errors.js';
import { clientMember, defineField, encodeFields, readClient } from './field-codec.js';
import { assertUserIdKeepable, SessionStore, UNKEEPABLE_CHARACTER } from './session-store.js';
import { startSweeper, StoreWarnings, withinTime } from './store-runtime.js';
import type { SessionChange, SessionClient, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import type { PostgresStoreConfig } from './store-config.js';
import type { PostgresPool } from './driver-types.js';

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
}

/** Rows deleted per sweeper statement: small, so no statement holds many row locks for long. */
const SWEEP_BATCH = 500;
/** Default of {@link PostgresStoreOptions.lockTimeout} (ms). */
const DEFAULT_LOCK_TIMEOUT = 2000;

/**
 * Columns added since the table's first version, with their type. A table made by an earlier
 * version gets them with `ALTER TABLE … ADD COLUMN` (createTable), or start-up says to add them.
 */
const ADDED_COLUMNS: ReadonlyArray<readonly [name: string, type: string]> = [['client', 'jsonb']];

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
    `  expires_at timestamptz NOT NULL,`,
    `  client jsonb`,
    `);`,
    `CREATE INDEX IF NOT EXISTS ${index('expires_at_idx')} ON ${name} (expires_at);`,
    `CREATE INDEX IF NOT EXISTS ${index('user_id_idx')} ON ${name} (user_id) WHERE user_id IS NOT NULL;`,
  ].join('\n');
}

/** The statement that adds a column a table made by an earlier version lacks. */
function addColumnDdl(table: string, column: string, type: string): string {
  return `ALTER TABLE ${quoteTable(table)} ADD COLUMN IF NOT EXISTS ${quoteIdentifier(column)} ${type};`;
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
  private readonly timer: NodeJS.Timeout;
  private readonly userLocks: AdvisoryUserLocks;
  /** Set once the table is known to exist: until then the sweeper's timer does not sweep. */
  private tableFound = false;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    super();
    this.pool = options.pool as Pool;
    this.table = quoteTable(options.table ?? 'sessions');
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
   * dependency, loaded only here.
   */
  static async fromConfig(config: PostgresStoreConfig): Promise<PostgresStore> {
    const table = config.table ?? 'sessions';
    const created = config.pool ? undefined : await createPool(config);
    const { sweepInterval, lockTimeout } = config;
    const store = new PostgresStore({ pool: created ?? config.pool!, table, sweepInterval, lockTimeout, ownsPool: created !== undefined });
    created?.on('error', (error) => store.warnings.warn(error));
    try {
      await (config.createTable ? store.createTable(table) : store.checkTable(table));
    } catch (error) {
      await store.onApplicationShutdown();
      throw error;
    }
    store.tableFound = true;
    return store;
  }

  async get(id: string): Promise<StoredSession | null> {
    const { rows } = await this.pool.query(`SELECT data, user_id, client, ${SELECT_TIMES} FROM ${this.table} WHERE id = $1 AND expires_at > now()`, [
      id,
    ]);
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
      ...clientMember(readClient(row.client)),
    };
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    await this.pool.query(
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
    const result = await this.pool.query(
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
    const result = await this.pool.query(
      `WITH old AS (DELETE FROM ${this.table} WHERE id = $1 AND expires_at > now() RETURNING id)
       INSERT INTO ${this.table} (id, data, user_id, created_at, last_seen_at, expires_at, client)
       SELECT $2, $3::jsonb, $4, to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0), $8::jsonb
       WHERE EXISTS (SELECT 1 FROM old)`,
      [oldId, next.id, jsonObject(next.data).json, next.userId, next.createdAt, next.lastSeenAt, next.expiresAt, clientJson(next.client)],
    );
    return result.rowCount === 1;
  }

  async destroy(id: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.table} WHERE id = $1`, [id]);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const { rows } = await this.pool.query(
      `SELECT id, client, ${SELECT_TIMES} FROM ${this.table} WHERE user_id = $1 AND expires_at > now() ORDER BY created_at`,
      [userId],
    );
    return rows.map((row) => ({
      id: row.id,
      createdAt: Number(row.created),
      lastSeenAt: Number(row.last_seen),
      expiresAt: Number(row.expires),
      ...clientMember(readClient(row.client)),
    }));
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
   * Runs `critical` while no other caller on any node sharing the table runs one for the same
   * user. Callers of this store in this process queue first (the base class); the one at the
   * head then takes a PostgreSQL advisory lock keyed by the table and the user, on a connection
   * the store opens for these locks alone (see {@link AdvisoryUserLocks} for why). The lock is
   * released when `critical` settles, also when it throws. Another node holding it for longer
   * than `lockTimeout`, or a database that does not answer, fails the call with
   * SessionStoreUnavailableError (a 503): it never hangs. Different users never wait for each
   * other, and `critical` uses the pool as it would without the lock, so no number of users
   * signing in at once can exhaust it.
   */
  override withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return super.withUserLock(userId, async () => {
      const release = await this.userLocks.acquire(userId);
      try {
        return await critical();
      } finally {
        await release();
      }
    });
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
      // A table made by an earlier version lacks the newer columns. Looked up first: ALTER TABLE
      // takes an exclusive lock even when there is nothing to add, which would stall a busy table
      // at every start-up.
      for (const [column, type] of await missingColumns(client, table)) await client.query(addColumnDdl(table, column, type));
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
    const [missing] = await missingColumns(this.pool, table);
    if (missing) {
      const [column, type] = missing;
      throw new Error(SessionMessages.postgresColumnMissing(table, column, addColumnDdl(table, column, type)));
    }
  }
}

/** The {@link ADDED_COLUMNS} the table does not have. */
async function missingColumns(db: Queryable, table: string): Promise<Array<readonly [string, string]>> {
  const { rows } = await db.query(
    `SELECT name FROM unnest($2::text[]) AS wanted(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = to_regclass($1) AND attname = wanted.name AND attnum > 0 AND NOT attisdropped)`,
    [quoteTable(table), ADDED_COLUMNS.map(([name]) => name)],
  );
  const missing = new Set(rows.map((row) => row.name as string));
  return ADDED_COLUMNS.filter(([name]) => missing.has(name));
}

// ---- User locks ---------------------------------------------------------------------------------

/** What the lock code needs of a connection: a `pg` Client, or whatever Client class the pool uses. */
interface LockConnection {
  connect(): Promise<unknown>;
  query(text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
  on(event: 'error' | 'end', listener: () => void): unknown;
}

interface Queryable {
  query(text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

interface UserLockSettings {
  /** Makes a new, unconnected lock connection that gives up connecting after `timeout` ms. */
  open: (timeout: number) => LockConnection;
  /** Keys are derived from it and the user id: locks of another table never collide. */
  namespace: string;
  /** Longest wait for a busy lock, and for any one statement on the lock connection (ms). */
  timeout: number;
  failure: (cause: unknown, detail: string) => Error;
  warn: (message: string) => void;
}

/**
 * Users' sign-in locks as session-level advisory locks, taken with `pg_try_advisory_lock` on one
 * connection the store opens for them alone, outside the pool.
 *
 * Why this design: a blocking `pg_advisory_lock` on a pooled connection holds that connection
 * while it waits, and the holder's critical section needs pooled connections of its own; with
 * more users signing in than the pool has connections, every connection can end up waiting for
 * a lock whose holder waits for a connection, and the pool deadlocks. Here the lock connection
 * never waits on the server (it tries, and the waiting is done in Node with a short backoff), it
 * takes no slot of the pool, and it only runs statements that answer at once. A lease row in a
 * lock table would need a second table, clean-up of rows left by crashed nodes and a clock to
 * expire them; an advisory lock is freed by the server the moment its connection goes away.
 *
 * Session-level advisory locks are re-entrant on one connection, so two callers of this process
 * must never ask for the same user's lock at once: the base class's per-user queue sees to that.
 *
 * Any doubt about the connection (an error, a statement that does not answer in `timeout`)
 * closes it, which frees every lock it held on the server: a lock is never left held by a
 * connection nobody uses. The limit is that of any lease: a critical section still running when
 * its connection is lost no longer excludes other nodes. Needs a session-level connection
 * (directly to PostgreSQL, or a pooler in session mode, not PgBouncer's transaction mode).
 */
class AdvisoryUserLocks {
  private connection: Promise<LockConnection> | undefined;
  /** The connection `connection` resolves to, from the moment it is opened. */
  private live: LockConnection | undefined;
  /** Per connection, the statement sent last: the next one waits for it. */
  private readonly statements = new WeakMap<LockConnection, Promise<unknown>>();
  private closed = false;

  constructor(private readonly settings: UserLockSettings) {}

  /**
   * Takes the lock of `userId`, waiting up to `timeout` for another node to release it.
   * @returns the function that releases it (it never throws).
   */
  async acquire(userId: string): Promise<() => Promise<void>> {
    const key = advisoryKey(this.settings.namespace, userId);
    const deadline = Date.now() + this.settings.timeout;
    for (let attempt = 0; ; attempt++) {
      const connection = await this.connected();
      const { rows } = await this.run(connection, 'SELECT pg_try_advisory_lock($1::bigint) AS locked', [key]);
      if (rows[0]?.locked === true) return () => this.release(connection, key);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw this.settings.failure(undefined, SessionMessages.userLockTimeout('another node', this.settings.timeout));
      }
      await sleep(Math.min(left, backoff(attempt)));
    }
  }

  /** Closes the lock connection, freeing its locks; later acquisitions fail. */
  async close(): Promise<void> {
    this.closed = true;
    const connection = this.live;
    if (connection) await this.discard(connection);
  }

  private async release(connection: LockConnection, key: string): Promise<void> {
    // A connection that went away took its locks with it.
    if (this.live !== connection) return;
    try {
      await this.run(connection, 'SELECT pg_advisory_unlock($1::bigint)', [key]);
    } catch (error) {
      // run() has closed the connection, which frees the lock: the caller's work stands.
      this.settings.warn(SessionMessages.postgresUserLockNotReleased(describe(error)));
    }
  }

  /** The lock connection, opened on first use and again after it was lost. */
  private connected(): Promise<LockConnection> {
    if (this.closed) return Promise.reject(this.settings.failure(undefined, SessionMessages.postgresUserLockFailed('the store was shut down')));
    if (!this.connection) {
      const opening = this.open();
      this.connection = opening;
      // A failed attempt is not kept: the next acquisition tries again.
      opening.catch(() => {
        if (this.connection === opening) this.connection = undefined;
      });
    }
    return this.connection;
  }

  private async open(): Promise<LockConnection> {
    let connection: LockConnection | undefined;
    try {
      connection = this.settings.open(this.settings.timeout);
      const opened = connection;
      this.live = opened;
      // Without a listener, an idle connection's error (the server restarting) would crash the process.
      opened.on('error', () => void this.discard(opened));
      opened.on('end', () => void this.discard(opened));
      await withinTime(opened.connect(), this.settings.timeout, noAnswer(this.settings.timeout));
      return opened;
    } catch (error) {
      if (connection) await this.discard(connection);
      throw this.settings.failure(error, SessionMessages.postgresUserLockFailed(describe(error)));
    }
  }

  /**
   * Runs one statement once the connection's previous ones are done (a `pg` client must not be
   * given a query while it runs another), bounded from when it starts. On any failure the
   * connection is closed, since whether it holds the lock is then unknown.
   */
  private run(connection: LockConnection, text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }> {
    const previous = this.statements.get(connection) ?? Promise.resolve();
    const result = previous.then(async () => {
      try {
        return await withinTime(connection.query(text, values), this.settings.timeout, noAnswer(this.settings.timeout));
      } catch (error) {
        await this.discard(connection);
        throw this.settings.failure(error, SessionMessages.postgresUserLockFailed(describe(error)));
      }
    });
    this.statements.set(
      connection,
      result.then(
        () => undefined,
        () => undefined,
      ),
    );
    return result;
  }

  /** Forgets the connection and closes it, without waiting on a server that may not answer. */
  private async discard(connection: LockConnection): Promise<void> {
    if (this.live === connection) {
      this.live = undefined;
      this.connection = undefined;
    }
    await withinTime(connection.end(), this.settings.timeout, noAnswer(this.settings.timeout)).catch(() => undefined);
  }
}

/**
 * The advisory lock key of one user: 64 bits of the SHA-256 of the namespace (the table) and the
 * user id, as a signed bigint. Computed in Node, so every node agrees on it whatever the server
 * version. UTF-8 keeps user ids apart here because the ones it could not (an unpaired surrogate)
 * are refused before (assertUserIdKeepable).
 */
function advisoryKey(namespace: string, userId: string): string {
  return createHash('sha256').update(namespace).update('\0').update(userId).digest().readBigInt64BE(0).toString();
}

/**
 * A connection made like the pool's own (same options, same Client class), outside the pool, so
 * it never takes a slot the sessions' queries need.
 */
function lockConnectionOf(pool: Pool, timeout: number): LockConnection {
  const { Client, options } = pool as unknown as { Client?: new (config: ClientConfig) => LockConnection; options?: ClientConfig };
  if (typeof Client !== 'function') throw new Error('the pool cannot make a connection of its own (not a pg Pool)');
  const connectionTimeoutMillis = Math.min(options?.connectionTimeoutMillis || timeout, timeout);
  return new Client({ ...options, connectionTimeoutMillis, keepAlive: true });
}

/** Short, growing, jittered waits, so waiters on several nodes neither spin nor move in lockstep. */
function backoff(attempt: number): number {
  return Math.min(5 * 2 ** attempt, 50) * (0.5 + Math.random());
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error of a lock-connection call that did not answer in time. */
const noAnswer = (ms: number) => (): Error => new Error(`no answer within ${ms} ms`);

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- Values ---------------------------------------------------------------------------------------

/** The client record as jsonb text, or null for none (absent or null). */
function clientJson(client: SessionClient | null | undefined): string | null {
  if (!client) return null;
  const json = JSON.stringify(client);
  // jsonb refuses NUL and lone surrogates. A client record only informs, so such characters are
  // replaced rather than failing the sign-in that records it.
  return UNSTORABLE.test(json) ? JSON.stringify(client, (_, value: unknown) => (typeof value === 'string' ? storable(value) : value)) : json;
}

/** Every character of a text that PostgreSQL cannot keep, as the user-id rule defines them. */
const UNKEEPABLE_CHARACTERS = new RegExp(UNKEEPABLE_CHARACTER.source, 'g');

function storable(text: string): string {
  return text.replace(UNKEEPABLE_CHARACTERS, '\ufffd');
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
