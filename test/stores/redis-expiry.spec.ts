/**
 * RedisStore reports the sessions Redis expires (keyspace notifications, `notify-keyspace-events
 * Ex`, which the test topologies turn on), once across every node that shares the store: each
 * "node" here is a RedisStore with its own client, as separate processes would have.
 *
 * "Exactly once" is checked after a barrier rather than after a pause: a raw subscriber records
 * every expired session key the masters publish, and the test waits until the masters have
 * answered one GETDEL per watching node for each of them (INFO commandstats), then makes one more
 * round trip on each node's connections, so any second report would have arrived by then.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Cluster, Redis } from 'ioredis';
import { RedisStore } from '../../lib/stores/redis/index.js';
import type { ExpiredSession, StoredSession } from '../../lib/stores/session-store.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import {
  startClusterTopology,
  startRedisServer,
  startSentinelTopology,
  type ClusterTopology,
  type RedisEndpoint,
  type RedisServer,
  type SentinelTopology,
} from '../support/redis-topology.js';
import { RecordingLogger } from '../support/recording-logger.js';
import { redisStoreOnServer } from '../support/redis-store-on-server.js';
import { pollUntil } from '../support/waiting.js';

/** The lifetime of a session meant to expire during a case. */
const SHORT = 150;
const HOUR = 60 * 60_000;
const EXPIRED_CHANNEL = '__keyevent@0__:expired';
/** A session key of the default prefix: not an index (`sess:user:{…}`), not a marker (`…}:x`). */
const SESSION_KEY = /^sess:\{[^{}]+\}$/;

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(9).toString('base64url')}`;
const sessionKey = (id: string): string => `sess:{${id}}`;

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { n: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + SHORT, userId: null, ...overrides };
}

const RAW_OPTIONS = { maxRetriesPerRequest: 1, connectTimeout: 1_000, commandTimeout: 2_000, disconnectTimeout: 100 };

type StoreOptions = Omit<RedisStoreConfig, 'type' | 'problems'>;

/** One node of the application: a store, the expiries it reported, and how to stop listening. */
interface Node {
  store: RedisStore;
  reports: ExpiredSession[];
  logger: RecordingLogger;
  stopWatching: () => void;
}

/** How the shared cases reach one topology. */
interface Topology {
  /** Store options for a new node. */
  options(): StoreOptions;
  /** The masters now (the ones that publish expiries). */
  masters(): Promise<RedisEndpoint[]>;
  /** A client as an application would create and hand to the store (also used to read keys). */
  newClient(): Redis | Cluster;
  /** `count` fresh session ids; on a Cluster, spread over every master. */
  ids(count: number): Promise<string[]>;
}

/**
 * The nodes of one topology, a raw subscriber per master recording the expired session keys
 * they publish, and the barrier of the file header.
 */
class Harness {
  readonly nodes: Node[] = [];
  /** Expired session keys the masters published since the last {@link record}. */
  private expired: string[] = [];
  private recorders: Redis[] = [];
  private readonly raw: Array<Redis | Cluster> = [];
  /** One plain connection per server, for statistics and probes. */
  private readonly direct = new Map<string, Redis>();
  private readonly extraStores: RedisStore[] = [];

  constructor(readonly topology: Topology) {}

  /** A new node, listening. */
  async addNode(): Promise<Node> {
    const store = await RedisStore.fromConfig({ type: 'redis', ...this.topology.options(), expiryEvents: true } as RedisStoreConfig);
    const logger = new RecordingLogger();
    store.useLogger(logger);
    const node: Node = { store, reports: [], logger, stopWatching: () => undefined };
    this.listen(node);
    this.nodes.push(node);
    return node;
  }

  listen(node: Node): void {
    node.stopWatching = node.store.watchExpiry((expired) => node.reports.push(expired));
  }

  /** A store the case closes itself; closed at the end anyway. */
  track(store: RedisStore): RedisStore {
    this.extraStores.push(store);
    return store;
  }

  client<T extends Redis | Cluster>(client: T): T {
    client.on('error', () => undefined);
    this.raw.push(client);
    return client;
  }

  server(endpoint: RedisEndpoint): Redis {
    const address = `${endpoint.host}:${endpoint.port}`;
    let client = this.direct.get(address);
    if (!client) {
      client = this.client(new Redis({ host: endpoint.host, port: endpoint.port, ...RAW_OPTIONS }));
      this.direct.set(address, client);
    }
    return client;
  }

  /** (Re)starts recording on the current masters (after a failover, on the new ones). */
  async record(): Promise<void> {
    for (const recorder of this.recorders.splice(0)) recorder.disconnect();
    for (const master of await this.topology.masters()) {
      const recorder = this.client(new Redis({ host: master.host, port: master.port, ...RAW_OPTIONS }));
      recorder.on('message', (_channel: string, key: string) => {
        if (SESSION_KEY.test(key)) this.expired.push(key);
      });
      await recorder.subscribe(EXPIRED_CHANNEL);
      this.recorders.push(recorder);
    }
    await this.reset();
  }

  /** Starts a case: no expiry recorded, no GETDEL counted (the previous case settled). */
  async reset(): Promise<void> {
    this.expired = [];
    for (const master of await this.topology.masters()) await this.server(master).config('RESETSTAT');
  }

  /** Subscribers of the expired channel on each master right now. */
  async subscribersPerMaster(): Promise<number[]> {
    return Promise.all(
      (await this.topology.masters()).map(async (master) => {
        const [, count] = (await this.server(master).call('PUBSUB', 'NUMSUB', EXPIRED_CHANNEL)) as [string, number];
        return Number(count);
      }),
    );
  }

  /** Waits until every master has `count` store subscribers besides the recorder. */
  async waitForSubscribers(count = this.nodes.length): Promise<void> {
    await pollUntil(`${count} expiry subscribers on every master`, async () => {
      const counts = await this.subscribersPerMaster();
      return counts.every((n) => n === count + 1) ? true : undefined;
    });
  }

  /** Every report of `id`, from every node. */
  reportsOf(id: string): ExpiredSession[] {
    return this.nodes.flatMap((node) => node.reports.filter((report) => report.id === id));
  }

  /** Waits until each of `ids` was reported by some node. */
  async waitForReports(ids: string[]): Promise<void> {
    await pollUntil(`reports of ${ids.length} expired sessions`, () => (ids.every((id) => this.reportsOf(id).length > 0) ? true : undefined));
  }

  /**
   * The barrier: once the masters published the expiry of each of `ids`, waits until every
   * listening node has sent its GETDEL for every expiry recorded, and has had the answer.
   */
  async settle(ids: string[], listening: Node[] = this.nodes): Promise<void> {
    await pollUntil('the expiry events to reach the recorder', () => (ids.every((id) => this.expired.includes(sessionKey(id))) ? true : undefined));
    await pollUntil('every listening node to take its turn at each expiry marker', async () => {
      let calls = 0;
      for (const master of await this.topology.masters()) {
        const stats = await this.server(master).info('commandstats');
        calls += Number(/^cmdstat_getdel:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
      }
      return calls >= listening.length * this.expired.length ? true : undefined;
    });
    // GETDEL went out on each node's main connection (a Cluster's master connections): a round
    // trip on the same connections comes back after its answer was handled.
    await Promise.all(
      listening.map(async ({ store }) => {
        const client = (store as unknown as { client: Redis | Cluster }).client;
        if (client instanceof Cluster) await Promise.all(client.nodes('master').map((master) => master.ping()));
        else await client.ping();
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.nodes.splice(0).map((node) => node.store), ...this.extraStores.splice(0)].map((store) => store.onApplicationShutdown()),
    );
    this.recorders = [];
    for (const client of this.raw.splice(0)) if (client.status !== 'end') client.disconnect();
  }
}

/** The cases every topology passes, with two nodes watching. */
function describeExpiryReporting(harness: () => Harness): void {
  it('reports an expired session once when two nodes watch, with its id and user', async () => {
    const h = harness();
    await h.reset();
    const [id] = await h.topology.ids(1);
    const userId = newUserId();

    // Signed in as the pipeline writes it: the user's data field refers to the user.
    await h.nodes[0].store.create(newSession({ id, userId, data: { userId, n: 1 } }));
    await h.waitForReports([id]);
    await h.settle([id]);

    expect(h.reportsOf(id)).toEqual([{ id, userId }]);
  });

  it('reports each of several expiring sessions exactly once, with its user or null', async () => {
    const h = harness();
    await h.reset();
    const ids = await h.topology.ids(9);
    const sessions = ids.map((id, i) => newSession({ id, userId: i % 3 === 0 ? null : newUserId(), expiresAt: Date.now() + SHORT + 20 * i }));

    // Written from both nodes, as requests land on either.
    await Promise.all(sessions.map((session, i) => h.nodes[i % 2].store.create(session)));
    await h.waitForReports(ids);
    await h.settle(ids);

    for (const session of sessions) expect(h.reportsOf(session.id)).toEqual([{ id: session.id, userId: session.userId }]);
  });

  it('does not report destroyed or rotated-away sessions, nor one whose expiry was extended, but reports where a rotation moved one', async () => {
    const h = harness();
    await h.reset();
    const [a, b] = h.nodes;
    const [destroyedId, oldId, movedId, extendedId, controlId] = await h.topology.ids(5);
    const userId = newUserId();
    const destroyed = newSession({ id: destroyedId, userId });
    const old = newSession({ id: oldId, userId });
    const extended = newSession({ id: extendedId, userId });
    await Promise.all([destroyed, old, extended].map((session) => a.store.create(session)));

    await b.store.destroy(destroyed.id);
    await expect(b.store.rotate(old.id, newSession({ id: movedId, userId, data: old.data }))).resolves.toBe(true);
    await expect(a.store.commit(extended.id, { set: {}, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() })).resolves.toBe(true);
    await a.store.create(newSession({ id: controlId }));

    await h.waitForReports([movedId, controlId]);
    // Past their original expiry: touching the keys makes Redis expire any that were still there.
    const reader = h.client(h.topology.newClient());
    for (const id of [destroyedId, oldId]) expect(await reader.exists(sessionKey(id))).toBe(0);
    await h.settle([movedId, controlId]);

    expect(h.reportsOf(movedId)).toEqual([{ id: movedId, userId }]);
    expect(h.reportsOf(controlId)).toEqual([{ id: controlId, userId: null }]);
    expect(h.reportsOf(destroyedId)).toEqual([]);
    expect(h.reportsOf(oldId)).toEqual([]);
    expect(h.reportsOf(extendedId)).toEqual([]);
    await expect(a.store.get(extendedId)).resolves.toMatchObject({ id: extendedId, userId });
    await a.store.destroy(extendedId);
  });

  it('leaves the report to the node that listens when the other removed its listener, and listens again without a second subscription', async () => {
    const h = harness();
    await h.reset();
    const [a, b] = h.nodes;
    a.stopWatching();
    const [id] = await h.topology.ids(1);
    try {
      await a.store.create(newSession({ id }));
      await h.waitForReports([id]);
      await h.settle([id], [b]);

      expect(b.reports.filter((report) => report.id === id)).toEqual([{ id, userId: null }]);
      expect(a.reports.filter((report) => report.id === id)).toEqual([]);
    } finally {
      h.listen(a);
    }
    // Its subscription was kept: listening again adds none.
    expect(await h.subscribersPerMaster()).toEqual((await h.topology.masters()).map(() => h.nodes.length + 1));
  });

  it('logs no warning about notifications on servers that publish expiry events', () => {
    for (const node of harness().nodes) expect(node.logger.warnings.filter((w) => /notify-keyspace-events/.test(w))).toEqual([]);
  });

  it('closes its subscribers on shutdown, also when it was given its client, and leaves that client open', async () => {
    const h = harness();
    const client = h.client(h.topology.newClient());
    const store = h.track(new RedisStore({ client, expiryEvents: true }));
    store.watchExpiry(() => undefined);
    await h.waitForSubscribers(h.nodes.length + 1);

    await store.onApplicationShutdown();

    await h.waitForSubscribers(h.nodes.length);
    await expect(client.ping()).resolves.toBe('PONG');
  });
}

/** Two listening nodes and a recorder on a topology, for the duration of a describe. */
function useHarness(topology: () => Topology): () => Harness {
  let harness: Harness;
  beforeAll(async () => {
    harness = new Harness(topology());
    await harness.record();
    await harness.addNode();
    await harness.addNode();
    await harness.waitForSubscribers();
  });
  afterAll(async () => {
    await harness?.close();
  });
  return () => harness;
}

const randomIds = async (count: number): Promise<string[]> => Array.from({ length: count }, newId);

describe('RedisStore expiry events', () => {
  describe('on a standalone server', () => {
    let server: RedisServer;

    beforeAll(async () => {
      server = await startRedisServer();
    });

    afterAll(async () => {
      await server?.stop();
    });

    describeExpiryReporting(
      useHarness(() => ({
        options: () => ({ url: server.url }),
        masters: async () => [server],
        newClient: () => new Redis(server.url, RAW_OPTIONS),
        ids: randomIds,
      })),
    );
  });

  describe('behind Sentinel', () => {
    let topology: SentinelTopology;

    beforeAll(async () => {
      topology = await startSentinelTopology();
    }, 30_000);

    afterAll(async () => {
      await topology?.stop();
    });

    const harness = useHarness(() => ({
      options: () => ({ sentinels: topology.sentinelEndpoints, name: topology.masterName }),
      masters: async () => [await topology.currentMaster()],
      newClient: () => new Redis({ sentinels: topology.sentinelEndpoints, name: topology.masterName, ...RAW_OPTIONS }),
      ids: randomIds,
    }));

    describeExpiryReporting(harness);

    it('keeps reporting once after a failover, from the promoted replica', async () => {
      const h = harness();

      await topology.killMasterAndWaitForFailover();
      await h.record();
      await h.waitForSubscribers();
      const [id] = await h.topology.ids(1);
      const userId = newUserId();
      await h.nodes[1].store.create(newSession({ id, userId }));
      await h.waitForReports([id]);
      await h.settle([id]);

      expect(h.reportsOf(id)).toEqual([{ id, userId }]);
    }, 60_000);
  });

  describe('on a Cluster', () => {
    let topology: ClusterTopology;
    let slots: SlotMap;

    beforeAll(async () => {
      topology = await startClusterTopology();
      slots = new SlotMap(() => topology.masters());
    }, 30_000);

    afterAll(async () => {
      slots?.close();
      await topology?.stop();
    });

    const harness = useHarness(() => ({
      options: () => ({ cluster: topology.startupNodes }),
      masters: () => topology.masters(),
      newClient: () => new Cluster(topology.startupNodes, { redisOptions: RAW_OPTIONS }),
      ids: (count) => slots.idsOnEveryMaster(count),
    }));

    describeExpiryReporting(harness);

    it('reports the sessions that expire on every master, each once', async () => {
      const h = harness();
      await h.reset();
      const ids = await slots.idsOnEveryMaster(6);
      const masters = new Set(await Promise.all(ids.map((id) => slots.masterOf(sessionKey(id)))));
      expect(masters.size).toBe((await topology.masters()).length);

      await Promise.all(ids.map((id, i) => h.nodes[i % 2].store.create(newSession({ id, userId: `user-${i}` }))));
      await h.waitForReports(ids);
      await h.settle(ids);

      ids.forEach((id, i) => expect(h.reportsOf(id)).toEqual([{ id, userId: `user-${i}` }]));
    });

    it('subscribes to a master that took over after a failover, and reports its expiries once', async () => {
      const h = harness();
      const [id] = await slots.idsOnEveryMaster(1);

      const promoted = await topology.killMasterOfKeyAndWaitForFailover(sessionKey(id));
      await h.record();
      await pollUntil(
        'both nodes to subscribe on the promoted master',
        async () => {
          const [, count] = (await h.server(promoted).call('PUBSUB', 'NUMSUB', EXPIRED_CHANNEL)) as [string, number];
          return Number(count) === 3 ? true : undefined;
        },
        { timeoutMs: 30_000 },
      );
      await h.waitForSubscribers();
      expect(await slots.masterOf(sessionKey(id))).toBe(`${promoted.host}:${promoted.port}`);
      await h.nodes[0].store.create(newSession({ id, userId: 'after-failover' }));
      await h.waitForReports([id]);
      await h.settle([id]);

      expect(h.reportsOf(id)).toEqual([{ id, userId: 'after-failover' }]);
    }, 60_000);
  });
});

type SlotRanges = Array<[from: number, to: number, master: [host: string, port: number]]>;

/** Which Cluster master serves a key, from CLUSTER SLOTS and CLUSTER KEYSLOT asked of a live master. */
class SlotMap {
  private readonly clients = new Map<string, Redis>();

  constructor(private readonly masters: () => Promise<RedisEndpoint[]>) {}

  /** `host:port` of the master serving `key` now. */
  async masterOf(key: string): Promise<string> {
    return this.ownerIn(await this.ranges(), key);
  }

  /** `count` fresh ids, taken in turn from each master's share, so that every master gets some. */
  async idsOnEveryMaster(count: number): Promise<string[]> {
    const ranges = await this.ranges();
    const byMaster = new Map<string, string[]>(ranges.map(([, , [host, port]]) => [`${host}:${port}`, []]));
    const perMaster = Math.ceil(count / byMaster.size);
    while ([...byMaster.values()].some((ids) => ids.length < perMaster)) {
      const id = newId();
      const ids = byMaster.get(await this.ownerIn(ranges, sessionKey(id)))!;
      if (ids.length < perMaster) ids.push(id);
    }
    const lists = [...byMaster.values()];
    return Array.from({ length: count }, (_, i) => lists[i % lists.length][Math.floor(i / lists.length)]);
  }

  close(): void {
    for (const client of this.clients.values()) client.disconnect();
  }

  private async ownerIn(ranges: SlotRanges, key: string): Promise<string> {
    const slot = Number(await (await this.live()).call('CLUSTER', 'KEYSLOT', key));
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no master serves slot ${slot}`);
    return `${range[2][0]}:${range[2][1]}`;
  }

  private async ranges(): Promise<SlotRanges> {
    return (await (await this.live()).call('CLUSTER', 'SLOTS')) as SlotRanges;
  }

  /** A connection to a master that is up now (a failover may have killed the one used before). */
  private async live(): Promise<Redis> {
    const [master] = await this.masters();
    const address = `${master.host}:${master.port}`;
    let client = this.clients.get(address);
    if (!client) {
      client = new Redis({ host: master.host, port: master.port, ...RAW_OPTIONS });
      client.on('error', () => undefined);
      this.clients.set(address, client);
    }
    return client;
  }
}

describe('RedisStore expiry events on a server that publishes none', () => {
  let quiet: RedisServer;
  let locked: RedisServer;
  const stores: RedisStore[] = [];
  const clients: Redis[] = [];

  beforeAll(async () => {
    [quiet, locked] = await Promise.all([
      startRedisServer({ args: ['--notify-keyspace-events', ''] }),
      // A managed Redis that refuses CONFIG: the store cannot tell, so it says nothing.
      startRedisServer({ args: ['--notify-keyspace-events', '', '--rename-command', 'CONFIG', ''] }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(stores.map((store) => store.onApplicationShutdown()));
    for (const client of clients) client.disconnect();
    await Promise.all([quiet?.stop(), locked?.stop()]);
  });

  async function watching(server: RedisServer): Promise<{ store: RedisStore; logger: RecordingLogger; probe: Redis }> {
    const store = await RedisStore.fromConfig({ type: 'redis', url: server.url, expiryEvents: true } as RedisStoreConfig);
    stores.push(store);
    const logger = new RecordingLogger();
    store.useLogger(logger);
    const probe = new Redis(server.url, RAW_OPTIONS);
    clients.push(probe);
    store.watchExpiry(() => undefined);
    // The store checks the config before it subscribes: once subscribed, the check is done.
    await pollUntil('the store to subscribe', async () => {
      const [, count] = (await probe.call('PUBSUB', 'NUMSUB', EXPIRED_CHANNEL)) as [string, number];
      return Number(count) === 1 ? true : undefined;
    });
    return { store, logger, probe };
  }

  it('logs one warning naming the fix, and leaves the server config as it was', async () => {
    const { store, logger, probe } = await watching(quiet);
    const stop = store.watchExpiry(() => undefined);
    stop();

    const warnings = logger.warnings.filter((w) => /notify-keyspace-events/.test(w));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('CONFIG SET notify-keyspace-events Ex');
    expect(warnings[0]).toContain('redis.conf');
    expect(await probe.config('GET', 'notify-keyspace-events')).toEqual(['notify-keyspace-events', '']);
  });

  it('says nothing when the server refuses CONFIG', async () => {
    const { logger } = await watching(locked);

    expect(logger.warnings.filter((w) => /notify-keyspace-events/.test(w))).toEqual([]);
  });
});

describe('RedisStore without expiryEvents (the default)', () => {
  const redis = redisStoreOnServer();

  it('keeps no marker key, and a listener for expired sessions gets a warning naming expiryEvents instead of a subscription, once', async () => {
    const { store, probe } = redis;
    const logger = new RecordingLogger();
    store.useLogger(logger);
    const userId = newUserId();
    const id = newId();
    const now = Date.now();
    await store.create({ id, data: { userId }, createdAt: now, lastSeenAt: now, expiresAt: now + 60_000, userId });
    await store.commit(id, { set: { n: 1 }, unset: [], expiresAt: now + 120_000, lastSeenAt: now });

    const stop = store.watchExpiry(() => undefined);
    await pollUntil('the warning', async () => (logger.warnings.length > 0 ? true : undefined));
    // Listeners that come back after all were removed start the watch again: no second warning.
    stop();
    store.watchExpiry(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));

    expect(await probe.keys(`*${id}*`)).toEqual([`sess:{${id}}`]);
    expect(logger.warnings).toEqual([expect.stringContaining('expiryEvents: true')]);
    const [, subscribers] = (await probe.call('PUBSUB', 'NUMSUB', EXPIRED_CHANNEL)) as [string, number];
    expect(Number(subscribers)).toBe(0);
  });
});
