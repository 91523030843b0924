import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionService, SessionUserIdInvalidError } from '../../lib/index.js';
import { requireSid, setCookieLine } from '../fixtures/cookies.js';
import { startSampleNode, type SampleNode } from '../fixtures/redis-apps.js';
import { withCookie } from '../fixtures/two-nodes.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { startClusterTopology, startRedisServer, type ClusterTopology, type RedisServer } from '../support/redis-topology.js';

/**
 * SPEC §3.12 over HTTP, through the sample application on every store: a user id no store can
 * keep exactly is refused with 400 SESSION_USER_ID_INVALID, at sign-in and through
 * SessionService, so it never shares an index, a lock or a revocation with the one a lossy
 * encoding makes of it. The finding this guards: in UTF-8, `"q\udfff"` (an unpaired surrogate) is
 * written as `"q\uFFFD"`, so on Redis `"q\udfff"` signing out everywhere else revoked both
 * sessions of `"q\uFFFD"`, and on the file store it pruned that user's index.
 */

/** A store the sample can run on: its environment, and how to release it. */
interface Backing {
  env: Record<string, string>;
  /** False for the cookie store, which cannot list a user's sessions. */
  lists: boolean;
  stop(): Promise<void>;
}

const backings: Array<[string, () => Promise<Backing>]> = [
  ['memory', async () => ({ env: { SESSION_STORE: 'memory' }, lists: true, stop: async () => undefined })],
  ['cookie', async () => ({ env: { SESSION_STORE: 'cookie' }, lists: false, stop: async () => undefined })],
  [
    'file',
    async () => {
      const directory = await mkdtemp(join(tmpdir(), 'nss-user-ids-'));
      return { env: { SESSION_STORE: 'file', SESSION_DIR: directory }, lists: true, stop: () => rm(directory, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const server: PostgresServer = await postgresForTests();
      return { env: { SESSION_STORE: 'postgres', DATABASE_URL: server.url() }, lists: true, stop: () => server.dispose() };
    },
  ],
  [
    'Redis (standalone)',
    async () => {
      const server: RedisServer = await startRedisServer();
      return { env: { SESSION_STORE: 'redis', REDIS_URL: server.url }, lists: true, stop: () => server.stop() };
    },
  ],
  [
    'Redis (Cluster)',
    async () => {
      const topology: ClusterTopology = await startClusterTopology();
      const nodes = topology.startupNodes.map(({ host, port }) => `${host}:${port}`).join(',');
      return { env: { SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: nodes }, lists: true, stop: () => topology.stop() };
    },
  ],
];

let users = 0;
/** A fresh user name: the ids below differ from it only in their last character. */
const newUser = (): string => `q${++users}-${Date.now().toString(36)}`;

describe.each(backings)('user ids on the %s store', (_name, start) => {
  let backing: Backing;
  let node: SampleNode;

  beforeAll(async () => {
    backing = await start();
    node = await startSampleNode(backing.env);
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await backing?.stop();
  });

  const signIn = (username: string) => node.http().post('/auth/login').send({ username, password: 'demo' });
  /** Signs `username` in twice, as on two devices, and returns both cookies. */
  const twoDevices = async (username: string): Promise<string[]> => [
    requireSid(await signIn(username).expect(200)),
    requireSid(await signIn(username).expect(200)),
  ];

  /** Both sessions of `username` are still signed in, and (where the store lists) listed as that user's two. */
  async function expectUntouched(username: string, cookies: string[]): Promise<void> {
    for (const cookie of cookies) await withCookie(node.http().get('/profile'), cookie).expect(200, { userId: username });
    if (backing.lists) {
      const listed = await withCookie(node.http().get('/auth/sessions'), cookies[0]).expect(200);
      expect(listed.body).toHaveLength(2);
    }
  }

  it('refuses to sign in "q\\udfff" with 400 SESSION_USER_ID_INVALID, setting no cookie, and "q\\uFFFD" keeps both its sessions', async () => {
    const base = newUser();
    const lookalike = `${base}\uFFFD`;
    const cookies = await twoDevices(lookalike);

    const refused = await signIn(`${base}\udfff`);

    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      statusCode: 400,
      code: 'SESSION_USER_ID_INVALID',
      message: expect.stringContaining('an unpaired UTF-16 surrogate (U+DFFF)'),
    });
    expect(setCookieLine(refused)).toBeUndefined();
    await expectUntouched(lookalike, cookies);
  });

  it('refuses to sign in a user id holding a NUL with 400 SESSION_USER_ID_INVALID, and the user id without it keeps its sessions', async () => {
    const base = newUser();
    const cookies = await twoDevices(base);

    const refused = await signIn(`${base}\u0000`);

    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'SESSION_USER_ID_INVALID', message: expect.stringContaining('a NUL character') });
    expect(setCookieLine(refused)).toBeUndefined();
    await expectUntouched(base, cookies);
  });

  it('refuses every SessionService call naming "q\\udfff" with a 400: none lists or revokes the sessions of "q\\uFFFD"', async () => {
    const base = newUser();
    const lookalike = `${base}\uFFFD`;
    const unkeepable = `${base}\udfff`;
    const cookies = await twoDevices(lookalike);
    const service = node.app.get(SessionService);

    const calls = [
      () => service.revokeOthers(unkeepable, 'not-a-session'),
      () => service.revokeAll(unkeepable),
      () => service.revoke(unkeepable, 'not-a-session'),
      () => service.list(unkeepable),
      () => service.count(unkeepable),
    ];
    for (const call of calls) {
      const error = await call().then(
        (value) => value,
        (rejection: unknown) => rejection,
      );
      expect(error).toBeInstanceOf(SessionUserIdInvalidError);
      expect((error as SessionUserIdInvalidError).getStatus()).toBe(400);
    }

    await expectUntouched(lookalike, cookies);
  });
});
