import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { reconnectDelay } from '../../lib/stores/redis/redis.client.js';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import type { StoredSession } from '../../lib/stores/session-store.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/** The connection options users need besides a URL: a password and a database number. */

const PASSWORD = 'a-redis-password';

const newSession = (): StoredSession => {
  const now = Date.now();
  return { id: randomBytes(32).toString('base64url'), data: { n: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + 60_000, userId: null };
};

describe('RedisStore connection options', () => {
  let server: RedisServer;
  let probe: Redis;
  const stores: RedisStore[] = [];

  const open = async (config: Omit<RedisStoreConfig, 'type'>): Promise<RedisStore> => {
    const store = await RedisStore.fromConfig({ type: 'redis', ...config } as RedisStoreConfig);
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    server = await startRedisServer();
    probe = new Redis({ port: server.port, host: server.host, maxRetriesPerRequest: 1, disconnectTimeout: 100 });
    // Set after start-up, so the harness's readiness check needs no password.
    await probe.config('SET', 'requirepass', PASSWORD);
    await probe.auth(PASSWORD);
  });

  afterAll(async () => {
    await Promise.all(stores.map((store) => store.onApplicationShutdown()));
    probe?.disconnect();
    await server?.stop();
  });

  // How soon requests work again after Redis comes back, or a replica is promoted, is the gap
  // between reconnect attempts: it must stay short however long the outage lasted.
  it('retries a lost connection at least every 500 ms, however long the outage', () => {
    const delays = Array.from({ length: 1_000 }, (_, i) => reconnectDelay(i + 1));

    expect(delays.slice(0, 3)).toEqual([50, 100, 150]);
    expect(Math.max(...delays)).toBe(500);
  });

  it('gives that reconnect policy to the client it creates', async () => {
    const store = await open({ url: server.url, password: PASSWORD });
    const client = (store as unknown as { client: Redis }).client;

    expect(client.options.retryStrategy).toBe(reconnectDelay);
  });

  it('authenticates with the password option and stores in the database the db option names', async () => {
    const store = await open({ url: server.url, password: PASSWORD, db: 2 });
    const session = newSession();

    await store.create(session);

    expect((await store.get(session.id))?.data).toEqual({ n: 1 });
    await probe.select(2);
    expect(await probe.exists(`sess:{${session.id}}`)).toBe(1);
    await probe.select(0);
    expect(await probe.exists(`sess:{${session.id}}`)).toBe(0);
  });

  it('authenticates with a password and database given in the URL', async () => {
    const store = await open({ url: `redis://:${PASSWORD}@${server.host}:${server.port}/3` });
    const session = newSession();

    await store.create(session);

    await probe.select(3);
    expect(await probe.exists(`sess:{${session.id}}`)).toBe(1);
    await probe.select(0);
  });

  it('fails the call, rather than hanging, with a wrong password', async () => {
    const store = await open({ url: server.url, password: 'wrong', commandTimeout: 500 });

    await expect(store.get(newSession().id)).rejects.toThrow();
  });
});
