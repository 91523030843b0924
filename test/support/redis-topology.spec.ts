import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Cluster, Redis } from 'ioredis';
import {
  startClusterTopology,
  startRedisServer,
  startSentinelTopology,
  type ClusterTopology,
  type RedisEndpoint,
  type RedisServer,
  type SentinelTopology,
} from './redis-topology.js';

/** Every server this file started, to check at the end that none survived. */
const everyServer: RedisServer[] = [];

/** Clients opened by a test, closed after it whatever happened. */
const clients: Array<Redis | Cluster> = [];

function track<T extends Redis | Cluster>(client: T): T {
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

/**
 * ioredis' disconnect() on a socket that a killed server already closed arms a timer
 * (`disconnectTimeout`, 2 s by default) that nothing clears, holding jest open: keep it short.
 */
const QUICK_DISCONNECT = { disconnectTimeout: 100 };

function closeClients(): void {
  for (const client of clients.splice(0)) if (client.status !== 'end') client.disconnect();
}

function directClient(endpoint: RedisEndpoint): Redis {
  return track(new Redis({ host: endpoint.host, port: endpoint.port, maxRetriesPerRequest: 1, ...QUICK_DISCONNECT }));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startRedisServer', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedisServer();
    everyServer.push(server);
  });

  afterAll(async () => {
    closeClients();
    await server.stop();
  });

  it('starts a server that answers PING on its own free port of 127.0.0.1, never the shared 6379', async () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).not.toBe(6379);
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.running).toBe(true);

    const client = directClient(server);
    expect(await client.ping()).toBe('PONG');
    expect(await client.config('GET', 'port')).toEqual(['port', String(server.port)]);
  });

  it('brings a killed server back on the same port, empty, and a connected client reconnects to it', async () => {
    const client = track(new Redis(server.url, { retryStrategy: () => 50, ...QUICK_DISCONNECT }));
    await client.set('before-crash', '1');
    const port = server.port;

    await server.kill();
    expect(server.running).toBe(false);

    await server.restart();
    expect(server.running).toBe(true);
    expect(server.port).toBe(port);
    expect(await client.ping()).toBe('PONG');
    expect(await client.get('before-crash')).toBeNull();
  });

  it('passes extra arguments on to redis-server', async () => {
    const tuned = await startRedisServer({ args: ['--maxmemory', '10mb'] });
    everyServer.push(tuned);
    try {
      expect(await directClient(tuned).config('GET', 'maxmemory')).toEqual(['maxmemory', String(10 * 1024 * 1024)]);
    } finally {
      await tuned.stop();
    }
  });

  it('stop() ends the process and deletes its directory, and a second stop() is harmless', async () => {
    const doomed = await startRedisServer();
    everyServer.push(doomed);
    const pid = doomed.pid;
    expect(pid).toBeDefined();
    expect(existsSync(doomed.dir)).toBe(true);

    await doomed.stop();
    await doomed.stop();

    expect(doomed.running).toBe(false);
    expect(isAlive(pid as number)).toBe(false);
    expect(existsSync(doomed.dir)).toBe(false);
  });
});

describe('startSentinelTopology', () => {
  let topology: SentinelTopology;
  let client: Redis;

  beforeAll(async () => {
    topology = await startSentinelTopology();
    everyServer.push(topology.master, topology.replica, ...topology.sentinels);
    client = track(new Redis({ sentinels: topology.sentinelEndpoints, name: topology.masterName, ...QUICK_DISCONNECT }));
  }, 30_000);

  afterAll(async () => {
    closeClients();
    await topology.stop();
  });

  it('monitors its master as "mymaster" with three sentinels', async () => {
    expect(topology.masterName).toBe('mymaster');
    expect(topology.sentinels).toHaveLength(3);
    expect(topology.sentinelEndpoints).toEqual(topology.sentinels.map(({ host, port }) => ({ host, port })));
    expect(await topology.currentMaster()).toEqual({ host: '127.0.0.1', port: topology.master.port });
  });

  it('serves writes through the sentinels and replicates them to the replica', async () => {
    await client.set('greeting', 'hello');
    expect(await client.get('greeting')).toBe('hello');
    expect(await client.wait(1, 5_000)).toBe(1);

    expect(await directClient(topology.replica).get('greeting')).toBe('hello');
  });

  it('promotes the replica when the master is killed, and the sentinel client writes again', async () => {
    await client.set('before-failover', 'kept');
    expect(await client.wait(1, 5_000)).toBe(1);

    const promoted = await topology.killMasterAndWaitForFailover();

    expect(promoted).toEqual({ host: '127.0.0.1', port: topology.replica.port });
    expect(await topology.currentMaster()).toEqual(promoted);
    expect(topology.master.running).toBe(false);
    await client.set('after-failover', 'written');
    expect(await client.get('after-failover')).toBe('written');
    expect(await client.get('before-failover')).toBe('kept');
    expect(await directClient(promoted).get('after-failover')).toBe('written');
  }, 30_000);
});

describe('startClusterTopology', () => {
  let topology: ClusterTopology;

  const clusterClient = (): Cluster => track(new Cluster(topology.startupNodes, { redisOptions: QUICK_DISCONNECT }));

  beforeAll(async () => {
    topology = await startClusterTopology();
    everyServer.push(...topology.nodes);
  }, 30_000);

  afterAll(async () => {
    closeClients();
    await topology.stop();
  });

  it('runs six nodes as three masters that each own slots', async () => {
    expect(topology.nodes).toHaveLength(6);
    expect(topology.startupNodes).toEqual(topology.nodes.map(({ host, port }) => ({ host, port })));
    const masters = await topology.masters();
    expect(masters).toHaveLength(3);
    for (const master of masters) expect(topology.startupNodes).toContainEqual(master);
  });

  it('spreads keys over all three masters and reads them back through an ioredis Cluster', async () => {
    const cluster = clusterClient();
    const keys = Array.from({ length: 30 }, (_, i) => `spread:${i}`);
    for (const key of keys) await cluster.set(key, key);
    for (const key of keys) expect(await cluster.get(key)).toBe(key);

    const keysPerMaster = await Promise.all((await topology.masters()).map((master) => directClient(master).dbsize()));
    expect(keysPerMaster.every((count) => count > 0)).toBe(true);
    expect(keysPerMaster.reduce((a, b) => a + b, 0)).toBe(keys.length);
  });

  it('keeps serving a key after the master of its slot is killed', async () => {
    const key = 'session:survivor';
    const before = clusterClient();
    // WAIT has no key: pipelined behind the SET it goes to the same node.
    const [[setError], [waitError, acknowledged]] = (await before.pipeline().set(key, 'kept').wait(1, 5_000).exec()) ?? [];
    expect(setError).toBeNull();
    expect(waitError).toBeNull();
    expect(acknowledged).toBe(1);
    const mastersBefore = await topology.masters();

    const promoted = await topology.killMasterOfKeyAndWaitForFailover(key);

    const mastersAfter = await topology.masters();
    expect(mastersAfter).toHaveLength(3);
    expect(mastersAfter).toContainEqual(promoted);
    expect(mastersBefore).not.toContainEqual(promoted);
    expect(topology.nodes.filter((node) => !node.running)).toHaveLength(1);

    const after = clusterClient();
    expect(await after.get(key)).toBe('kept');
    await after.set(key, 'written after failover');
    expect(await directClient(promoted).get(key)).toBe('written after failover');
  }, 40_000);
});

describe('after every topology is stopped', () => {
  it('leaves no redis-server process and no directory behind', () => {
    expect(everyServer.length).toBeGreaterThan(0);
    for (const server of everyServer) {
      expect(server.running).toBe(false);
      expect(existsSync(server.dir)).toBe(false);
    }
  });
});
