import type { ClientConfig, Pool, PoolConfig } from 'pg';
import { SessionMessages } from '../../session.errors.js';
import type { PostgresStoreConfig } from '../store-config.js';
import type { LockConnection } from './postgres.locks.js';

/** Outage policy of the pool the store creates: bounded waits everywhere, so requests fail fast. */
export async function createPool(config: PostgresStoreConfig): Promise<Pool> {
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

/**
 * A connection made like the pool's own (same options, same Client class), outside the pool, so
 * it never takes a slot the sessions' queries need.
 */
export function lockConnectionOf(pool: Pool, timeout: number): LockConnection {
  const { Client, options } = pool as unknown as { Client?: new (config: ClientConfig) => LockConnection; options?: ClientConfig };
  if (typeof Client !== 'function') throw new Error('the pool cannot make a connection of its own (not a pg Pool)');
  const connectionTimeoutMillis = Math.min(options?.connectionTimeoutMillis || timeout, timeout);
  return new Client({ ...options, connectionTimeoutMillis, keepAlive: true });
}
