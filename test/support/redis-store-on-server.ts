import { afterAll, beforeAll } from '@jest/globals';
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { startRedisServer, type RedisServer } from './redis-topology.js';

/** A throwaway redis-server, a RedisStore on it, and a raw connection to look at what it wrote. */
export interface RedisStoreOnServer {
  server: RedisServer;
  store: RedisStore;
  probe: Redis;
}

/**
 * Sets up a {@link RedisStoreOnServer} for the describe block it is called in (beforeAll), and
 * stops all of it afterwards. `config` is added to `{ type: 'redis', url }`.
 */
export function redisStoreOnServer(config: Partial<Omit<RedisStoreConfig, 'type' | 'problems'>> = {}): RedisStoreOnServer {
  const harness = {} as RedisStoreOnServer;
  beforeAll(async () => {
    harness.server = await startRedisServer();
    harness.store = await RedisStore.fromConfig({ type: 'redis', url: harness.server.url, ...config } as RedisStoreConfig);
    harness.probe = new Redis(harness.server.url, { maxRetriesPerRequest: 1, connectTimeout: 1_000, disconnectTimeout: 100 });
    harness.probe.on('error', () => undefined);
  });
  afterAll(async () => {
    await harness.store?.onApplicationShutdown();
    harness.probe?.disconnect();
    await harness.server?.stop();
  });
  return harness;
}
