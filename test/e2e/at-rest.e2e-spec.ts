import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { idOf, keyOf } from '../fixtures/cookies.js';
import { endpointList, RawClients, startSampleNode } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { dumpDirectory, dumpPostgres, dumpRedis, marker } from '../fixtures/store-dumps.js';
import { signIn, withCookie } from '../fixtures/two-nodes.js';
import { postgresForTests } from '../support/postgres-server.js';
import type { RedisEndpoint } from '../support/redis-topology.js';
import { startClusterTopology, startRedisServer, startSentinelTopology } from '../support/redis-topology.js';
import { pollUntil } from '../support/waiting.js';

/**
 * `SESSION_ENCRYPTION_KEYS` on the sample (SPEC §4) run as two nodes, on every shared store:
 * Redis standalone, Sentinel and Cluster, PostgreSQL and the file store. For each:
 *
 * 1. the nodes share sessions as they do without keys;
 * 2. a full read of the store (every key and value on every Redis master, and every command the
 *    nodes sent, as MONITOR saw it; every row; every file name and content) holds neither the
 *    session id the cookie carries, nor the user name, nor any value the application wrote;
 * 3. without keys, the session id is still nowhere (stores are given its hash);
 * 4. a key rotation (`old` → `new,old` → `new`) keeps a session used during it signed in whole,
 *    and turns one left idle into an anonymous session, never an error.
 *
 * Each topology starts once per describe; nodes are cheap (in-process apps) and are started per
 * configuration of keys.
 */

const newKey = (): string => randomBytes(32).toString('base64url');

const raw = new RawClients();

/** What one store family gives the shared checks. */
interface SharedStore {
  /** The sample's environment for this store (SESSION_STORE and its connection variables). */
  env: Record<string, string>;
  /** Everything the store holds, as one text. */
  dump(): Promise<string>;
  /** For Redis: the servers whose command streams a MONITOR capture covers (every master). */
  masters?(): Promise<RedisEndpoint[]>;
  close(): Promise<void>;
}

/** A session signed in on A and written on both nodes, with what it must never show in the clear. */
interface SharedSession {
  cookie: string;
  username: string;
  prefs: Record<string, string>;
}

/**
 * Signs in on A as a unique user, writes two prefs with unique values alternating A and B, then
 * reads the whole session and the profile on both nodes (SPEC §3.1, sealed or not).
 */
async function shareSession(a: SampleNode, b: SampleNode): Promise<SharedSession> {
  const username = marker('user');
  const cookie = await signIn(a, username);
  const prefs = { colour: marker('colour'), city: marker('city') };

  await withCookie(a.http().put('/prefs/colour'), cookie).send({ value: prefs.colour }).expect(200);
  await withCookie(b.http().put('/prefs/city'), cookie).send({ value: prefs.city }).expect(200);

  for (const node of [a, b]) {
    await withCookie(node.http().get('/profile'), cookie).expect(200, { userId: username });
    const session = await withCookie(node.http().get('/session'), cookie).expect(200);
    expect(session.body).toEqual({ data: { userId: username, 'pref:colour': prefs.colour, 'pref:city': prefs.city } });
  }
  return { cookie, username, prefs };
}

/** The texts a store must never hold for `session` when keys are set. */
const clearTextsOf = ({ cookie, username, prefs }: SharedSession): string[] => [idOf(cookie), username, ...Object.values(prefs)];

/**
 * Records every command the given Redis servers execute until `stop()`, as the raw MONITOR
 * stream. A plain socket rather than ioredis' `monitor()`: that one switches to monitor mode only
 * a tick after MONITOR's +OK, so a line arriving in the same packet (the sentinels INFO the master
 * all the time) is taken for a command reply and ends in "Command queue state error".
 *
 * `stop()` first sends each server an ECHO of a fresh marker and waits for it in the capture:
 * MONITOR reports commands in the order the server runs them, so everything sent before is in.
 */
async function monitorRedis(servers: readonly RedisEndpoint[]): Promise<{ stop(): Promise<string> }> {
  const watched = await Promise.all(
    servers.map(
      ({ host, port }) =>
        new Promise<{ endpoint: RedisEndpoint; text: () => string; end: () => void }>((resolve, reject) => {
          if (port === 6379) throw new Error('at-rest: refusing to MONITOR the shared Redis on 6379');
          let text = '';
          const socket = connect({ host, port }, () => socket.write('MONITOR\r\n'));
          socket.setEncoding('utf8');
          socket.on('error', reject);
          socket.on('data', (chunk: string) => {
            const started = text.startsWith('+OK\r\n');
            text += chunk;
            if (!started && text.startsWith('+OK\r\n')) resolve({ endpoint: { host, port }, text: () => text, end: () => socket.destroy() });
          });
        }),
    ),
  );
  return {
    async stop() {
      try {
        await Promise.all(
          watched.map(async ({ endpoint, text }) => {
            const end = marker('end-of-capture');
            await raw.server(endpoint).echo(end);
            await pollUntil(`MONITOR to report ECHO ${end}`, () => (text().includes(end) ? true : undefined));
          }),
        );
        return watched.map(({ text }) => text()).join('\n');
      } finally {
        for (const { end } of watched) end();
      }
    },
  };
}

/** Two sample nodes on one store, A on Express and B on Fastify, closed by `closeNodes`. */
type Nodes = [SampleNode, SampleNode];

function describeAtRest(name: string, setUp: () => Promise<SharedStore>): void {
  describe(`two sample nodes with SESSION_ENCRYPTION_KEYS on ${name}`, () => {
    let store: SharedStore;
    let a: SampleNode;
    let b: SampleNode;
    const started: SampleNode[] = [];

    /** Starts A and B on the store with `keys` (none: no SESSION_ENCRYPTION_KEYS at all). */
    const startNodes = async (keys: string[] | undefined): Promise<Nodes> => {
      const env = { ...store.env, ...(keys && { SESSION_ENCRYPTION_KEYS: keys.join(',') }) };
      const nodes = await Promise.all([startSampleNode(env, 'express'), startSampleNode(env, 'fastify')]);
      started.push(...nodes);
      return nodes;
    };

    /** Closes nodes as a rolling restart would, before their successors start. */
    const closeNodes = async (nodes: Nodes): Promise<void> => {
      for (const node of nodes) started.splice(started.indexOf(node), 1);
      await Promise.all(nodes.map((node) => node.close()));
    };

    beforeAll(async () => {
      store = await setUp();
      [a, b] = await startNodes([newKey()]);
    }, 60_000);

    afterAll(async () => {
      await Promise.all(started.splice(0).map((node) => node.close()));
      raw.closeAll();
      await store?.close();
    });

    it('keeps a session signed in on A signed in on B, with every pref written on either node', async () => {
      await shareSession(a, b);
    });

    it('keeps the session id, the user name and every pref value out of the store in the clear', async () => {
      // For Redis, the commands are read too: a value sent in the clear and sealed afterwards, or
      // a key named after the raw id and deleted again, leaves no trace in a dump but does here.
      const capture = store.masters ? await monitorRedis(await store.masters()) : undefined;

      const session = await shareSession(a, b);

      // The capture first: stopping it is what closes its sockets, whatever the dump does.
      const captured = capture ? [await capture.stop()] : [];
      const seen = [await store.dump(), ...captured];
      for (const text of seen) {
        // The session's hashed key is there: the dump (or capture) is of this session's store.
        expect(text).toContain(keyOf(session.cookie));
        for (const clear of clearTextsOf(session)) expect(text).not.toContain(clear);
      }
    });

    it('keeps the session id out of the store when the nodes run without keys', async () => {
      const plain = await startNodes(undefined);
      const capture = store.masters ? await monitorRedis(await store.masters()) : undefined;

      const { cookie, prefs } = await shareSession(...plain);

      // The capture first: stopping it is what closes its sockets, whatever the dump does.
      const captured = capture ? [await capture.stop()] : [];
      const seen = [await store.dump(), ...captured];
      for (const text of seen) {
        expect(text).toContain(keyOf(cookie));
        expect(text).not.toContain(idOf(cookie));
        // Without keys, values are stored as written: proof that the reads above would find one.
        expect(text).toContain(prefs.colour);
      }
      await closeNodes(plain);
    });

    it('keeps a session used during a key rotation signed in whole, and makes one left idle anonymous, never a 5xx', async () => {
      const [oldKey, newKey_] = [newKey(), newKey()];
      const before = await startNodes([oldKey]);
      const used = await shareSession(...before);
      const idle = await shareSession(...before);
      await closeNodes(before);

      // Mid-rotation: the new key seals, the old one still opens. A plain read of S1 writes it back.
      const during = await startNodes([newKey_, oldKey]);
      await withCookie(during[1].http().get('/profile'), used.cookie).expect(200, { userId: used.username });
      await closeNodes(during);

      const after = await startNodes([newKey_]);
      for (const node of after) {
        await withCookie(node.http().get('/profile'), used.cookie).expect(200, { userId: used.username });
        await withCookie(node.http().get('/session'), used.cookie).expect(200, {
          data: { userId: used.username, 'pref:colour': used.prefs.colour, 'pref:city': used.prefs.city },
        });
        // The per-user index moved with it: the user's listing, now under the new key, finds it.
        const listed = await withCookie(node.http().get('/auth/sessions'), used.cookie).expect(200);
        expect(listed.body).toEqual([expect.objectContaining({ id: keyOf(used.cookie), current: true })]);

        // S2 was never read under `new,old`: nothing opens it now, so it is no session at all.
        await withCookie(node.http().get('/profile'), idle.cookie).expect(401);
        await withCookie(node.http().get('/session'), idle.cookie).expect(200, { data: {} });
      }
      await closeNodes(after);
    });
  });
}

describeAtRest('a standalone Redis', async () => {
  const server = await startRedisServer();
  return {
    env: { SESSION_STORE: 'redis', REDIS_URL: server.url },
    dump: () => dumpRedis(raw.server(server)),
    masters: async () => [server],
    close: () => server.stop(),
  };
});

describeAtRest('Redis Sentinel', async () => {
  const topology = await startSentinelTopology();
  return {
    env: { SESSION_STORE: 'redis', REDIS_SENTINELS: endpointList(topology.sentinelEndpoints), REDIS_SENTINEL_NAME: topology.masterName },
    dump: async () => dumpRedis(raw.server(await topology.currentMaster())),
    masters: async () => [await topology.currentMaster()],
    close: () => topology.stop(),
  };
});

describeAtRest('Redis Cluster', async () => {
  const topology = await startClusterTopology();
  return {
    env: { SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: endpointList(topology.startupNodes) },
    // A Cluster client: the dump covers every master.
    dump: () => dumpRedis(raw.cluster(topology.startupNodes)),
    masters: () => topology.masters(),
    close: () => topology.stop(),
  };
});

describeAtRest('PostgreSQL', async () => {
  const server = await postgresForTests();
  const pool = new pg.Pool({ connectionString: server.url(), max: 2 });
  pool.on('error', () => undefined);
  return {
    env: { SESSION_STORE: 'postgres', DATABASE_URL: server.url() },
    // The sample creates its table (`sessions`) at start-up.
    dump: () => dumpPostgres(pool, 'sessions'),
    async close() {
      await pool.end();
      await server.dispose();
    },
  };
});

describeAtRest('one file store directory', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'nss-at-rest-'));
  return {
    env: { SESSION_STORE: 'file', SESSION_DIR: directory },
    dump: () => dumpDirectory(directory),
    close: () => rm(directory, { recursive: true, force: true }),
  };
});
