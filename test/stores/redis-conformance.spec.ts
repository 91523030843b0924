/**
 * The one conformance suite (SPEC §3), run against RedisStore on every topology it supports:
 * standalone, Sentinel and Cluster, each with eventual consistency, and with strong consistency
 * (`WAIT 1` after every write) where there is a replica to wait for. The topology runs have
 * `expiryEvents` on, so the expiry reports are checked everywhere; one run keeps the default
 * (off), where watching must report nothing.
 *
 * Each topology is started in the beforeAll of a wrapping describe; jest runs that before the
 * suite's own beforeAll, which calls `createStore` and so reads the topology already started.
 */
import { afterAll, beforeAll, describe } from '@jest/globals';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { describeSessionStoreConformance } from '../../lib/testing/index.js';
import {
  startClusterTopology,
  startRedisServer,
  startSentinelTopology,
  type ClusterTopology,
  type RedisServer,
  type SentinelTopology,
} from '../support/redis-topology.js';

const CONSISTENCIES = ['eventual', 'strong'] as const;

/**
 * The config object as users write it. The cast only hides the `problems()` validation method that
 * the RedisStoreConfig class type demands of a plain object (reported; see redis.store.spec.ts).
 */
const fromConfig = (config: Omit<RedisStoreConfig, 'problems'>): Promise<RedisStore> => RedisStore.fromConfig(config as RedisStoreConfig);

describe('RedisStore on a standalone server', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  // No replica here, so only 'eventual': 'strong' must fail every write (redis-consistency.spec.ts).
  describeSessionStoreConformance('RedisStore (standalone, eventual)', {
    createStore: () => fromConfig({ type: 'redis', url: server.url, consistency: 'eventual', expiryEvents: true }),
  });

  describeSessionStoreConformance('RedisStore (standalone, eventual, expiryEvents off: the default)', {
    createStore: () => fromConfig({ type: 'redis', url: server.url, consistency: 'eventual' }),
    unsupported: ['expiryEvents'],
  });
});

describe('RedisStore behind Sentinel', () => {
  let topology: SentinelTopology;

  beforeAll(async () => {
    topology = await startSentinelTopology();
  }, 30_000);

  afterAll(async () => {
    await topology?.stop();
  });

  for (const consistency of CONSISTENCIES) {
    describeSessionStoreConformance(`RedisStore (sentinel, ${consistency})`, {
      createStore: () =>
        fromConfig({ type: 'redis', sentinels: topology.sentinelEndpoints, name: topology.masterName, consistency, expiryEvents: true }),
    });
  }
});

describe('RedisStore on a Cluster', () => {
  let topology: ClusterTopology;

  beforeAll(async () => {
    topology = await startClusterTopology();
  }, 30_000);

  afterAll(async () => {
    await topology?.stop();
  });

  for (const consistency of CONSISTENCIES) {
    describeSessionStoreConformance(`RedisStore (cluster, ${consistency})`, {
      createStore: () => fromConfig({ type: 'redis', cluster: topology.startupNodes, consistency, expiryEvents: true }),
    });
  }
});
