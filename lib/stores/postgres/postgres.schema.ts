import { createHash } from 'node:crypto';
import { SessionMessages } from '../../session.errors.js';

/** What the column lookup needs: the pool, or one of its clients inside a transaction. */
interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/**
 * What creating and checking the table need of the store's `pg` Pool, named by its members, so
 * that this file's declarations (which ship, and reach sessionTableDdl's public export) import
 * nothing from the optional `pg`.
 */
interface SchemaPool extends Queryable {
  connect(): Promise<Queryable & { release(): void }>;
}

/**
 * Columns added since the table's first version, with their type. A table made by an earlier
 * version gets them with `ALTER TABLE … ADD COLUMN` (createTable), or start-up says to add them.
 */
const ADDED_COLUMNS: ReadonlyArray<readonly [name: string, type: string]> = [['client', 'jsonb']];

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

/** Creates the table and its indexes; several nodes starting at once take turns. */
export async function createTable(pool: SchemaPool, table: string): Promise<void> {
  const client = await pool.connect();
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

export async function checkTable(pool: SchemaPool, table: string): Promise<void> {
  const { rows } = await pool.query(`SELECT to_regclass($1) AS found`, [quoteTable(table)]);
  if (rows[0].found === null) throw new Error(SessionMessages.postgresTableMissing(table, sessionTableDdl(table)));
  const [missing] = await missingColumns(pool, table);
  if (missing) {
    const [column, type] = missing;
    throw new Error(SessionMessages.postgresColumnMissing(table, column, addColumnDdl(table, column, type)));
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

/** Identifiers are validated at start-up; quoting keeps them exactly as given. */
function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}
