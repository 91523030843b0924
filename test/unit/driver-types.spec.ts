import { describe, expect, it } from '@jest/globals';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { Registry } from 'prom-client';
import type { MetricsRegistry, PostgresPool, RedisClient, ResolvedSessionOptions } from '../../lib/index.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { SECRET } from '../fixtures/index.js';

/**
 * The public types name the drivers' objects structurally (so the published declarations import
 * no optional peer). What an application really passes must fit them, with no cast: the
 * assignments below are checked by the type check, and the options validation must take the
 * same objects at run time.
 */
describe("the drivers' objects the options take", () => {
  const resolve = (options: Record<string, unknown>): ResolvedSessionOptions => resolveSessionOptions({ secret: SECRET, ...options });

  it('takes an ioredis Redis and an ioredis Cluster as a RedisClient', async () => {
    const redis: RedisClient = new Redis({ lazyConnect: true });
    const cluster: RedisClient = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    try {
      expect(resolve({ store: { type: 'redis', client: redis } }).store).toMatchObject({ client: redis });
      expect(resolve({ store: { type: 'redis', client: cluster } }).store).toMatchObject({ client: cluster });
    } finally {
      (redis as Redis).disconnect();
      (cluster as Cluster).disconnect();
    }
  });

  it('takes a pg Pool as a PostgresPool', async () => {
    const pool: PostgresPool = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    try {
      expect(resolve({ store: { type: 'postgres', pool } }).store).toMatchObject({ pool });
    } finally {
      await pool.end();
    }
  });

  it("takes a prom-client Registry, and prom-client's own default register, as a MetricsRegistry", async () => {
    const registry: MetricsRegistry = new Registry();
    const { register }: { register: MetricsRegistry } = await import('prom-client');

    expect(resolve({ metrics: { registry } }).metrics).toMatchObject({ registry });
    expect(resolve({ metrics: { registry: register } }).metrics).toMatchObject({ registry: register });
  });
});
