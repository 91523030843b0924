/**
 * A store built directly (`new RedisStore({...})`, `new PostgresStore({...})`) checks its options
 * as the module checks its `store` option: the same SessionConfigError, with the same problems,
 * before it touches the client or the pool. (MemoryStore and FileStore.open do too: their specs.)
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SessionConfigError } from '../../lib/session.errors.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { PostgresStore, RedisStore } from '../../lib/stores/index.js';
import type { PostgresStoreOptions, RedisClient, RedisStoreConfig, RedisStoreOptions, StoreConfig } from '../../lib/stores/index.js';

const SECRET = 's'.repeat(32);

/** The problems of the SessionConfigError `build` throws. */
function problemsOf(build: () => unknown): string[] {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(SessionConfigError);
    return (error as SessionConfigError).problems;
  }
  throw new Error('built without a SessionConfigError');
}

/** What the module says of the same store config. */
const moduleProblemsOf = (store: StoreConfig): string[] => problemsOf(() => resolveSessionOptions({ secret: SECRET, store }));

/** One test per case: `build(options)` throws a SessionConfigError whose message names the option. */
function itRefusesEach<Options>(cases: Array<[what: string, options: Options, named: RegExp]>, build: (options: Options) => unknown): void {
  it.each(cases)('refuses %s with a SessionConfigError naming the option', (_what, options, named) => {
    expect(() => build(options)).toThrow(SessionConfigError);
    expect(() => build(options)).toThrow(named);
  });
}

describe('RedisStore built directly', () => {
  /** Never connects: building a store sends nothing. */
  const client = new Redis({ lazyConnect: true, commandTimeout: 5_000 });

  afterAll(() => client.disconnect());

  itRefusesEach<Partial<RedisStoreOptions>>(
    [
      ['a prefix with a brace', { prefix: 'app{1}:' }, /"store\.prefix"/],
      ['a fractional replicaTimeout', { replicaTimeout: 1.5 }, /"store\.replicaTimeout"/],
      ['an unknown consistency', { consistency: 'always' as 'strong' }, /"store\.consistency"/],
      ['an expiryEvents that is not a boolean', { expiryEvents: 'yes' as unknown as boolean }, /"store\.expiryEvents"/],
      ['a client that is not an ioredis client', { client: {} as RedisClient }, /"store\.client"/],
    ],
    (options) => new RedisStore({ client, ...options }),
  );

  it('says what the module says of the same options', () => {
    const options = { prefix: 'app{1}:', replicaTimeout: 0 };

    expect(problemsOf(() => new RedisStore({ client, ...options }))).toEqual(moduleProblemsOf({ type: 'redis', client, ...options }));
  });

  it('takes a strong replicaTimeout of 3 s: a client handed in keeps its own command timeout', async () => {
    const store = new RedisStore({ client, consistency: 'strong', replicaTimeout: 3_000 });

    await store.onApplicationShutdown();
  });

  it("takes from a config what the module takes: a strong replicaTimeout under the config's commandTimeout", async () => {
    const config: RedisStoreConfig = { type: 'redis', client, consistency: 'strong', commandTimeout: 5_000, replicaTimeout: 3_000 };

    const store = await RedisStore.fromConfig(config);
    await store.onApplicationShutdown();
  });

  it('refuses a bad config with a SessionConfigError, as the module would', async () => {
    const config: RedisStoreConfig = { type: 'redis', url: 'redis://127.0.0.1:1', prefix: '{x}' };

    await expect(RedisStore.fromConfig(config)).rejects.toBeInstanceOf(SessionConfigError);
    await expect(RedisStore.fromConfig(config)).rejects.toThrow(/"store\.prefix"/);
  });
});

describe('PostgresStore built directly', () => {
  /** Never connects: building a store sends nothing. */
  const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none' });

  afterAll(() => pool.end());

  itRefusesEach<Partial<PostgresStoreOptions>>(
    [
      ['a table name that is not an identifier', { table: 'bad name;' }, /"store\.table"/],
      ['a sweepInterval of 0', { sweepInterval: 0 }, /"store\.sweepInterval"/],
      ['a negative lockTimeout', { lockTimeout: -1 }, /"store\.lockTimeout"/],
      ['a pool that is not a pg Pool', { pool: {} as PostgresStoreOptions['pool'] }, /"store\.pool"/],
    ],
    (options) => new PostgresStore({ pool, ...options }),
  );

  it('says what the module says of the same options', () => {
    const options = { table: '1sessions', lockTimeout: 2.5 };

    expect(problemsOf(() => new PostgresStore({ pool, ...options }))).toEqual(moduleProblemsOf({ type: 'postgres', pool, ...options }));
  });

  it('builds from good options', async () => {
    const store = new PostgresStore({ pool, table: 'auth.sessions', sweepInterval: 60_000, lockTimeout: 500 });

    await store.onApplicationShutdown();
  });
});
