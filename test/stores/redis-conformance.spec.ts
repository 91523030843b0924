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
import { Cluster, Redis } from 'ioredis';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { describeSessionStoreConformance } from '../../lib/testing/index.js';
import { dumpRedis } from '../fixtures/store-dumps.js';
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

/**
 * The keys of every store here: the default prefix. The runs of one topology share its servers;
 * the at-rest cases look for random markers, so another run's keys in the dump do no harm.
 */
const STORE_KEYS = 'sess:*';

/** Options of the raw clients that read the servers behind the stores' backs: fail fast if a server died. */
const RAW_CLIENT_OPTIONS = { maxRetriesPerRequest: 1, connectTimeout: 1_000, commandTimeout: 5_000 };

/** Everything the stores of a topology keep on its servers, read through a client of the test's own. */
const dumpThrough = (client: () => Redis | Cluster) => () => dumpRedis(client(), STORE_KEYS);

/** Closes a raw client, leaving no reconnect timer behind. */
const closeRaw = (client: Redis | Cluster | undefined): void => {
  if (client && client.status !== 'end') client.disconnect();
};

describe('RedisStore on a standalone server', () => {
  let server: RedisServer;
  let raw: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis({ host: server.host, port: server.port, ...RAW_CLIENT_OPTIONS });
  });

  afterAll(async () => {
    closeRaw(raw);
    await server?.stop();
  });

  // No replica here, so only 'eventual': 'strong' must fail every write (redis-consistency.spec.ts).
  describeSessionStoreConformance('RedisStore (standalone, eventual)', {
    createStore: () => fromConfig({ type: 'redis', url: server.url, consistency: 'eventual', expiryEvents: true }),
    dump: dumpThrough(() => raw),
  });

  describeSessionStoreConformance('RedisStore (standalone, eventual, expiryEvents off: the default)', {
    createStore: () => fromConfig({ type: 'redis', url: server.url, consistency: 'eventual' }),
    unsupported: ['expiryEvents'],
    dump: dumpThrough(() => raw),
  });
});

describe('RedisStore behind Sentinel', () => {
  let topology: SentinelTopology;
  let raw: Redis;

  beforeAll(async () => {
    topology = await startSentinelTopology();
    // Through the sentinels, as the stores connect: whichever server is master is the one read.
    raw = new Redis({ sentinels: topology.sentinelEndpoints, name: topology.masterName, ...RAW_CLIENT_OPTIONS });
  }, 30_000);

  afterAll(async () => {
    closeRaw(raw);
    await topology?.stop();
  });

  for (const consistency of CONSISTENCIES) {
    describeSessionStoreConformance(`RedisStore (sentinel, ${consistency})`, {
      createStore: () =>
        fromConfig({ type: 'redis', sentinels: topology.sentinelEndpoints, name: topology.masterName, consistency, expiryEvents: true }),
      dump: dumpThrough(() => raw),
    });
  }
});

describe('RedisStore on a Cluster', () => {
  let topology: ClusterTopology;
  let raw: Cluster;

  beforeAll(async () => {
    topology = await startClusterTopology();
    raw = new Cluster([...topology.startupNodes], { redisOptions: RAW_CLIENT_OPTIONS, slotsRefreshTimeout: 2_000 });
  }, 30_000);

  afterAll(async () => {
    closeRaw(raw);
    await topology?.stop();
  });

  for (const consistency of CONSISTENCIES) {
    describeSessionStoreConformance(`RedisStore (cluster, ${consistency})`, {
      createStore: () => fromConfig({ type: 'redis', cluster: topology.startupNodes, consistency, expiryEvents: true }),
      dump: dumpThrough(() => raw),
    });
  }
});
