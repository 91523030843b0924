import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { postgresForTests, startPostgresServer, type PostgresServer } from './postgres-server.js';

/** Clients opened by a test, ended after it whatever happened. */
const clients: pg.Client[] = [];

/** A client that gives up connecting after 1 s, so a stopped server fails the test fast. */
function client(url: string): pg.Client {
  const created = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  created.on('error', () => undefined);
  clients.push(created);
  return created;
}

async function query<Row = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const connection = client(url);
  await connection.connect();
  try {
    return (await connection.query(sql, params)).rows as Row[];
  } finally {
    await connection.end();
  }
}

async function dataDirectoryOf(server: PostgresServer): Promise<string> {
  const [row] = await query<{ data_directory: string }>(server.url(), 'SHOW data_directory');
  return row.data_directory;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
});

describe('startPostgresServer', () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgresServer();
  });

  afterAll(() => server?.dispose());

  it('answers SELECT 1 on a fresh database of its own, on 127.0.0.1', async () => {
    expect(server.owned).toBe(true);
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).not.toBe(5432);
    expect(server.database).toMatch(/^nss_test_[0-9a-f]+$/);

    const rows = await query(server.url(), 'SELECT 1 AS one, current_database() AS database');
    expect(rows).toEqual([{ one: 1, database: server.database }]);
    const tables = await query(server.url(), "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(tables).toEqual([{ n: 0 }]);
  });

  it('builds connection strings to other databases of the same server', async () => {
    expect(await query(server.url('postgres'), 'SELECT current_database() AS database')).toEqual([{ database: 'postgres' }]);
  });

  it('refuses connections once stopped, and keeps committed data across a restart', async () => {
    await query(server.url(), 'CREATE TABLE kept (id int PRIMARY KEY, note text)');
    await query(server.url(), "INSERT INTO kept VALUES (1, 'before the stop')");

    await server.stop();
    await expect(query(server.url(), 'SELECT 1')).rejects.toThrow();
    await server.stop(); // idempotent

    await server.restart();
    expect(await query(server.url(), 'SELECT id, note FROM kept')).toEqual([{ id: 1, note: 'before the stop' }]);
  });

  it('restarts on the same port, so clients can keep their connection string', async () => {
    const port = server.port;
    const url = server.url();
    await server.restart(); // while running: stop, then start
    expect(server.port).toBe(port);
    expect(await query(url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('drops open connections on kill() and recovers committed data on restart()', async () => {
    await query(server.url(), 'CREATE TABLE crashed (id int PRIMARY KEY)');
    await query(server.url(), 'INSERT INTO crashed VALUES (1), (2)');
    const open = client(server.url());
    await open.connect();

    await server.kill();
    await expect(open.query('SELECT 1')).rejects.toThrow();
    await expect(query(server.url(), 'SELECT 1')).rejects.toThrow();
    await server.kill(); // idempotent

    await server.restart();
    expect(await query(server.url(), 'SELECT id FROM crashed ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('stops a killed server without complaint', async () => {
    await server.kill();
    await server.stop();
    await server.restart();
    expect(await query(server.url(), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});

describe('two owned servers', () => {
  it('start together and run at once on different ports with separate data; dispose() deletes each one’s directory', async () => {
    const started = await Promise.allSettled([startPostgresServer(), startPostgresServer()]);
    const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) {
      await Promise.all(servers.map((server) => server.dispose()));
      throw failed.reason;
    }
    const [first, second] = servers;
    try {
      expect(first.port).not.toBe(second.port);
      await query(first.url(), 'CREATE TABLE only_in_first (id int)');
      const tables = "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'only_in_first'";
      expect(await query(first.url(), tables)).toEqual([{ n: 1 }]);
      expect(await query(second.url(), tables)).toEqual([{ n: 0 }]);

      const firstDir = await dataDirectoryOf(first);
      const secondDir = await dataDirectoryOf(second);
      expect(firstDir).not.toBe(secondDir);
      expect(existsSync(firstDir)).toBe(true);

      await first.dispose();
      expect(existsSync(dirname(firstDir))).toBe(false);
      await expect(query(first.url(), 'SELECT 1')).rejects.toThrow();
      await first.dispose(); // idempotent
      await expect(first.restart()).rejects.toThrow(/disposed/);

      // The other one is untouched.
      expect(await query(second.url(), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      await second.dispose();
      expect(existsSync(dirname(secondDir))).toBe(false);
    } finally {
      await Promise.all([first.dispose(), second.dispose()]);
    }
  });
});

describe('postgresForTests', () => {
  let host: PostgresServer;
  const saved = process.env.DATABASE_URL;

  beforeAll(async () => {
    host = await startPostgresServer();
  });

  afterAll(async () => {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
    await host?.dispose();
  });

  it('starts an owned server when DATABASE_URL is not set', async () => {
    delete process.env.DATABASE_URL;
    const server = await postgresForTests();
    try {
      expect(server.owned).toBe(true);
      expect(await query(server.url(), 'SELECT current_database() AS database')).toEqual([{ database: server.database }]);
    } finally {
      await server.dispose();
    }
  });

  it('with DATABASE_URL, creates a fresh database there, refuses outages, and drops the database on dispose()', async () => {
    process.env.DATABASE_URL = host.url('postgres');
    const server = await postgresForTests();
    const exists = async (): Promise<boolean> =>
      (await query(host.url('postgres'), 'SELECT 1 FROM pg_database WHERE datname = $1', [server.database])).length === 1;

    expect(server.owned).toBe(false);
    expect({ host: server.host, port: server.port }).toEqual({ host: host.host, port: host.port });
    expect(server.database).toMatch(/^nss_test_[0-9a-f]+$/);
    expect(await query(server.url(), 'SELECT current_database() AS database')).toEqual([{ database: server.database }]);

    await expect(server.stop()).rejects.toThrow(/outage tests need an owned server.*startPostgresServer\(\)/i);
    await expect(server.restart()).rejects.toThrow(/owned/);
    await expect(server.kill()).rejects.toThrow(/owned/);
    expect(await query(host.url('postgres'), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);

    // A connection the test forgot to close must not keep the database alive.
    const forgotten = client(server.url());
    await forgotten.connect();
    expect(await exists()).toBe(true);
    await server.dispose();
    expect(await exists()).toBe(false);
    await server.dispose(); // idempotent
  });
});
