import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionService } from '../../lib/index.js';
import { idOf, requireSid, setCookieLine } from '../fixtures/cookies.js';
import { startSampleNode, type SampleNode } from '../fixtures/redis-apps.js';
import { signIn, withCookie } from '../fixtures/two-nodes.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { startClusterTopology, startRedisServer, type ClusterTopology, type RedisServer } from '../support/redis-topology.js';
import { PLATFORMS } from '../fixtures/platforms.js';

/**
 * Session management through the sample application (SPEC §4) on every server-side store, with
 * two nodes sharing the store (memory: one node, which is all it can serve): listing a user's
 * sessions, "log out everywhere else", revoking one session, and `SESSION_MAX_PER_USER` with
 * both `onMaxSessions` policies, racing sign-ins on both nodes included.
 */

/** A store the sample can run on: its environment, and how to release it. */
interface Backing {
  env: Record<string, string>;
  /** Memory sessions live in one process: its "two nodes" are one. */
  singleNode?: boolean;
  stop(): Promise<void>;
}

type UserSession = { id: string; createdAt: string; lastSeenAt: string; current: boolean; userAgent?: string; ip?: string };

const LIMIT = 2;
const RACERS = 6;
let users = 0;
const newUser = (): string => `user${++users}-${Date.now().toString(36)}`;
const hashOf = (cookie: string): string => createHash('sha256').update(idOf(cookie)).digest('base64url');

const backings: Array<[string, () => Promise<Backing>]> = [
  ['memory', async () => ({ env: { SESSION_STORE: 'memory' }, singleNode: true, stop: async () => undefined })],
  [
    'file',
    async () => {
      const directory = await mkdtemp(join(tmpdir(), 'nss-management-'));
      return { env: { SESSION_STORE: 'file', SESSION_DIR: directory }, stop: () => rm(directory, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const server: PostgresServer = await postgresForTests();
      return { env: { SESSION_STORE: 'postgres', DATABASE_URL: server.url() }, stop: () => server.dispose() };
    },
  ],
  [
    'Redis (standalone)',
    async () => {
      const server: RedisServer = await startRedisServer();
      return { env: { SESSION_STORE: 'redis', REDIS_URL: server.url }, stop: () => server.stop() };
    },
  ],
  [
    'Redis (Cluster)',
    async () => {
      const topology: ClusterTopology = await startClusterTopology();
      const nodes = topology.startupNodes.map(({ host, port }) => `${host}:${port}`).join(',');
      return { env: { SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: nodes }, stop: () => topology.stop() };
    },
  ],
];

describe.each(PLATFORMS)('on %s', (platform) => {
  describe.each(backings)('session management on the %s store', (_name, start) => {
    let backing: Backing;
    /** Two nodes with SESSION_MAX_PER_USER=2 (evict the oldest) and SESSION_RECORD_CLIENT=true. */
    let a: SampleNode;
    let b: SampleNode;
    /** Two nodes with SESSION_MAX_PER_USER=2 and SESSION_ON_MAX_SESSIONS=reject. */
    let strictA: SampleNode;
    let strictB: SampleNode;

    beforeAll(async () => {
      backing = await start();
      const evicting = { ...backing.env, SESSION_MAX_PER_USER: String(LIMIT), SESSION_RECORD_CLIENT: 'true' };
      const rejecting = { ...backing.env, SESSION_MAX_PER_USER: String(LIMIT), SESSION_ON_MAX_SESSIONS: 'reject' };
      a = await startSampleNode(evicting, platform);
      b = backing.singleNode ? a : await startSampleNode(evicting, platform);
      strictA = await startSampleNode(rejecting, platform);
      strictB = backing.singleNode ? strictA : await startSampleNode(rejecting, platform);
    }, 60_000);

    afterAll(async () => {
      for (const node of new Set([a, b, strictA, strictB])) await node?.close();
      await backing?.stop();
    });

    const list = async (node: SampleNode, cookie: string): Promise<UserSession[]> =>
      (await withCookie(node.http().get('/auth/sessions'), cookie).expect(200)).body as UserSession[];
    const profileStatus = async (node: SampleNode, cookie: string): Promise<number> => (await withCookie(node.http().get('/profile'), cookie)).status;
    const signInFrom = async (node: SampleNode, username: string, device: string): Promise<string> =>
      requireSid(await node.http().post('/auth/login').set('User-Agent', device).send({ username, password: 'demo' }).expect(200));

    describe('listing and revoking', () => {
      it("lists a user's two devices on either node, each marking its own session current, with the client that signed it in", async () => {
        const user = newUser();
        const phone = await signInFrom(a, user, 'Phone/1.0');
        const laptop = await signInFrom(b, user, 'Laptop/2.0');

        for (const [node, cookie, device] of [
          [a, laptop, 'Laptop/2.0'],
          [b, phone, 'Phone/1.0'],
        ] as const) {
          const sessions = await list(node, cookie);
          expect(sessions.map((s) => s.id)).toEqual([hashOf(phone), hashOf(laptop)]);
          expect(sessions.filter((s) => s.current).map((s) => s.userAgent)).toEqual([device]);
          for (const session of sessions) {
            expect(session).toEqual({
              id: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
              createdAt: expect.any(String),
              lastSeenAt: expect.any(String),
              current: expect.any(Boolean),
              userAgent: expect.stringMatching(/^(Phone\/1\.0|Laptop\/2\.0)$/),
              ip: expect.any(String),
            });
          }
        }
      });

      it('logs the other device out everywhere: it gets 401 on both nodes, the device that asked stays signed in', async () => {
        const user = newUser();
        const phone = await signIn(a, user);
        const laptop = await signIn(b, user);

        const res = await withCookie(b.http().delete('/auth/sessions'), laptop).expect(200);

        expect(res.body).toEqual({ revoked: 1 });
        expect(await profileStatus(a, phone)).toBe(401);
        expect(await profileStatus(b, phone)).toBe(401);
        expect(await profileStatus(a, laptop)).toBe(200);
        expect((await list(a, laptop)).map((s) => s.id)).toEqual([hashOf(laptop)]);
      });

      it("revokes one session by the id the listing shows; an id that is not one of the user's sessions answers 404 and revokes nothing", async () => {
        const user = newUser();
        const phone = await signIn(a, user);
        const laptop = await signIn(b, user);
        const stranger = await signIn(a, newUser());

        await withCookie(a.http().delete(`/auth/sessions/${hashOf(stranger)}`), laptop).expect(404);
        await withCookie(a.http().delete('/auth/sessions/not-a-session'), laptop).expect(404);
        const res = await withCookie(a.http().delete(`/auth/sessions/${hashOf(phone)}`), laptop).expect(200);

        expect(res.body).toEqual({ revoked: 1 });
        expect(await profileStatus(b, phone)).toBe(401);
        expect(await profileStatus(b, laptop)).toBe(200);
        expect(await profileStatus(b, stranger)).toBe(200);
      });

      it("counts a user's sessions and revokes them all through SessionService, from either node", async () => {
        const user = newUser();
        const cookies = [await signIn(a, user), await signIn(b, user)];

        await expect(b.app.get(SessionService).count(user)).resolves.toBe(2);
        await expect(a.app.get(SessionService).revokeAll(user)).resolves.toEqual({ revoked: 2 });

        for (const cookie of cookies) expect(await profileStatus(b, cookie)).toBe(401);
        await expect(b.app.get(SessionService).count(user)).resolves.toBe(0);
      });
    });

    describe(`at most ${LIMIT} sessions per user, evicting the oldest`, () => {
      it('ends the oldest session when a third sign-in comes: it gets 401 on both nodes, the two newest stay', async () => {
        const user = newUser();
        const first = await signIn(a, user);
        const second = await signIn(b, user);
        const third = await signIn(a, user);

        expect(await profileStatus(a, first)).toBe(401);
        expect(await profileStatus(b, first)).toBe(401);
        for (const cookie of [second, third]) expect(await profileStatus(b, cookie)).toBe(200);
        expect((await list(b, third)).map((s) => s.id)).toEqual([hashOf(second), hashOf(third)]);
      });

      it(`keeps exactly ${LIMIT} sessions when ${RACERS} sign-ins of one user race on both nodes`, async () => {
        const user = newUser();
        await signIn(a, user);

        const cookies = await Promise.all(Array.from({ length: RACERS }, (_, i) => signIn(i % 2 === 0 ? a : b, user)));

        const alive: string[] = [];
        for (const [i, cookie] of cookies.entries()) {
          // Each racer is asked about on the node it did not sign in on.
          if ((await profileStatus(i % 2 === 0 ? b : a, cookie)) === 200) alive.push(cookie);
        }
        expect(alive).toHaveLength(LIMIT);
        expect((await list(a, alive[0])).map((s) => s.id).sort()).toEqual(alive.map(hashOf).sort());
      });
    });

    describe(`at most ${LIMIT} sessions per user, rejecting more`, () => {
      it('answers a third sign-in with 409 SESSION_LIMIT_REACHED, writing nothing: the client keeps the session it had', async () => {
        const user = newUser();
        const first = await signIn(strictA, user);
        await signIn(strictB, user);
        const visitor = requireSid(await strictA.http().post('/visits').expect(200));

        const refused = await withCookie(strictB.http().post('/auth/login'), visitor).send({ username: user, password: 'demo' });

        expect(refused.status).toBe(409);
        expect(refused.body).toMatchObject({
          statusCode: 409,
          code: 'SESSION_LIMIT_REACHED',
          message: expect.stringContaining(`${LIMIT} active sessions`),
        });
        expect(setCookieLine(refused)).toBeUndefined();
        const kept = await withCookie(strictA.http().get('/session'), visitor).expect(200);
        expect(kept.body).toEqual({ data: { visits: 1 } });
        expect((await list(strictA, first)).length).toBe(LIMIT);
      });

      it(`admits exactly ${LIMIT} of ${RACERS} sign-ins of one user racing on both nodes, and refuses the rest with 409`, async () => {
        const user = newUser();

        const responses = await Promise.all(
          Array.from({ length: RACERS }, (_, i) =>
            (i % 2 === 0 ? strictA : strictB).http().post('/auth/login').send({ username: user, password: 'demo' }),
          ),
        );

        const statuses = responses.map((res) => res.status).sort();
        expect(statuses).toEqual([...Array(LIMIT).fill(200), ...Array(RACERS - LIMIT).fill(409)]);
        const admitted = responses.filter((res) => res.status === 200).map((res) => requireSid(res));
        for (const cookie of admitted) expect(await profileStatus(strictB, cookie)).toBe(200);
        expect((await list(strictA, admitted[0])).map((s) => s.id).sort()).toEqual(admitted.map(hashOf).sort());
      });
    });
  });
});
