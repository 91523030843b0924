import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { PostgresStore, sessionTableDdl } from '../../lib/stores/postgres/index.js';
import { SessionStoreUnavailableError } from '../../lib/session.errors.js';
import type { ExpiredSession, SessionChange, SessionClient, StoredSession } from '../../lib/stores/session-store.js';
import type { PostgresStoreConfig } from '../../lib/stores/store-config.js';
import { bothInsideAtOnce, describeSessionStoreConformance } from '../../lib/testing/index.js';
import { dumpPostgres } from '../fixtures/store-dumps.js';
import { postgresForTests, startPostgresServer, type PostgresServer } from '../support/postgres-server.js';

/**
 * PostgresStore on a real PostgreSQL: the shared conformance suite, then what only SQL can get
 * wrong — the table and its indexes, start-up races, one statement per commit, the delta applied
 * on the server, sweepers on many nodes, rows the store did not write, and who ends the pool.
 *
 * One server for the file (a throwaway cluster, or a fresh database on DATABASE_URL); every
 * describe uses a table of its own, so nothing depends on another's rows.
 */

const HOUR = 60 * 60_000;
/** Far beyond the run: no store's own sweeper timer ever fires during these tests. */
const NO_TIMER = 60 * HOUR;

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(6).toString('hex')}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { base: true }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

function change(set: Record<string, unknown>, unset: string[] = []): SessionChange {
  return { set, unset, expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() };
}

let server: PostgresServer;
/** For looking at and planting rows behind the stores' backs. */
let admin: pg.Pool;
const pools: pg.Pool[] = [];
const stores: PostgresStore[] = [];

beforeAll(async () => {
  server = await postgresForTests();
  admin = newPool();
});

afterAll(async () => {
  for (const store of stores.splice(0)) await store.onApplicationShutdown().catch(() => undefined);
  for (const pool of pools.splice(0)) if (!pool.ended) await pool.end().catch(() => undefined);
  await server?.dispose();
});

/** A pool the test owns (ended in afterAll, never by a store). */
function newPool(max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: server.url(), max });
  pool.on('error', () => undefined);
  pools.push(pool);
  return pool;
}

/** A store on `table`, shut down in afterAll. */
async function openStore(table: string, config: Partial<PostgresStoreConfig> = {}): Promise<PostgresStore> {
  const store = await PostgresStore.fromConfig({
    type: 'postgres',
    ...(config.pool ? {} : { connectionString: server.url() }),
    table,
    createTable: true,
    sweepInterval: NO_TIMER,
    ...config,
  });
  stores.push(store);
  return store;
}

async function sql<Row = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<Row[]> {
  return (await admin.query(text, params)).rows as Row[];
}

/** Rows with this id in `table`, whatever their expiry. */
async function rowCount(table: string, id: string): Promise<number> {
  const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE id = $1`, [id]);
  return row.n;
}

/** Rows inserted directly: `count` of them, expired or live, ids `<prefix>-<n>`. */
async function insertRows(table: string, prefix: string, count: number, state: 'expired' | 'live', userId: string | null = null) {
  const expires = state === 'expired' ? `now() - interval '1 hour'` : `now() + interval '1 hour'`;
  await sql(
    `INSERT INTO ${table} (id, data, user_id, created_at, last_seen_at, expires_at)
     SELECT $1 || '-' || g, jsonb_build_object('n', g), $3, now() - interval '2 hours', now() - interval '2 hours', ${expires}
     FROM generate_series(1, $2::int) AS g`,
    [prefix, count, userId],
  );
}

/** A statement a pool sent, and how many rows it affected once it finished. */
interface SentStatement {
  text: string;
  values: unknown[];
  rowCount?: number | null;
}

/**
 * Every statement sent through `pool`, from `pool.query` or from a client it hands out: each
 * client's `query` is wrapped as it connects (pool.query goes through a client too). The
 * statements still run; their row counts are noted as they finish.
 */
function recordStatements(pool: pg.Pool): SentStatement[] {
  const statements: SentStatement[] = [];
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const [first, second] = args;
      const config = typeof first === 'string' ? { text: first, values: second } : (first as { text: string; values?: unknown });
      const sent: SentStatement = { text: config.text, values: Array.isArray(config.values) ? config.values : [] };
      statements.push(sent);
      const note = (result: unknown) => {
        sent.rowCount = (result as { rowCount?: number | null } | undefined)?.rowCount;
      };
      const callback = args.at(-1);
      if (typeof callback === 'function') {
        args[args.length - 1] = (error: unknown, result: unknown) => {
          note(result);
          return (callback as (error: unknown, result: unknown) => unknown)(error, result);
        };
        return query(...args);
      }
      const result = query(...args);
      if (result instanceof Promise) result.then(note, () => undefined);
      return result;
    };
  });
  return statements;
}

const CONFORMANCE_TABLE = 'conformance_sessions';

describeSessionStoreConformance('PostgresStore', {
  // A short sweep interval: the conformance expiry reports (150 ms lifetimes) come from the sweeper.
  createStore: () => openStore(CONFORMANCE_TABLE, { sweepInterval: 100 }),
  // Read through the test's own pool, as any other client of the database would.
  dump: () => dumpPostgres(admin, CONFORMANCE_TABLE),
});

describe('PostgresStore start-up', () => {
  it('creates the table with its primary key, expiry index and per-user index when createTable is true', async () => {
    await openStore('created_sessions');

    const indexes = await sql<{ indexname: string; indexdef: string }>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'created_sessions' ORDER BY indexname`,
    );

    expect(indexes.map((index) => index.indexname)).toEqual([
      'created_sessions_expires_at_idx',
      'created_sessions_pkey',
      'created_sessions_user_id_idx',
    ]);
    expect(indexes.find((index) => index.indexname === 'created_sessions_expires_at_idx')!.indexdef).toMatch(/\(expires_at\)/);
    expect(indexes.find((index) => index.indexname === 'created_sessions_user_id_idx')!.indexdef).toMatch(/\(user_id\)/);
    expect(indexes.find((index) => index.indexname === 'created_sessions_pkey')!.indexdef).toMatch(/UNIQUE.*\(id\)/);
  });

  it('lets eight stores start at once with createTable on a database without the table, creating it once', async () => {
    const starting = Array.from({ length: 8 }, () =>
      PostgresStore.fromConfig({
        type: 'postgres',
        connectionString: server.url(),
        table: 'raced_sessions',
        createTable: true,
        poolSize: 2,
        sweepInterval: NO_TIMER,
      }),
    );

    const results = await Promise.allSettled(starting);
    const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    stores.push(...started);

    expect(results.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []))).toEqual([]);
    const tables = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname = 'raced_sessions' AND relkind = 'r'`);
    expect(tables).toEqual([{ n: 1 }]);
    const indexes = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'raced_sessions'`);
    expect(indexes).toEqual([{ n: 3 }]);
    // Every one of them works on the one table.
    const session = newSession();
    await started[0].create(session);
    for (const store of started) await expect(store.get(session.id)).resolves.not.toBeNull();
  });

  it('creates both indexes for the longest table name the options accept (63 characters)', async () => {
    const table = `long_${'n'.repeat(58)}`;
    await openStore(table);

    const indexes = await sql<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [table]);

    expect(indexes).toHaveLength(3);
    expect(indexes.filter((index) => /\(expires_at\)/.test(index.indexdef))).toHaveLength(1);
    expect(indexes.filter((index) => /\(user_id\)/.test(index.indexdef))).toHaveLength(1);
  });

  it('refuses to start with createTable false when the table is missing, naming it and giving the DDL', async () => {
    const starting = PostgresStore.fromConfig({ type: 'postgres', connectionString: server.url(), table: 'missing_sessions', createTable: false });

    await expect(starting).rejects.toThrow('missing_sessions');
    await expect(starting).rejects.toThrow(sessionTableDdl('missing_sessions'));
    await expect(starting).rejects.toThrow(/CREATE TABLE[^;]*missing_sessions/);
    // Refusing is all it did: no table appeared.
    await expect(sql(`SELECT to_regclass('missing_sessions') AS found`)).resolves.toEqual([{ found: null }]);
  });

  it('starts with createTable false when the table exists', async () => {
    await openStore('existing_sessions');

    const store = await openStore('existing_sessions', { createTable: false });

    const session = newSession();
    await store.create(session);
    await expect(store.get(session.id)).resolves.toMatchObject({ id: session.id, data: { base: true } });
  });
});

describe('PostgresStore commits', () => {
  const table = 'commit_sessions';

  beforeAll(async () => {
    await openStore(table);
  });

  it('sends one statement per commit, and that statement applies the change', async () => {
    const pool = newPool();
    const statements = recordStatements(pool);
    const store = await openStore(table, { pool, createTable: false });
    const session = newSession({ data: { keep: 1, drop: 2, change: 3 } });
    await store.create(session);
    statements.length = 0;

    await expect(store.commit(session.id, change({ change: 4, added: 'x' }, ['drop']))).resolves.toBe(true);

    expect(statements).toHaveLength(1);
    expect(statements[0].text).toMatch(/^\s*UPDATE\b/i);
    expect(statements[0].text).not.toMatch(/\b(BEGIN|COMMIT)\b/i);
    expect((await store.get(session.id))!.data).toEqual({ keep: 1, change: 4, added: 'x' });
  });

  it('applies (data - removed) || changed on the server: 30 concurrent commits from 3 pools to different fields all survive', async () => {
    const writers = await Promise.all([0, 1, 2].map(() => openStore(table, { pool: newPool(10), createTable: false })));
    const initial: Record<string, unknown> = { keep: 'me' };
    for (let i = 0; i < 30; i++) initial[`old${i}`] = i;
    const session = newSession({ data: initial });
    await writers[0].create(session);

    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => writers[i % 3].commit(session.id, change({ [`field${i}`]: { i } }, [`old${i}`]))),
    );

    expect(results).toEqual(Array(30).fill(true));
    const expected: Record<string, unknown> = { keep: 'me' };
    for (let i = 0; i < 30; i++) expected[`field${i}`] = { i };
    for (const store of writers) expect((await store.get(session.id))!.data).toEqual(expected);
  });

  it('never brings back a session when commits from another pool race its destroy', async () => {
    const [writer, destroyer] = await Promise.all([0, 1].map(() => openStore(table, { pool: newPool(10), createTable: false })));

    for (let round = 0; round < 20; round++) {
      const session = newSession({ userId: newUserId() });
      await writer.create(session);
      const commit = (i: number) => writer.commit(session.id, { ...change({ [`w${i}`]: i }), userId: session.userId });
      const before = Array.from({ length: 5 }, (_, i) => commit(i));
      const destroy = destroyer.destroy(session.id);
      const after = Array.from({ length: 5 }, (_, i) => commit(5 + i));

      await Promise.all([...before, destroy, ...after]);

      await expect(writer.get(session.id)).resolves.toBeNull();
      expect(await rowCount(table, session.id)).toBe(0);
      expect(await writer.listByUser(session.userId!)).toEqual([]);
    }
  });

  it('rotates an id keeping data, times and user, and deletes the old row', async () => {
    const store = await openStore(table, { createTable: false });
    const userId = newUserId();
    const old = newSession({ data: { cart: ['a', 'b'], userId }, userId, createdAt: Date.now() - 5_000 });
    await store.create(old);
    const next = newSession({ data: { cart: ['a', 'b'], userId }, userId, createdAt: old.createdAt });

    await expect(store.rotate(old.id, next)).resolves.toBe(true);

    expect(await rowCount(table, old.id)).toBe(0);
    expect(await rowCount(table, next.id)).toBe(1);
    await expect(store.get(next.id)).resolves.toMatchObject({ data: { cart: ['a', 'b'], userId }, userId, createdAt: old.createdAt });
    expect((await store.listByUser(userId)).map((s) => s.id)).toEqual([next.id]);
  });
});

describe('PostgresStore prepared statements', () => {
  const table = 'prepared_sessions';

  beforeAll(async () => {
    await openStore(table);
  });

  /** The prepared statements of the pool's one connection, as PostgreSQL lists them. */
  async function preparedOn(pool: pg.Pool): Promise<string[]> {
    const { rows } = await pool.query<{ name: string }>(`SELECT name FROM pg_prepared_statements ORDER BY name`);
    return rows.map((row) => row.name);
  }

  /** A session through every per-request statement: create, read, commit, rotate, destroy. */
  async function lifecycle(store: PostgresStore): Promise<void> {
    const session = newSession({ userId: newUserId() });
    await store.create(session);
    await expect(store.commit(session.id, change({ added: 1 }))).resolves.toBe(true);
    const next = newSession({ ...session, id: newId(), data: { base: true, added: 1 } });
    await expect(store.rotate(session.id, next)).resolves.toBe(true);
    await expect(store.get(next.id)).resolves.toMatchObject({ data: { base: true, added: 1 }, userId: session.userId });
    await store.destroy(next.id);
    await expect(store.get(next.id)).resolves.toBeNull();
  }

  it('prepares each per-request statement once per connection, under names of its own table', async () => {
    const pool = newPool(1);
    const store = await openStore(table, { pool, createTable: false });

    await lifecycle(store);
    await lifecycle(store);

    const names = await preparedOn(pool);
    expect(names).toHaveLength(5);
    expect(new Set(names.map((name) => name.replace(/_[a-z]+$/, ''))).size).toBe(1);
    expect(names.map((name) => name.replace(/^.*_/, ''))).toEqual(['commit', 'create', 'destroy', 'get', 'rotate']);
  });

  it('keeps two tables on one pool apart: each store its own statements', async () => {
    const pool = newPool(1);
    const other = 'prepared_sessions_other';
    await openStore(other);
    const [first, second] = [await openStore(table, { pool, createTable: false }), await openStore(other, { pool, createTable: false })];
    const session = newSession({ data: { on: 'first' } });
    await first.create(session);

    await expect(second.get(session.id)).resolves.toBeNull();
    await expect(first.get(session.id)).resolves.toMatchObject({ data: { on: 'first' } });
    expect(new Set((await preparedOn(pool)).map((name) => name.replace(/_[a-z]+$/, ''))).size).toBe(2);
  });

  it('sends them unnamed with preparedStatements: false (for poolers that cannot keep them), and works the same', async () => {
    const pool = newPool(1);
    const store = await openStore(table, { pool, createTable: false, preparedStatements: false });

    await lifecycle(store);

    expect(await preparedOn(pool)).toEqual([]);
  });

  it('refuses a preparedStatements that is not a boolean, naming the option', async () => {
    await expect(openStore(table, { preparedStatements: 'yes' as unknown as boolean })).rejects.toThrow(/preparedStatements/);
  });
});

describe('PostgresStore per-user index', () => {
  const table = 'user_index_sessions';

  it('answers listByUser from the <table>_user_id_idx index', async () => {
    const pool = newPool();
    const statements = recordStatements(pool);
    const store = await openStore(table, { pool });
    // Enough rows, spread over many users, that a sequential scan is the wrong plan.
    await sql(
      `INSERT INTO ${table} (id, data, user_id, created_at, last_seen_at, expires_at)
       SELECT 'row-' || g, '{}'::jsonb, 'user-' || (g % 1000), now(), now(), now() + interval '1 hour'
       FROM generate_series(1, 20000) AS g`,
    );
    await sql(`ANALYZE ${table}`);
    statements.length = 0;

    const listed = await store.listByUser('user-42');

    expect(listed).toHaveLength(20);
    const [statement] = statements;
    const client = await admin.connect();
    try {
      // Rules a sequential scan out whenever any index can answer: the plan names the one used.
      await client.query('SET enable_seqscan = off');
      const { rows } = await client.query(`EXPLAIN ${statement.text}`, statement.values);
      const plan = rows.map((row: Record<string, string>) => row['QUERY PLAN']).join('\n');
      expect(plan).toMatch(new RegExp(`(Index Scan|Bitmap Index Scan) on ${table}_user_id_idx`));
    } finally {
      await client.query('RESET enable_seqscan');
      client.release();
    }
  });
});

describe('PostgresStore sweeper', () => {
  it('deletes expired rows in batches, returns how many, and leaves live rows alone', async () => {
    const table = 'sweep_sessions';
    const pool = newPool();
    const statements = recordStatements(pool);
    const store = await openStore(table, { pool });
    await insertRows(table, 'expired', 1_234, 'expired');
    await insertRows(table, 'live', 50, 'live');
    const live = newSession({ expiresAt: Date.now() + HOUR });
    await store.create(live);
    statements.length = 0;

    await expect(store.sweep()).resolves.toBe(1_234);

    // In batches: several statements, none of which deleted every expired row at once.
    const deletes = statements.filter((s) => /^\s*DELETE\b/i.test(s.text));
    expect(deletes.length).toBeGreaterThan(1);
    expect(deletes.reduce((sum, s) => sum + (s.rowCount ?? 0), 0)).toBe(1_234);
    expect(Math.max(...deletes.map((s) => s.rowCount ?? 0))).toBeLessThan(1_234);
    await expect(sql(`SELECT count(*)::int AS n FROM ${table} WHERE expires_at <= now()`)).resolves.toEqual([{ n: 0 }]);
    await expect(sql(`SELECT count(*)::int AS n FROM ${table}`)).resolves.toEqual([{ n: 51 }]);
    await expect(store.get(live.id)).resolves.toMatchObject({ data: { base: true } });
    await expect(store.sweep()).resolves.toBe(0);
  });

  it('refuses a sweepInterval beyond what a timer can hold (2^31 ms and more), naming the option, as every store does', async () => {
    // Node would turn a longer delay into 1 ms, and the store would sweep without pause.
    await expect(openStore('long_interval_sessions', { pool: newPool(), sweepInterval: 2 ** 31 })).rejects.toThrow(
      /"store\.sweepInterval" must be a positive whole number/,
    );
  });

  it('lets three stores sweep one table at once: none fails or waits forever, and their counts add up to the expired rows', async () => {
    const table = 'shared_sweep_sessions';
    const sweepers = await Promise.all([0, 1, 2].map(() => openStore(table, { pool: newPool(2) })));

    for (let round = 0; round < 3; round++) {
      await insertRows(table, `expired-${round}`, 1_500, 'expired');
      await insertRows(table, `live-${round}`, 100, 'live');

      const counts = await Promise.all(sweepers.map((store) => store.sweep()));

      expect(counts.reduce((sum, n) => sum + n, 0)).toBe(1_500);
      await expect(sql(`SELECT count(*)::int AS n FROM ${table} WHERE expires_at <= now()`)).resolves.toEqual([{ n: 0 }]);
      await expect(sql(`SELECT count(*)::int AS n FROM ${table} WHERE id LIKE 'live-%'`)).resolves.toEqual([{ n: 100 * (round + 1) }]);
    }
  });
});

describe('PostgresStore and rows it did not write', () => {
  const table = 'foreign_rows_sessions';
  let store: PostgresStore;

  beforeAll(async () => {
    store = await openStore(table);
  });

  async function plant(id: string, json: string): Promise<void> {
    await sql(
      `INSERT INTO ${table} (id, data, user_id, created_at, last_seen_at, expires_at)
       VALUES ($1, $2::jsonb, NULL, now(), now(), now() + interval '1 hour')`,
      [id, json],
    );
  }

  it.each([
    ['an array', '[]'],
    ['a string', '"x"'],
    ['JSON null', 'null'],
    ['a number', '42'],
  ])('returns null without throwing for data that is %s, and leaves the row alone', async (_, json) => {
    const id = newId();
    await plant(id, json);

    await expect(store.get(id)).resolves.toBeNull();

    await expect(sql(`SELECT data::text AS data FROM ${table} WHERE id = $1`, [id])).resolves.toEqual([{ data: JSON.stringify(JSON.parse(json)) }]);
  });

  it('reads a "__proto__" key in the jsonb as a plain own field, polluting no prototype', async () => {
    const id = newId();
    await plant(id, '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "a": 1}');

    const stored = await store.get(id);

    expect(stored).not.toBeNull();
    expect(Object.keys(stored!.data).sort()).toEqual(['__proto__', 'a', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(stored!.data, '__proto__')?.value).toEqual({ polluted: true });
    expect([Object.prototype, null]).toContain(Object.getPrototypeOf(stored!.data));
    expect((stored!.data as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('PostgresStore and strings jsonb cannot hold', () => {
  const table = 'unstorable_sessions';
  let store: PostgresStore;

  beforeAll(async () => {
    store = await openStore(table);
  });

  it.each([
    ['a NUL character', 'before\u0000after'],
    ['a lone surrogate', 'broken \ud800 pair'],
  ])('rejects a value with %s as a field error naming the field, not as a driver error, writing nothing', async (_, value) => {
    const session = newSession({ data: { keep: 1 } });
    await store.create(session);

    const committing = store.commit(session.id, change({ other: 'x', note: value }));

    await expect(committing).rejects.toMatchObject({ field: 'note' });
    expect((await store.get(session.id))!.data).toEqual({ keep: 1 });
  });
});

describe('PostgresStore shutdown', () => {
  const table = 'shutdown_sessions';

  it('never ends a pool it was given', async () => {
    const pool = newPool();
    const store = await openStore(table, { pool });
    await store.ping();

    await store.onApplicationShutdown();

    expect(pool.ended).toBe(false);
    await expect(pool.query('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
  });

  it('ends the pool it created', async () => {
    const applicationName = `nss_owned_${randomBytes(4).toString('hex')}`;
    const url = new URL(server.url());
    url.searchParams.set('application_name', applicationName);
    const store = await PostgresStore.fromConfig({ type: 'postgres', connectionString: url.href, table, createTable: true, sweepInterval: NO_TIMER });
    stores.push(store);
    await Promise.all([store.ping(), store.ping(), store.ping()]);
    const connections = () => sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
    expect((await connections())[0].n).toBeGreaterThan(0);

    await store.onApplicationShutdown();

    // The server notices a closed connection a moment after the client closed it.
    for (let waited = 0; (await connections())[0].n > 0 && waited < 5_000; waited += 50) await sleep(50);
    expect(await connections()).toEqual([{ n: 0 }]);
    await expect(store.ping()).rejects.toThrow();
  });
});

describe('PostgresStore on a schema-qualified table', () => {
  const schema = `s_${randomBytes(4).toString('hex')}`;
  const table = `${schema}.sessions`;

  beforeAll(async () => {
    await sql(`CREATE SCHEMA ${schema}`);
  });

  it('creates the table and its indexes in that schema and works on it', async () => {
    const store = await openStore(table);

    const indexes = await sql<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'sessions' ORDER BY indexname`,
      [schema],
    );
    expect(indexes.map((index) => index.indexname)).toEqual(['sessions_expires_at_idx', 'sessions_pkey', 'sessions_user_id_idx']);
    await expect(sql(`SELECT to_regclass('public.sessions') AS found`)).resolves.toEqual([{ found: null }]);

    const userId = newUserId();
    const session = newSession({ userId });
    await store.create(session);
    await expect(store.commit(session.id, change({ more: 1 }))).resolves.toBe(true);
    await expect(store.get(session.id)).resolves.toMatchObject({ data: { base: true, more: 1 }, userId });
    expect((await store.listByUser(userId)).map((s) => s.id)).toEqual([session.id]);
    const next = newSession({ userId, data: { base: true, more: 1 } });
    await expect(store.rotate(session.id, next)).resolves.toBe(true);
    await insertRows(table, 'expired', 3, 'expired');
    await expect(store.sweep()).resolves.toBe(3);
    await expect(store.destroyByUser(userId)).resolves.toEqual([next.id]);
    expect(await rowCount(table, next.id)).toBe(0);

    // And a second node finds the table without creating it.
    const second = await openStore(table, { createTable: false });
    await expect(second.ping()).resolves.toBeUndefined();
  });
});

// ---- Expiry events, user locks, client records ------------------------------------------------

/**
 * Stores and pools of one test, closed right after it: these tests open many, and the server's
 * connection limit is shared by the whole file.
 */
const scopedStores: PostgresStore[] = [];
const scopedPools: pg.Pool[] = [];

async function openScoped(table: string, config: Partial<PostgresStoreConfig> = {}): Promise<PostgresStore> {
  const store = await openStore(table, config);
  scopedStores.push(store);
  return store;
}

function newScopedPool(max = 4): pg.Pool {
  const pool = newPool(max);
  scopedPools.push(pool);
  return pool;
}

async function closeScoped(): Promise<void> {
  for (const store of scopedStores.splice(0)) await store.onApplicationShutdown().catch(() => undefined);
  for (const pool of scopedPools.splice(0)) if (!pool.ended) await pool.end().catch(() => undefined);
}

/** Everything `store` reports from now on. */
function reportsOf(store: PostgresStore): ExpiredSession[] {
  const reports: ExpiredSession[] = [];
  store.watchExpiry((expired) => reports.push(expired));
  return reports;
}

/** Polls `check` until it holds or `timeout` passes; returns whether it held. */
async function until(check: () => boolean | Promise<boolean>, timeout = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

/** Resolves once the clock has passed `time` (a session with that expiry is then expired). */
async function past(time: number): Promise<void> {
  while (Date.now() <= time) await sleep(Math.max(1, time - Date.now() + 1));
}

describe('PostgresStore expiry events', () => {
  afterEach(closeScoped);

  it('reports each row its sweep deletes, once, with its id and user', async () => {
    const table = 'expiry_report_sessions';
    const store = await openScoped(table);
    const reports = reportsOf(store);
    const userId = newUserId();
    const session = newSession({ userId, expiresAt: Date.now() - 1 });
    await store.create(session);
    await insertRows(table, 'planted', 3, 'expired');

    await expect(store.sweep()).resolves.toBe(4);
    await expect(store.sweep()).resolves.toBe(0);

    expect(reports).toHaveLength(4);
    expect(reports).toEqual(expect.arrayContaining([{ id: session.id, userId }, ...[1, 2, 3].map((n) => ({ id: `planted-${n}`, userId: null }))]));
  });

  it('does not report a destroyed session, nor one extended before its expiry', async () => {
    const store = await openScoped('expiry_kept_sessions');
    const reports = reportsOf(store);
    const userId = newUserId();
    const expiresAt = Date.now() + 300;
    const [expiring, destroyed, extended] = [0, 1, 2].map(() => newSession({ userId, expiresAt }));
    for (const session of [expiring, destroyed, extended]) await store.create(session);
    await store.destroy(destroyed.id);
    await expect(store.commit(extended.id, change({ more: 1 }))).resolves.toBe(true);

    await past(expiresAt);
    await store.sweep();

    expect(reports).toEqual([{ id: expiring.id, userId }]);
    await expect(store.get(extended.id)).resolves.not.toBeNull();
  });

  it('reports each expired session once when two nodes sweep', async () => {
    const table = 'expiry_two_nodes_sessions';
    const nodes = [
      await openScoped(table, { pool: newScopedPool(2), sweepInterval: 20 }),
      await openScoped(table, { pool: newScopedPool(2), sweepInterval: 20 }),
    ];
    const reports = nodes.map(reportsOf);
    const all = (): ExpiredSession[] => reports.flat();
    const expiresAt = Date.now() + 300;
    const sessions = Array.from({ length: 20 }, (_, i) => newSession({ userId: i % 2 ? newUserId() : null, expiresAt }));
    for (const session of sessions) await nodes[i(session) % 2].create(session);

    // Their timers sweep on their own; explicit sweeps from both nodes add to the contention.
    await past(expiresAt);
    await Promise.all(nodes.map((node) => node.sweep()));
    expect(await until(() => all().length >= sessions.length)).toBe(true);
    await Promise.all(nodes.map((node) => node.sweep()));

    expect(all()).toHaveLength(sessions.length);
    expect(all()).toEqual(expect.arrayContaining(sessions.map((session) => ({ id: session.id, userId: session.userId }))));

    function i(session: StoredSession): number {
      return sessions.indexOf(session);
    }
  });

  it('splits a large backlog between two nodes sweeping at once, each row reported by the node that deleted it', async () => {
    const table = 'expiry_backlog_sessions';
    const nodes = [await openScoped(table, { pool: newScopedPool(2) }), await openScoped(table, { pool: newScopedPool(2) })];
    const reports = nodes.map(reportsOf);
    await insertRows(table, 'backlog', 1_500, 'expired', 'user-backlog');

    const counts = await Promise.all(nodes.map((node) => node.sweep()));

    expect(reports.map((r) => r.length)).toEqual(counts);
    const ids = reports.flat().map((report) => report.id);
    expect(new Set(ids).size).toBe(1_500);
    expect(ids).toHaveLength(1_500);
    expect(reports.flat().every((report) => report.userId === 'user-backlog')).toBe(true);
  });

  it('reports the expired rows destroyByUser deletes, without returning them', async () => {
    const store = await openScoped('expiry_destroy_user_sessions');
    const reports = reportsOf(store);
    const userId = newUserId();
    const expired = newSession({ userId, expiresAt: Date.now() - 1 });
    const live = newSession({ userId });
    await store.create(expired);
    await store.create(live);

    await expect(store.destroyByUser(userId)).resolves.toEqual([live.id]);

    expect(reports).toEqual([{ id: expired.id, userId }]);
  });

  it('does not sweep before its table exists, so a tiny sweepInterval logs no "relation does not exist"', async () => {
    const table = 'late_table_sessions';
    const pool = newScopedPool();
    const statements = recordStatements(pool);
    const logged: string[] = [];
    const log = (message: unknown): void => void logged.push(String(message));
    const store = new PostgresStore({ pool, table, sweepInterval: 10 });
    scopedStores.push(store);
    store.useLogger({ log, warn: log, error: log });
    const reports = reportsOf(store);

    // Several ticks have looked for the table and found none.
    expect(await until(() => statements.filter((s) => /to_regclass/.test(s.text)).length >= 3)).toBe(true);
    expect(statements.filter((s) => /^\s*DELETE\b/i.test(s.text))).toEqual([]);

    await openScoped(table);
    await insertRows(table, 'late', 3, 'expired');

    expect(await until(() => reports.length === 3)).toBe(true);
    expect(logged).toEqual([]);
  });
});

describe('PostgresStore user lock', () => {
  afterEach(closeScoped);

  const table = 'user_lock_sessions';

  /** A critical section that records when it enters and leaves, and stays inside for a few turns of the event loop. */
  const traced = (trace: string[], name: string) => async (): Promise<string> => {
    trace.push(`enter ${name}`);
    for (let n = 0; n < 3; n++) await sleep(2);
    trace.push(`exit ${name}`);
    return name;
  };

  it('never lets the critical sections of one user overlap across two nodes', async () => {
    const nodes = [await openScoped(table, { pool: newScopedPool(2) }), await openScoped(table, { pool: newScopedPool(2) })];
    const userId = newUserId();
    const trace: string[] = [];
    const names = Array.from({ length: 12 }, (_, n) => `s${n}`);

    const results = await Promise.all(names.map((name, n) => nodes[n % 2].withUserLock(userId, traced(trace, name))));

    expect(results).toEqual(names);
    expect(trace).toHaveLength(2 * names.length);
    for (let n = 0; n < trace.length; n += 2) expect(trace[n + 1]).toBe(trace[n].replace('enter', 'exit'));
  });

  it('lets more users sign in at once than the pool has connections, each section querying the pool', async () => {
    const pool = newScopedPool(2);
    const store = await openScoped(table, { pool });
    const users = Array.from({ length: 12 }, () => newUserId());

    // A design that held a pooled connection per lock would leave no connection for these queries.
    const counts = await Promise.all(
      users.map((userId) =>
        store.withUserLock(userId, async () => {
          await store.listByUser(userId);
          await store.create(newSession({ userId }));
          return (await store.listByUser(userId)).length;
        }),
      ),
    );

    expect(counts).toEqual(users.map(() => 1));
  });

  it('runs the critical sections of different users at the same time', async () => {
    const nodes = [await openScoped(table), await openScoped(table)];

    await expect(bothInsideAtOnce(nodes[0], nodes[1])).resolves.toEqual(['first', 'second']);
    // And two users on one node.
    await expect(bothInsideAtOnce(nodes[0], nodes[0])).resolves.toEqual(['first', 'second']);
  });

  it('releases the lock when a critical section throws, so another node takes it at once', async () => {
    const [thrower, next] = [await openScoped(table), await openScoped(table, { lockTimeout: 200 })];
    const userId = newUserId();

    await expect(thrower.withUserLock(userId, () => Promise.reject(new Error('critical failed')))).rejects.toThrow('critical failed');

    await expect(next.withUserLock(userId, async () => 'next')).resolves.toBe('next');
  });

  it('fails with a 503-class error naming lockTimeout when another node keeps the lock, then succeeds once it is released', async () => {
    const [holder, waiter] = [await openScoped(table), await openScoped(table, { lockTimeout: 200 })];
    const userId = newUserId();
    let releaseHolder!: () => void;
    let entered = false;
    const held = holder.withUserLock(userId, async () => {
      entered = true;
      await new Promise<void>((resolve) => (releaseHolder = resolve));
    });
    expect(await until(() => entered)).toBe(true);

    const waiting = waiter.withUserLock(userId, async () => 'too early');
    await expect(waiting).rejects.toBeInstanceOf(SessionStoreUnavailableError);
    await expect(waiting).rejects.toThrow(/store\.lockTimeout/);

    releaseHolder();
    await held;
    await expect(waiter.withUserLock(userId, async () => 'after')).resolves.toBe('after');
  });

  it('keys the lock by table: one user on two tables does not wait', async () => {
    const [one, other] = [await openScoped(table), await openScoped('user_lock_other_sessions', { lockTimeout: 200 })];
    const userId = newUserId();
    let releaseOne: (() => void) | undefined;
    const held = one.withUserLock(userId, () => new Promise<void>((resolve) => (releaseOne = resolve)));
    expect(await until(() => releaseOne !== undefined)).toBe(true);

    await expect(other.withUserLock(userId, async () => 'not blocked')).resolves.toBe('not blocked');
    releaseOne!();
    await held;
  });

  it('frees the lock when its connection dies, and takes the next lock on a new connection', async () => {
    const [node, other] = [await openScoped(table), await openScoped(table)];
    const userId = newUserId();
    let releaseNode!: () => void;
    let entered = false;
    const held = node.withUserLock(userId, async () => {
      entered = true;
      await new Promise<void>((resolve) => (releaseNode = resolve));
    });
    expect(await until(() => entered)).toBe(true);

    // The server ends the backend holding it, as a failover or an idle-connection reaper would.
    await sql(
      `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );

    await expect(other.withUserLock(userId, async () => 'taken')).resolves.toBe('taken');
    releaseNode();
    await held;
    await expect(node.withUserLock(userId, async () => 'again')).resolves.toBe('again');
  });

  it('rejects, never hangs, while the database is down, and locks again once it is back', async () => {
    const own = await startPostgresServer();
    try {
      const store = await PostgresStore.fromConfig({
        type: 'postgres',
        connectionString: own.url(),
        createTable: true,
        sweepInterval: NO_TIMER,
        queryTimeout: 500,
        lockTimeout: 500,
      });
      stores.push(store);
      // Its pool reports the server going away: expected here, and kept out of the output.
      const quiet = (): void => undefined;
      store.useLogger({ log: quiet, warn: quiet, error: quiet });
      const userId = newUserId();
      await expect(store.withUserLock(userId, async () => 'before')).resolves.toBe('before');

      await own.stop();
      await expect(store.withUserLock(userId, async () => 'during')).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      await expect(store.withUserLock(newUserId(), async () => 'during')).rejects.toBeInstanceOf(SessionStoreUnavailableError);

      await own.restart();
      await expect(store.withUserLock(userId, async () => 'after')).resolves.toBe('after');
      await store.onApplicationShutdown();
    } finally {
      await own.dispose();
    }
  });

  it('closes its lock connection on shutdown, also when it was given the pool', async () => {
    const applicationName = `nss_lock_${randomBytes(4).toString('hex')}`;
    const url = new URL(server.url());
    url.searchParams.set('application_name', applicationName);
    const pool = new pg.Pool({ connectionString: url.href, max: 2 });
    pool.on('error', () => undefined);
    pools.push(pool);
    const store = await openScoped(table, { pool, createTable: false });
    await store.withUserLock(newUserId(), async () => undefined);
    const connections = async () =>
      (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [applicationName]))[0].n;
    await pool.end();
    // A closed connection's backend leaves pg_stat_activity a moment later: wait for the pool's.
    expect(await until(async () => (await connections()) === 1)).toBe(true);

    await store.onApplicationShutdown();

    expect(await until(async () => (await connections()) === 0)).toBe(true);
    await expect(store.withUserLock(newUserId(), async () => 'closed')).rejects.toBeInstanceOf(SessionStoreUnavailableError);
  });
});

describe('PostgresStore client record', () => {
  afterEach(closeScoped);

  const table = 'client_sessions';
  const CLIENT: SessionClient = { userAgent: 'Mozilla/5.0 (test)', ip: '203.0.113.7' };

  /** The client column of a row, as PostgreSQL holds it. */
  async function clientColumn(id: string): Promise<unknown> {
    const [row] = await sql<{ client: unknown; data: Record<string, unknown> }>(`SELECT client, data FROM ${table} WHERE id = $1`, [id]);
    expect(Object.keys(row.data)).not.toContain('client');
    return row.client;
  }

  it('keeps the client in its own column through create, commit (set, keep, clear), rotate and listByUser', async () => {
    const store = await openScoped(table);
    const userId = newUserId();
    const session = newSession({ userId, client: CLIENT });
    await store.create(session);
    expect((await store.get(session.id))!.client).toEqual(CLIENT);
    expect(await clientColumn(session.id)).toEqual(CLIENT);

    await store.commit(session.id, change({ visits: 2 }));
    expect((await store.get(session.id))!.client).toEqual(CLIENT);
    await store.commit(session.id, { ...change({}), client: { ip: '198.51.100.9' } });
    expect((await store.get(session.id))!.client).toEqual({ ip: '198.51.100.9' });
    expect((await store.listByUser(userId)).map((s) => s.client)).toEqual([{ ip: '198.51.100.9' }]);
    await store.commit(session.id, { ...change({}), client: null });
    expect((await store.get(session.id))!.client ?? null).toBeNull();
    expect(await clientColumn(session.id)).toBeNull();

    const next = newSession({ userId, client: CLIENT });
    await expect(store.rotate(session.id, next)).resolves.toBe(true);
    expect((await store.get(next.id))!.client).toEqual(CLIENT);
    expect((await store.listByUser(userId)).map((s) => s.client)).toEqual([CLIENT]);
    expect((await store.get(next.id))!.data).toEqual({ base: true });
  });

  it('stores a client with characters jsonb refuses, replacing them, rather than failing the sign-in', async () => {
    const store = await openScoped(table);
    const session = newSession({ client: { userAgent: 'before\u0000after \ud800', ip: '203.0.113.8' } });

    await store.create(session);

    expect((await store.get(session.id))!.client).toEqual({ userAgent: 'before\ufffdafter \ufffd', ip: '203.0.113.8' });
  });
});

describe('PostgresStore on a table made by an earlier version (no client column)', () => {
  afterEach(closeScoped);

  const table = 'old_sessions';
  const oldId = newId();

  beforeAll(async () => {
    // The table as the previous version's sessionTableDdl() made it.
    await sql(`CREATE TABLE ${table} (
      id text PRIMARY KEY, data jsonb NOT NULL DEFAULT '{}'::jsonb, user_id text,
      created_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)`);
    await sql(
      `INSERT INTO ${table} (id, data, user_id, created_at, last_seen_at, expires_at)
       VALUES ($1, '{"old": true}'::jsonb, 'user-old', now(), now(), now() + interval '1 hour')`,
      [oldId],
    );
  });

  const hasClientColumn = async (): Promise<boolean> =>
    (await sql(`SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = 'client'`, [table])).length === 1;

  it('refuses to start without createTable, naming the missing column and the ALTER statement to run, changing nothing', async () => {
    const starting = PostgresStore.fromConfig({ type: 'postgres', connectionString: server.url(), table, createTable: false });

    await expect(starting).rejects.toThrow('"client"');
    await expect(starting).rejects.toThrow(`ALTER TABLE "${table}" ADD COLUMN IF NOT EXISTS "client" jsonb;`);
    expect(await hasClientColumn()).toBe(false);
  });

  it('adds the column with createTable, keeping the rows, and a later start-up alters nothing', async () => {
    const store = await openScoped(table);

    expect(await hasClientColumn()).toBe(true);
    const old = await store.get(oldId);
    expect(old).toMatchObject({ data: { old: true }, userId: 'user-old' });
    expect(old!.client ?? null).toBeNull();
    await store.commit(oldId, { ...change({}), client: { ip: '192.0.2.1' } });
    expect((await store.get(oldId))!.client).toEqual({ ip: '192.0.2.1' });

    const pool = newScopedPool();
    const statements = recordStatements(pool);
    await openScoped(table, { pool });
    expect(statements.filter((s) => /\bALTER\b/i.test(s.text))).toEqual([]);
    await expect(openStore(table, { createTable: false })).resolves.toBeInstanceOf(PostgresStore);
  });
});
