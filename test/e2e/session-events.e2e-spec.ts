import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionService } from '../../lib/index.js';
import type { SessionEvent, SessionEventType, SessionModuleOptions } from '../../lib/index.js';
import { cookieHeader, createFixtureApp, idOf, PLATFORMS, requireSid } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { startSampleNode, type SampleNode } from '../fixtures/redis-apps.js';
import { signIn, withCookie } from '../fixtures/two-nodes.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { startClusterTopology, startRedisServer, type ClusterTopology, type RedisServer } from '../support/redis-topology.js';

/**
 * Session events (`SessionService.on()`): what the pipeline and SessionService report, with
 * hashed ids and the user; and `expired`, which comes from each store's own mechanism and is
 * delivered once even when two nodes listen.
 */

const hashOf = (cookieOrId: string): string =>
  createHash('sha256')
    .update(cookieOrId.includes('.') ? idOf(cookieOrId) : cookieOrId)
    .digest('base64url');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const TYPES: SessionEventType[] = ['created', 'rotated', 'destroyed', 'expired', 'revoked'];

/** Records every event of every type a node emits. */
function record(service: SessionService): SessionEvent[] {
  const events: SessionEvent[] = [];
  for (const type of TYPES) service.on(type, (event) => events.push(event));
  return events;
}

/** Waits (a bounded while) until `condition` holds. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(50);
}

describe.each(PLATFORMS)('session events from the request pipeline and SessionService (%s)', (platform) => {
  let node: SampleNode;
  let events: SessionEvent[];
  const logged: string[] = [];

  beforeAll(async () => {
    node = await startSampleNode({ SESSION_STORE: 'memory', SESSION_MAX_PER_USER: '2' }, platform);
    events = record(node.app.get(SessionService));
  });

  afterAll(async () => {
    await node?.close();
  });

  const since = (start: number) => events.slice(start);

  it('reports "created" for a new session, with its hashed id and no user', async () => {
    const start = events.length;
    const cookie = requireSid(await node.http().post('/visits').expect(200));

    expect(since(start)).toEqual([{ type: 'created', sessionId: hashOf(cookie), userId: null, at: expect.any(Number) }]);
  });

  it('reports "rotated" on sign-in, from the old hashed id to the new one, with the user', async () => {
    const visitor = requireSid(await node.http().post('/visits').expect(200));
    const start = events.length;

    const cookie = requireSid(await withCookie(node.http().post('/auth/login'), visitor).send({ username: 'rita', password: 'demo' }).expect(200));

    expect(since(start)).toEqual([
      { type: 'rotated', sessionId: hashOf(cookie), previousSessionId: hashOf(visitor), userId: 'rita', at: expect.any(Number) },
    ]);
  });

  it('reports "destroyed" on logout, with the user the session had', async () => {
    const cookie = await signIn(node, 'dan');
    const start = events.length;

    await withCookie(node.http().post('/auth/logout'), cookie).expect(204);

    expect(since(start)).toEqual([{ type: 'destroyed', sessionId: hashOf(cookie), userId: 'dan', at: expect.any(Number) }]);
  });

  it('reports "revoked" for each session "log out everywhere else" ends, with the ids the listing shows', async () => {
    const phone = await signIn(node, 'rose');
    const laptop = await signIn(node, 'rose');
    const listed = (await withCookie(node.http().get('/auth/sessions'), laptop).expect(200)).body as Array<{ id: string; current: boolean }>;
    const start = events.length;

    await withCookie(node.http().delete('/auth/sessions'), laptop).expect(200, { revoked: 1 });

    const phoneListed = listed.find((s) => !s.current)!.id;
    expect(phoneListed).toBe(hashOf(phone));
    expect(since(start)).toEqual([{ type: 'revoked', sessionId: phoneListed, userId: 'rose', reason: 'revoked', at: expect.any(Number) }]);
  });

  it('reports "revoked" with reason "evicted" when a sign-in beyond the limit ends the oldest session', async () => {
    const oldest = await signIn(node, 'eve');
    await signIn(node, 'eve');
    const start = events.length;

    await signIn(node, 'eve');

    expect(since(start).filter((e) => e.type === 'revoked')).toEqual([
      { type: 'revoked', sessionId: hashOf(oldest), userId: 'eve', reason: 'evicted', at: expect.any(Number) },
    ]);
  });

  it('never shows a raw session id in an event', async () => {
    const cookie = await signIn(node, 'ray');
    await withCookie(node.http().post('/auth/logout'), cookie).expect(204);

    expect(JSON.stringify(events)).not.toContain(idOf(cookie));
  });

  it('keeps answering, and logs through the logger option, when a listener throws', async () => {
    const logger: LoggerService = { log: () => undefined, warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) };
    const app = await createFixtureApp({ logger }, { platform });
    try {
      app.moduleRef.get(SessionService).on('created', () => {
        throw new Error('listener broke');
      });

      await app.http().post('/set').send({ theme: 'dark' }).expect(200);

      expect(logged.some((line) => line.includes('"created" session event listener threw') && line.includes('listener broke'))).toBe(true);
    } finally {
      await app.close();
    }
  });
});

/** A store two nodes share, configured so expiries show within a second or two. */
interface SharedStore {
  store: SessionModuleOptions['store'];
  /** Memory is one process: its two "nodes" are one app. */
  singleNode?: boolean;
  stop(): Promise<void>;
}

const shared: Array<[string, () => Promise<SharedStore>]> = [
  ['memory', async () => ({ store: { type: 'memory', sweepInterval: 100 }, singleNode: true, stop: async () => undefined })],
  [
    'file',
    async () => {
      const directory = await mkdtemp(join(tmpdir(), 'nss-events-'));
      return { store: { type: 'file', directory, sweepInterval: 100 }, stop: () => rm(directory, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const server: PostgresServer = await postgresForTests();
      return { store: { type: 'postgres', connectionString: server.url(), createTable: true, sweepInterval: 100 }, stop: () => server.dispose() };
    },
  ],
  [
    'Redis (standalone)',
    async () => {
      const server: RedisServer = await startRedisServer();
      return { store: { type: 'redis', url: server.url, expiryEvents: true }, stop: () => server.stop() };
    },
  ],
  [
    'Redis (Cluster)',
    async () => {
      const topology: ClusterTopology = await startClusterTopology();
      return { store: { type: 'redis', cluster: topology.startupNodes, expiryEvents: true }, stop: () => topology.stop() };
    },
  ],
];

describe.each(shared)('"expired" events on the %s store', (_name, start) => {
  let backing: SharedStore;
  let a: FixtureApp;
  let b: FixtureApp;
  let fromA: SessionEvent[];
  let fromB: SessionEvent[];

  beforeAll(async () => {
    backing = await start();
    const options: Partial<SessionModuleOptions> = { store: backing.store, idleTimeout: 600, touchAfter: 100 };
    a = await createFixtureApp(options);
    b = backing.singleNode ? a : await createFixtureApp(options);
    fromA = [];
    fromB = [];
    a.moduleRef.get(SessionService).on('expired', (event) => fromA.push(event));
    if (b !== a) b.moduleRef.get(SessionService).on('expired', (event) => fromB.push(event));
    // Subscriptions (Redis) are made in the background: give them a moment.
    await sleep(300);
  }, 60_000);

  afterAll(async () => {
    for (const app of new Set([a, b])) await app?.close();
    await backing?.stop();
  });

  it('reports each expired session once across both listening nodes, with its hashed id and user', async () => {
    const signedIn = requireSid(await a.http().post('/login').send({ userId: 'xena' }).expect(200));
    const anonymous = requireSid(await b.http().post('/set').send({ theme: 'dark' }).expect(200));
    const ids = [hashOf(signedIn), hashOf(anonymous)];
    const about = () => [...fromA, ...fromB].filter((e) => ids.includes(e.sessionId));

    await until(() => about().length >= 2);
    // Any second delivery of the same expiry would arrive within this window.
    await sleep(1_000);

    expect(about().sort((x, y) => x.sessionId.localeCompare(y.sessionId))).toEqual(
      [
        { type: 'expired', sessionId: hashOf(signedIn), userId: 'xena', at: expect.any(Number) },
        { type: 'expired', sessionId: hashOf(anonymous), userId: null, at: expect.any(Number) },
      ].sort((x, y) => x.sessionId.localeCompare(y.sessionId)),
    );
    await a.http().get('/me').set('Cookie', cookieHeader(signedIn)).expect(200, { userId: null });
  }, 30_000);

  it('does not report a session that was logged out, or kept alive by use', async () => {
    const loggedOut = requireSid(await a.http().post('/login').send({ userId: 'yan' }).expect(200));
    const kept = requireSid(await b.http().post('/login').send({ userId: 'zoe' }).expect(200));
    await a.http().post('/logout').set('Cookie', cookieHeader(loggedOut)).expect(204);
    const ids = [hashOf(loggedOut), hashOf(kept)];

    // Used every 200 ms for well past its idle timeout, alternating nodes: it never expires.
    for (let i = 0; i < 8; i++) {
      await sleep(200);
      await (i % 2 ? a : b).http().get('/read').set('Cookie', cookieHeader(kept)).expect(200);
    }

    expect([...fromA, ...fromB].filter((e) => ids.includes(e.sessionId))).toEqual([]);
  }, 30_000);
});
