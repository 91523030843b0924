import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import { requireSid } from '../fixtures/index.js';
import { expectConcurrentFieldWritesKept, expectLogoutToWinRaceWithWrites, expectUserSessionsListedOnBoth } from '../fixtures/two-nodes.js';
import { endpointList, RawClients, sessionKeyOf, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { startClusterTopology, startRedisServer, startSentinelTopology } from '../support/redis-topology.js';
import type { ClusterTopology, RedisServer, SentinelTopology } from '../support/redis-topology.js';

/**
 * The sample application (SPEC §4) run as two nodes sharing one Redis: what a client does on one
 * node is seen on the other (SPEC §3.1), concurrent writes to different fields all survive (§3.2),
 * a logout racing writes on the other node stays a logout (§3.8), and the per-user index works
 * across nodes. Then the same sample on Sentinel and on Cluster, configured only by environment.
 * The nodes run on both platforms (one on Express, one on Fastify; Sentinel on Fastify, Cluster on
 * Express) rather than every topology twice: the topologies are the slow part, and the platform
 * takes no part in how the store reaches them.
 */

const raw = new RawClients();

describe('two sample nodes, on Express and on Fastify, sharing one standalone Redis', () => {
  let server: RedisServer;
  let a: SampleNode;
  let b: SampleNode;
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    const env = { SESSION_STORE: 'redis', REDIS_URL: server.url };
    [a, b] = await Promise.all([startSampleNode(env, 'express'), startSampleNode(env, 'fastify')]);
    redis = raw.server(server);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    raw.closeAll();
    await server?.stop();
  });

  const login = async (node: SampleNode, username: string): Promise<string> =>
    requireSid(await node.http().post('/auth/login').send({ username, password: 'demo' }).expect(200));

  it('reports a healthy redis store on both nodes', async () => {
    for (const node of [a, b]) {
      const res = await node.http().get('/health').expect(200);
      expect(res.body).toMatchObject({ status: 'ok', info: { session: { status: 'up', store: 'redis' } } });
    }
  });

  it('keeps a session signed in on A signed in on B (read-your-writes across nodes)', async () => {
    const cookie = await login(a, 'alice');

    const profile = await withSid(b.http().get('/profile'), cookie).expect(200);

    expect(profile.body).toEqual({ userId: 'alice' });
    expect(await redis.hget(sessionKeyOf(cookie), '~u')).toBe('alice');
  });

  it('keeps all 50 concurrent writes to different fields of one session, spread over both nodes', async () => {
    await expectConcurrentFieldWritesKept(a, b);
  });

  it('keeps a session dead when a logout on A races writes on B', async () => {
    for (let round = 0; round < 10; round++) {
      const user = `racer-${round}`;
      const cookie = await expectLogoutToWinRaceWithWrites(a, b, user, 10);
      expect(await redis.exists(sessionKeyOf(cookie))).toBe(0);
      // No session of any id came back signed in as this user.
      expect(await sessionsOwnedBy(redis, user)).toEqual([]);
    }
  });

  it('revokes, from A, the session the same user signed in on B', async () => {
    const onA = await login(a, 'dave');
    const onB = await login(b, 'dave');

    const res = await withSid(a.http().delete('/auth/sessions'), onA).expect(200);

    expect(res.body).toEqual({ revoked: 1 });
    await withSid(b.http().get('/profile'), onB).expect(401);
    await withSid(a.http().get('/profile'), onB).expect(401);
    expect(await redis.exists(sessionKeyOf(onB))).toBe(0);
    // The revoking session itself stays signed in, on both nodes.
    await withSid(b.http().get('/profile'), onA).expect(200);
    await withSid(a.http().get('/profile'), onA).expect(200);
  });

  it('lists the sessions a user signed in on both nodes, from either node', async () => {
    await expectUserSessionsListedOnBoth(a, b, 'erin');
  });
});

/** Every session key in the store whose signed-in user is `user`. */
async function sessionsOwnedBy(redis: Redis, user: string): Promise<string[]> {
  const owned: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', 'sess:{*', 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if ((await redis.type(key)) === 'hash' && (await redis.hget(key, '~u')) === user) owned.push(key);
    }
  } while (cursor !== '0');
  return owned;
}

describe('the sample on Fastify on Redis Sentinel (REDIS_SENTINELS + REDIS_SENTINEL_NAME)', () => {
  let topology: SentinelTopology;
  let node: SampleNode;

  beforeAll(async () => {
    topology = await startSentinelTopology();
    node = await startSampleNode(
      {
        SESSION_STORE: 'redis',
        REDIS_SENTINELS: endpointList(topology.sentinelEndpoints),
        REDIS_SENTINEL_NAME: topology.masterName,
      },
      'fastify',
    );
  });

  afterAll(async () => {
    await node?.close();
    raw.closeAll();
    await topology?.stop();
  });

  it('signs in and reads the session back, stored on the master the sentinels name', async () => {
    const cookie = requireSid(await node.http().post('/auth/login').send({ username: 'sam', password: 'demo' }).expect(200));

    const profile = await withSid(node.http().get('/profile'), cookie).expect(200);

    expect(profile.body).toEqual({ userId: 'sam' });
    const master = raw.server(await topology.currentMaster());
    expect(await master.hget(sessionKeyOf(cookie), '~u')).toBe('sam');
    expect((await node.http().get('/health').expect(200)).body).toMatchObject({ status: 'ok', info: { session: { status: 'up', store: 'redis' } } });
  });
});

describe('the sample on Redis Cluster (REDIS_CLUSTER_NODES)', () => {
  let topology: ClusterTopology;
  let node: SampleNode;

  beforeAll(async () => {
    topology = await startClusterTopology();
    node = await startSampleNode({ SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: endpointList(topology.startupNodes) });
  });

  afterAll(async () => {
    await node?.close();
    raw.closeAll();
    await topology?.stop();
  });

  it('signs in (an id rotation across slots) and reads the session back', async () => {
    const anonymous = requireSid(await node.http().post('/visits').expect(200));
    const cookie = requireSid(await withSid(node.http().post('/auth/login'), anonymous).send({ username: 'cleo', password: 'demo' }).expect(200));

    const profile = await withSid(node.http().get('/profile'), cookie).expect(200);
    const session = await withSid(node.http().get('/session'), cookie).expect(200);

    expect(profile.body).toEqual({ userId: 'cleo' });
    expect(session.body).toEqual({ data: { visits: 1, userId: 'cleo' } });
    const cluster = raw.cluster(topology.startupNodes);
    expect(await cluster.hget(sessionKeyOf(cookie), '~u')).toBe('cleo');
    expect(await cluster.exists(sessionKeyOf(anonymous))).toBe(0);
    expect((await node.http().get('/health').expect(200)).body).toMatchObject({ status: 'ok', info: { session: { status: 'up', store: 'redis' } } });
  });
});
