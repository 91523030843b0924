import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MAX_SESSION_FIELDS } from '../../lib/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import { cookieHeader, createFixtureApp, dataOf, keyOf, requireSid, setCookieLine, type FixtureApp } from '../fixtures/index.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { startClusterTopology, startRedisServer, type ClusterTopology, type RedisServer } from '../support/redis-topology.js';

/**
 * SPEC §3.13 over HTTP on every server-side store: a session holds at most MAX_SESSION_FIELDS
 * top-level fields, and a request that would grow it past them is bad input, refused with 413
 * SESSION_TOO_MANY_FIELDS before anything is written, never a 5xx. The finding this guards: on
 * Redis, a session of about 4,000 fields ran past what Lua's unpack() returns, and the failed
 * script answered 503 as if Redis were down. (The cookie store's 4096-byte cookie refuses far
 * fewer fields, with 413 SESSION_TOO_LARGE: see its conformance run.)
 */

/** A store config for the fixture app, and how to release what it runs on. */
interface Backing {
  store: SessionModuleOptions['store'];
  stop(): Promise<void>;
}

const backings: Array<[string, () => Promise<Backing>]> = [
  ['memory', async () => ({ store: { type: 'memory' }, stop: async () => undefined })],
  [
    'file',
    async () => {
      const directory = await mkdtemp(join(tmpdir(), 'nss-field-limit-'));
      return { store: { type: 'file', directory }, stop: () => rm(directory, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const server: PostgresServer = await postgresForTests();
      return { store: { type: 'postgres', connectionString: server.url(), createTable: true }, stop: () => server.dispose() };
    },
  ],
  [
    'Redis (standalone)',
    async () => {
      const server: RedisServer = await startRedisServer();
      return { store: { type: 'redis', url: server.url }, stop: () => server.stop() };
    },
  ],
  [
    'Redis (Cluster)',
    async () => {
      const topology: ClusterTopology = await startClusterTopology();
      return { store: { type: 'redis', cluster: topology.startupNodes }, stop: () => topology.stop() };
    },
  ],
];

/** `count` fields `f0`, `f1`…, each with its own value: what a JSON body copied into the session makes. */
const manyFields = (count: number): Record<string, number> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`f${i}`, i]));

const TOO_MANY = {
  statusCode: 413,
  code: 'SESSION_TOO_MANY_FIELDS',
  message: expect.stringContaining(`limit of ${MAX_SESSION_FIELDS} top-level fields`),
};

describe.each(backings)('at most MAX_SESSION_FIELDS fields per session on the %s store', (_name, start) => {
  let backing: Backing;
  let app: FixtureApp;

  beforeAll(async () => {
    backing = await start();
    app = await createFixtureApp({ store: backing.store });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await backing?.stop();
  });

  const post = (path: string, cookie?: string) => {
    const req = app.http().post(path);
    return cookie === undefined ? req : req.set('Cookie', cookieHeader(cookie));
  };

  it('refuses 4,000 fields written in one request with 413 SESSION_TOO_MANY_FIELDS, writing nothing, and the store keeps serving', async () => {
    const visitor = requireSid(await post('/set').send({ visits: 1 }).expect(200));

    const grown = await post('/set', visitor).send(manyFields(4_000));
    const created = await post('/set').send(manyFields(4_000));

    for (const refused of [grown, created]) {
      expect(refused.status).toBe(413);
      expect(refused.body).toMatchObject(TOO_MANY);
      expect(setCookieLine(refused)).toBeUndefined();
    }
    expect(await dataOf(app, visitor)).toEqual({ visits: 1 });
    const later = requireSid(await post('/set').send({ after: true }).expect(200));
    expect(await dataOf(app, later)).toEqual({ after: true });
  });

  it('takes a session to exactly MAX_SESSION_FIELDS fields in one request and reads it back whole; one field more is refused, changing one is not', async () => {
    const fields = manyFields(MAX_SESSION_FIELDS);

    const cookie = requireSid(await post('/set').send(fields).expect(200));

    expect(await dataOf(app, cookie)).toEqual(fields);
    const refused = await post('/field/extra/1', cookie);
    expect(refused.status).toBe(413);
    expect(refused.body).toMatchObject(TOO_MANY);
    await post('/field/f0/changed', cookie).expect(200);
    expect(await dataOf(app, cookie)).toEqual({ ...fields, f0: 'changed' });
  });

  it('lets a session already over the limit (stored by a version without it) be read and changed, but not grown', async () => {
    const fields = manyFields(MAX_SESSION_FIELDS);
    const cookie = requireSid(await post('/set').send(fields).expect(200));
    const stored = (await app.store.get(keyOf(cookie)))!;
    await app.store.commit(stored.id, { set: { overflow: true }, unset: [], expiresAt: stored.expiresAt, lastSeenAt: Date.now() });

    await post('/field/f1/changed', cookie).expect(200);
    const refused = await post('/field/another/1', cookie);

    expect(refused.status).toBe(413);
    expect(await dataOf(app, cookie)).toEqual({ ...fields, overflow: true, f1: 'changed' });
  });
});
