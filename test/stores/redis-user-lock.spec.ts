/**
 * RedisStore.withUserLock across nodes: what keeps `maxSessionsPerUser` exact when one user signs
 * in on several nodes at once. Each "node" is a RedisStore with its own client, as separate
 * processes would have; the lock they share is a key in Redis, `<prefix>user:{<userId>}:lock`.
 *
 * Overlap is checked from the order of events the critical sections record (enter, a store round
 * trip and a short pause, exit), never from durations; "waits while held" is checked by counting
 * the SET attempts the server received from the waiting node.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Cluster, Redis } from 'ioredis';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { startClusterTopology, startRedisServer, type ClusterTopology, type RedisServer } from '../support/redis-topology.js';
import { pollUntil, settlesWithin } from '../support/waiting.js';

/** The longest a lock is held by a node that never releases it (the store's lease). */
const LEASE = 10_000;
// settlesWithin() fails a call still pending after 5 s: well under the lease, so a lock left behind shows.

const newUserId = (): string => `user-${randomBytes(9).toString('base64url')}`;
const indexKey = (userId: string): string => `sess:user:{${userId}}`;
const lockKey = (userId: string): string => `${indexKey(userId)}:lock`;

type StoreOptions = Omit<RedisStoreConfig, 'type' | 'problems'>;

const RAW_OPTIONS = { maxRetriesPerRequest: 1, connectTimeout: 1_000, commandTimeout: 2_000, disconnectTimeout: 100 };

const stores: RedisStore[] = [];
const clients: Array<Redis | Cluster> = [];

async function openStore(options: StoreOptions): Promise<RedisStore> {
  const store = await RedisStore.fromConfig({ type: 'redis', ...options } as RedisStoreConfig);
  stores.push(store);
  return store;
}

function track<T extends Redis | Cluster>(client: T): T {
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

async function closeAll(): Promise<void> {
  await Promise.all(stores.splice(0).map((store) => store.onApplicationShutdown()));
  for (const client of clients.splice(0)) if (client.status !== 'end') client.disconnect();
}

/** A promise and the function that resolves it: a critical section that ends when the test says so. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** The cases every topology passes, with two nodes and a raw client (`Redis` or `Cluster`) to look at the keys. */
function describeUserLock(setup: () => { a: RedisStore; b: RedisStore; probe: Redis | Cluster }): void {
  it('never lets two nodes run the critical section of the same user at once', async () => {
    const { a, b } = setup();
    const userId = newUserId();
    const events: string[] = [];
    const critical = (label: string) => async (): Promise<string> => {
      events.push(`enter ${label}`);
      // A store round trip and a pause: room for another node to barge in, were the lock not shared.
      await (label.startsWith('a') ? a : b).listByUser(userId);
      await sleep(5 + Math.random() * 10);
      events.push(`exit ${label}`);
      return label;
    };

    const labels = Array.from({ length: 12 }, (_, i) => `${i % 2 === 0 ? 'a' : 'b'}${i}`);
    const results = await Promise.all(labels.map((label) => (label.startsWith('a') ? a : b).withUserLock(userId, critical(label))));

    expect(results).toEqual(labels);
    expect(events).toHaveLength(2 * labels.length);
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i]).toMatch(/^enter /);
      expect(events[i + 1]).toBe(events[i].replace('enter', 'exit'));
    }
  });

  it('lets callers for different users proceed at once, on the same node and on another', async () => {
    const { a, b } = setup();
    const [held, other, third] = [newUserId(), newUserId(), newUserId()];
    const { opened, open } = gate();
    const first = a.withUserLock(held, async () => {
      await opened;
      return 'held';
    });
    try {
      await pollUntil('the first lock to be taken', async () => ((await setup().probe.exists(lockKey(held))) === 1 ? true : undefined));

      await expect(settlesWithin(b.withUserLock(other, async () => 'other node'))).resolves.toBe('other node');
      await expect(settlesWithin(a.withUserLock(third, async () => 'same node'))).resolves.toBe('same node');
    } finally {
      open();
    }
    await expect(first).resolves.toBe('held');
  });

  it('releases the lock when the critical section throws, and rethrows its error', async () => {
    const { a, b, probe } = setup();
    const userId = newUserId();
    const failure = new Error('critical section failed');

    await expect(a.withUserLock(userId, async () => Promise.reject(failure))).rejects.toBe(failure);

    expect(await probe.exists(lockKey(userId))).toBe(0);
    await expect(settlesWithin(b.withUserLock(userId, async () => 'next'))).resolves.toBe('next');
  });

  it('keeps the lock in <prefix>user:{<userId>}:lock, in the slot of the user index, with a lease, only while held', async () => {
    const { a, probe } = setup();
    const userId = newUserId();

    await a.withUserLock(userId, async () => {
      expect(await probe.type(lockKey(userId))).toBe('string');
      const ttl = await probe.pttl(lockKey(userId));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(LEASE);
    });

    expect(await probe.exists(lockKey(userId))).toBe(0);
    const slotOf = (key: string): Promise<unknown> => probe.call('CLUSTER', 'KEYSLOT', key);
    if (probe instanceof Cluster) expect(await slotOf(lockKey(userId))).toBe(await slotOf(indexKey(userId)));
  });

  it("does not delete a lock another holder took after this holder's lease ran out", async () => {
    const { a, probe } = setup();
    const userId = newUserId();

    await a.withUserLock(userId, async () => {
      // As if the lease had run out during a long critical section and another node took the lock.
      await probe.set(lockKey(userId), 'another-holder', 'PX', 60_000);
    });

    expect(await probe.get(lockKey(userId))).toBe('another-holder');
    await probe.del(lockKey(userId));
  });
}

describe('RedisStore user lock', () => {
  afterAll(closeAll);

  describe('on a standalone server', () => {
    let server: RedisServer;
    let a: RedisStore;
    let b: RedisStore;
    let probe: Redis;

    beforeAll(async () => {
      server = await startRedisServer();
      [a, b] = await Promise.all([openStore({ url: server.url }), openStore({ url: server.url })]);
      probe = track(new Redis(server.url, RAW_OPTIONS));
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    describeUserLock(() => ({ a, b, probe }));

    it('makes a second node wait while the first holds the lock, and lets it in once released', async () => {
      const userId = newUserId();
      const entered: string[] = [];
      const { opened, open } = gate();
      const first = a.withUserLock(userId, async () => {
        entered.push('a');
        await opened;
      });
      await pollUntil('the first node to hold the lock', () => (entered.length === 1 ? true : undefined));
      await probe.config('RESETSTAT');

      const second = b.withUserLock(userId, async () => {
        entered.push('b');
      });
      // Several refused attempts of the second node: it kept trying, and stayed out.
      await pollUntil('the second node to try three times', async () => {
        const calls = Number(/^cmdstat_set:calls=(\d+)/m.exec(await probe.info('commandstats'))?.[1] ?? 0);
        return calls >= 3 ? true : undefined;
      });
      expect(entered).toEqual(['a']);

      open();
      await settlesWithin(Promise.all([first, second]));
      expect(entered).toEqual(['a', 'b']);
    });

    it("takes the lock without WAIT under consistency 'strong': it works where strong writes fail for want of a replica", async () => {
      const strong = await openStore({ url: server.url, consistency: 'strong', replicaTimeout: 200 });

      await expect(strong.withUserLock(newUserId(), async () => 'entered')).resolves.toBe('entered');
    });

    it('rejects instead of hanging while Redis is down, without running the critical section', async () => {
      const doomed = await startRedisServer();
      try {
        const store = await openStore({ url: doomed.url, commandTimeout: 300 });
        await store.ping();
        await doomed.kill();
        let ran = false;

        const outcome = await settlesWithin(
          store
            .withUserLock(newUserId(), async () => {
              ran = true;
            })
            .then(
              () => 'resolved',
              (error: unknown) => error,
            ),
        );

        expect(outcome).toBeInstanceOf(Error);
        expect(ran).toBe(false);
      } finally {
        await doomed.stop();
      }
    });
  });

  describe('on a Cluster', () => {
    let topology: ClusterTopology;
    let a: RedisStore;
    let b: RedisStore;
    let probe: Cluster;

    beforeAll(async () => {
      topology = await startClusterTopology();
      [a, b] = await Promise.all([openStore({ cluster: topology.startupNodes }), openStore({ cluster: topology.startupNodes })]);
      probe = track(new Cluster(topology.startupNodes, { redisOptions: RAW_OPTIONS }));
    }, 30_000);

    afterAll(async () => {
      await closeAll();
      await topology?.stop();
    });

    describeUserLock(() => ({ a, b, probe }));
  });
});
