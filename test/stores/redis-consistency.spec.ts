/**
 * `consistency: 'strong'`: a write is acknowledged only once a replica has it (`WAIT 1`, sent in
 * the same pipeline as the write, on the master's connection), and fails when no replica answers.
 *
 * To show that a strong write really waits, the replica is held back with `CLIENT PAUSE … WRITE`
 * on the replica itself: it still answers reads, but applies nothing from the replication stream
 * (and so acknowledges nothing) until the pause ends. An eventual write returns while the replica
 * still has the old value; a strong one returns only once the replica has the new one.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { SessionStoreUnavailableError } from '../../lib/session.errors.js';
import { RedisStore } from '../../lib/stores/redis/index.js';
import { timesField } from '../../lib/stores/redis/redis.codec.js';
import type { StoredSession } from '../../lib/stores/session-store.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { startRedisServer, startSentinelTopology, type RedisEndpoint, type RedisServer, type SentinelTopology } from '../support/redis-topology.js';

const HOUR = 60 * 60_000;
/** How long the replica is held back: well under the store's replicaTimeout (1000) and commandTimeout (2000). */
const REPLICA_PAUSE_MS = 600;

const newId = (): string => randomBytes(32).toString('base64url');

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { version: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

const sessionKey = (id: string): string => `sess:{${id}}`;

const clients: Redis[] = [];
const stores: RedisStore[] = [];

function rawClient(endpoint: RedisEndpoint): Redis {
  const client = new Redis({ host: endpoint.host, port: endpoint.port, maxRetriesPerRequest: 1, disconnectTimeout: 100 });
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

function track(store: RedisStore): RedisStore {
  stores.push(store);
  return store;
}

async function openStore(config: Omit<RedisStoreConfig, 'type' | 'problems'>): Promise<RedisStore> {
  return track(await RedisStore.fromConfig({ type: 'redis', ...config } as RedisStoreConfig));
}

async function closeAll(): Promise<void> {
  await Promise.all(stores.splice(0).map((store) => store.onApplicationShutdown()));
  for (const client of clients.splice(0)) if (client.status !== 'end') client.disconnect();
}

/** The error `promise` rejects with; fails if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, but it resolved with ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

type SlowlogEntry = [id: number, time: number, micros: number, args: unknown[], addr: string, name: string];

describe('RedisStore with strong consistency behind Sentinel', () => {
  let topology: SentinelTopology;
  let master: Redis;
  let replica: Redis;

  beforeAll(async () => {
    topology = await startSentinelTopology();
    master = rawClient(topology.master);
    replica = rawClient(topology.replica);
  }, 30_000);

  afterAll(async () => {
    await closeAll();
    await topology?.stop();
  });

  const sentinelConfig = (consistency: 'eventual' | 'strong') => ({
    sentinels: topology.sentinelEndpoints,
    name: topology.masterName,
    consistency,
  });

  /** Holds the replica back: it answers reads but applies (and acknowledges) no write until the pause ends. */
  async function pauseReplicaWrites(): Promise<void> {
    expect(await replica.call('CLIENT', 'PAUSE', String(REPLICA_PAUSE_MS), 'WRITE')).toBe('OK');
  }

  async function unpauseReplica(): Promise<void> {
    await replica.call('CLIENT', 'UNPAUSE');
  }

  it('returns from a commit only once the replica has the new field', async () => {
    const store = await openStore(sentinelConfig('strong'));
    const session = newSession({ data: { version: 1 } });
    await store.create(session);
    expect(await replica.hget(sessionKey(session.id), 'version')).toBe('1');

    await pauseReplicaWrites();
    try {
      await expect(store.commit(session.id, { set: { version: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() })).resolves.toBe(
        true,
      );

      // Read straight from the replica server, at once: the write is already there.
      expect(await replica.hget(sessionKey(session.id), 'version')).toBe('2');
    } finally {
      await unpauseReplica();
    }
  });

  it('returns from a create only once the replica has the session', async () => {
    const store = await openStore(sentinelConfig('strong'));
    const session = newSession({ data: { fresh: true } });

    await pauseReplicaWrites();
    try {
      await store.create(session);

      expect(await replica.hget(sessionKey(session.id), 'fresh')).toBe('true');
    } finally {
      await unpauseReplica();
    }
  });

  it('with eventual consistency, returns from the same commit while the held-back replica still has the old value', async () => {
    const store = await openStore(sentinelConfig('eventual'));
    const session = newSession({ data: { version: 1 } });
    await store.create(session);
    await master.wait(1, 5_000);

    await pauseReplicaWrites();
    try {
      await store.commit(session.id, { set: { version: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      // The control for the cases above: the pause does hold the replica back.
      expect(await replica.hget(sessionKey(session.id), 'version')).toBe('1');
      expect(await master.hget(sessionKey(session.id), 'version')).toBe('2');
    } finally {
      await unpauseReplica();
    }
  });

  it.each(['strong', 'eventual'] as const)(
    'commits with %s consistency in one round trip: the script alone, or with WAIT 1 after it in one pipeline when strong, on the connection that wrote',
    async (consistency) => {
      const strong = consistency === 'strong';
      const connectionName = `nss-store-${consistency}`;
      const client = new Redis({
        sentinels: topology.sentinelEndpoints,
        name: topology.masterName,
        connectionName,
        maxRetriesPerRequest: 1,
        disconnectTimeout: 100,
      });
      client.on('error', () => undefined);
      clients.push(client);
      // Records the length of each pipeline the store executes (the commands still go to Redis),
      // on the client and on the connection a strong store duplicates from it for its writes.
      const pipelines: number[] = [];
      const instrument = (target: Redis): Redis => {
        const pipeline = target.pipeline.bind(target);
        target.pipeline = ((...args: Parameters<typeof pipeline>) => {
          const batch = pipeline(...args);
          const exec = batch.exec.bind(batch);
          batch.exec = ((...execArgs: Parameters<typeof exec>) => {
            pipelines.push(batch.length);
            return exec(...execArgs);
          }) as typeof batch.exec;
          return batch;
        }) as typeof target.pipeline;
        const duplicate = target.duplicate.bind(target);
        target.duplicate = ((...args: Parameters<typeof duplicate>) => instrument(duplicate(...args))) as typeof target.duplicate;
        return target;
      };
      instrument(client);
      const store = track(new RedisStore({ client, consistency }));
      const session = newSession();
      await store.create(session);
      // ioredis sends a script as EVAL the first time on a connection, EVALSHA afterwards.
      await store.commit(session.id, { set: { warm: true }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });
      await master.config('SET', 'slowlog-log-slower-than', '0');
      await master.config('RESETSTAT');
      await master.call('SLOWLOG', 'RESET');
      pipelines.length = 0;

      try {
        await store.commit(session.id, { set: { version: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

        // Totals over every client of the master (sentinels and replica included: they send neither).
        const commandstats = await master.info('commandstats');
        const calls = (command: string): number => Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(commandstats)?.[1] ?? 0);
        expect(calls('evalsha')).toBe(1);
        expect(calls('eval')).toBe(0);
        expect(calls('wait')).toBe(strong ? 1 : 0);
        // The slow log lists what this connection sent, except a WAIT that blocked (logged by no 7.0 server).
        const log = (await master.call('SLOWLOG', 'GET', '1000')) as SlowlogEntry[];
        const sent = log.filter(([, , , , , name]) => name === connectionName).map(([, , , args]) => String(args[0]).toUpperCase());
        expect(sent.filter((command) => command !== 'WAIT')).toEqual(['EVALSHA']);
        // WAIT counts only the writes of its own connection: it must be the last command of the one that wrote.
        const connections = String(await master.client('LIST'))
          .split('\n')
          .filter((line) => line.includes(` name=${connectionName} `));
        expect(connections.some((line) => (strong ? / cmd=wait / : / cmd=evalsha /).test(line))).toBe(true);
        // An eventual write is a plain command, which the client's auto-pipelining may batch with others.
        expect(pipelines).toEqual(strong ? [2] : []);
      } finally {
        await master.config('SET', 'slowlog-log-slower-than', '10000');
      }
    },
  );
});

describe('RedisStore with strong consistency on a server without a replica', () => {
  let server: RedisServer;
  let store: RedisStore;

  beforeAll(async () => {
    server = await startRedisServer();
    store = await openStore({ url: server.url, consistency: 'strong', replicaTimeout: 200 });
  });

  afterAll(async () => {
    await closeAll();
    await server?.stop();
  });

  it('rejects a write with SessionStoreUnavailableError saying no replica acknowledged it', async () => {
    const error = await rejectionOf(store.create(newSession()));

    expect(error).toBeInstanceOf(SessionStoreUnavailableError);
    expect((error as Error).message).toMatch(/replica/i);
  });

  it('rejects a commit and a destroy the same way, while reads still work', async () => {
    const session = newSession();
    const raw = rawClient(server);
    await raw.hset(sessionKey(session.id), {
      '': timesField(session.createdAt, session.lastSeenAt, session.expiresAt),
      version: '1',
    });

    await expect(store.get(session.id)).resolves.toMatchObject({ data: { version: 1 } });
    expect(
      await rejectionOf(store.commit(session.id, { set: { version: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() })),
    ).toBeInstanceOf(SessionStoreUnavailableError);
    expect(await rejectionOf(store.destroy(session.id))).toBeInstanceOf(SessionStoreUnavailableError);
  });
});
