import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { keyOf, requireSid } from '../fixtures/cookies.js';
import { expectConcurrentFieldWritesKept, expectLogoutToWinRaceWithWrites, expectUserSessionsListedOnBoth } from '../fixtures/two-nodes.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { compileOnce, startSampleProcess, stopAllSampleProcesses, type SampleProcess } from '../support/sample-process.js';

/**
 * The sample application (SPEC §4) as TWO OS PROCESSES sharing one store, driven over real HTTP:
 * what a client does on one process is seen on the other (§3.1), concurrent writes to different
 * fields spread over both all survive (§3.2), a logout on one racing writes on the other stays a
 * logout (§3.8), and the per-user index answers from either process. First on PostgreSQL, then
 * the same checks on the file store (one directory shared by the processes of one host). Last,
 * the cookie store, which shares nothing but the secret: each session travels in its cookie.
 * Process A runs on Express and B on Fastify (HTTP_ADAPTER), as a fleet does halfway through a
 * move from one platform to the other: every check crosses the platforms.
 *
 * The sample is compiled once for this file into `.test-build/<random>/` (no prior build needed).
 */

/** One secret for every process, as a real deployment shares it. */
const SECRET = 'multiprocess-e2e-secret-0123456789abcdefgh';

/** Starts process A (on Express) and B (on Fastify) with one environment. */
const startPair = (env: Record<string, string>): Promise<SampleProcess[]> =>
  Promise.all([startSampleProcess({ ...env, HTTP_ADAPTER: 'express' }), startSampleProcess({ ...env, HTTP_ADAPTER: 'fastify' })]);

/** What a store-specific setup gives the shared checks. */
interface SharedStore {
  /** The sample's environment for this store (SESSION_STORE and its connection variables). */
  env: Record<string, string>;
  /** Whether anything of the session `id`, or of any session owned by `userId`, is still stored. */
  leftovers(id: string, userId: string): Promise<string[]>;
  close(): Promise<void>;
}

beforeAll(async () => {
  // Once for the whole file, before any store starts: the compile is the slow part.
  await compileOnce();
}, 120_000);

afterAll(async () => {
  await stopAllSampleProcesses();
});

function describeTwoProcesses(name: string, setUp: () => Promise<SharedStore>): void {
  describe(`two sample processes, on Express and on Fastify, sharing ${name}`, () => {
    let store: SharedStore;
    let a: SampleProcess;
    let b: SampleProcess;

    beforeAll(async () => {
      store = await setUp();
      const env = { ...store.env, SESSION_SECRET: SECRET };
      [a, b] = await startPair(env);
    }, 60_000);

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store?.close();
    });

    const login = async (node: SampleProcess, username: string): Promise<string> =>
      requireSid(await node.http().post('/auth/login').send({ username, password: 'demo' }).expect(200));

    const withSid = <T extends { set(name: string, value: string): T }>(req: T, cookie: string): T =>
      req.set('Cookie', `sid=${encodeURIComponent(cookie)}`);

    it('runs as two processes, each answering on its own port, on the platform HTTP_ADAPTER names', async () => {
      expect(a.pid).not.toBe(b.pid);
      expect(a.port).not.toBe(b.port);
      const [onA, onB] = [await a.http().get('/health').expect(200), await b.http().get('/health').expect(200)];
      // Express names itself in X-Powered-By; Fastify sends no such header.
      expect(onA.headers['x-powered-by']).toBe('Express');
      expect(onB.headers['x-powered-by']).toBeUndefined();
    });

    it('keeps a session signed in on A signed in on B', async () => {
      const cookie = await login(a, 'alice');

      await withSid(b.http().get('/profile'), cookie).expect(200, { userId: 'alice' });
    });

    it('keeps all 50 concurrent writes to different fields of one session, alternating between A and B', async () => {
      await expectConcurrentFieldWritesKept(a, b);
    });

    it('keeps a session dead on both when a logout on A races writes on B, leaving nothing stored', async () => {
      for (let round = 0; round < 5; round++) {
        const user = `racer-${round}`;
        const cookie = await expectLogoutToWinRaceWithWrites(a, b, user);
        expect(await store.leftovers(keyOf(cookie), user)).toEqual([]);
      }
    });

    it('lists on B the session signed in on A, and both of a user’s sessions from either process', async () => {
      await expectUserSessionsListedOnBoth(a, b, 'erin');
    });
  });
}

describeTwoProcesses('PostgreSQL', async () => {
  const server: PostgresServer = await postgresForTests();
  const pool = new pg.Pool({ connectionString: server.url(), max: 2 });
  pool.on('error', () => undefined);
  return {
    env: { SESSION_STORE: 'postgres', DATABASE_URL: server.url() },
    async leftovers(id, userId) {
      const { rows } = await pool.query<{ id: string }>(`SELECT id FROM sessions WHERE id = $1 OR user_id = $2`, [id, userId]);
      return rows.map((row) => `row ${row.id}`);
    },
    async close() {
      await pool.end();
      await server.dispose();
    },
  };
});

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

describeTwoProcesses('one file store directory', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'nss-multiprocess-'));
  return {
    env: { SESSION_STORE: 'file', SESSION_DIR: directory },
    // The file store's layout: sessions/<aa>/<bb>/<id>.json, and users/<sha256 of user>/<id> markers.
    async leftovers(id, userId) {
      const hash = sha256(id);
      const file = join(directory, 'sessions', hash.slice(0, 2), hash.slice(2, 4), `${id}.json`);
      const found = (await exists(file)) ? [file] : [];
      const markers = await readdir(join(directory, 'users', sha256(userId))).catch(() => []);
      return [...found, ...markers.map((marker) => `marker ${marker}`)];
    },
    async close() {
      await rm(directory, { recursive: true, force: true });
    },
  };
});

describe('two sample processes, on Express and on Fastify, with SESSION_STORE=cookie (sharing only the secret)', () => {
  let a: SampleProcess;
  let b: SampleProcess;
  const send = <T extends { set(name: string, value: string): T }>(req: T, cookie: string): T =>
    req.set('Cookie', `sid=${encodeURIComponent(cookie)}`);

  beforeAll(async () => {
    const env = { SESSION_STORE: 'cookie', SESSION_SECRET: SECRET };
    [a, b] = await startPair(env);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('signs in on A and serves the profile, the visits and the prefs on B, each response carrying the session on', async () => {
    let cookie = requireSid(await a.http().post('/auth/login').send({ username: 'carol', password: 'demo' }).expect(200));
    await send(b.http().get('/profile'), cookie).expect(200, { userId: 'carol' });

    const visit = await send(b.http().post('/visits'), cookie).expect(200, { visits: 1 });
    cookie = requireSid(visit);
    const pref = await send(a.http().put('/prefs/theme'), cookie).send({ value: 'dark' }).expect(200);
    cookie = requireSid(pref);

    await send(b.http().get('/session'), cookie).expect(200, { data: { userId: 'carol', visits: 1, 'pref:theme': 'dark' } });
  });

  it('clears the cookie on logout, and answers 501 to listing a user’s sessions, which a cookie store cannot do', async () => {
    const cookie = requireSid(await a.http().post('/auth/login').send({ username: 'dave', password: 'demo' }).expect(200));

    const listing = await send(b.http().get('/auth/sessions'), cookie).expect(501);
    expect(listing.body).toMatchObject({ code: 'SESSION_STORE_UNSUPPORTED', message: expect.stringContaining('cookie') });
    const logout = await send(b.http().post('/auth/logout'), cookie).expect(204);
    expect(String(logout.headers['set-cookie'])).toMatch(/^sid=;.*Expires=Thu, 01 Jan 1970/);
  });

  it('keeps sessions through a secret rotation: B with "new,old" opens A\'s cookie and reseals it under the new secret', async () => {
    const rotated = await startSampleProcess({ SESSION_STORE: 'cookie', SESSION_SECRET: `rotated-secret-abcdefghijklmnopqrstuvwxyz0123,${SECRET}` });
    const onlyNew = await startSampleProcess({ SESSION_STORE: 'cookie', SESSION_SECRET: 'rotated-secret-abcdefghijklmnopqrstuvwxyz0123' });
    try {
      const old = requireSid(await a.http().post('/auth/login').send({ username: 'erin', password: 'demo' }).expect(200));
      await send(onlyNew.http().get('/profile'), old).expect(401);

      const resealed = requireSid(await send(rotated.http().get('/profile'), old).expect(200, { userId: 'erin' }));

      expect(resealed).not.toBe(old);
      await send(onlyNew.http().get('/profile'), resealed).expect(200, { userId: 'erin' });
    } finally {
      await Promise.all([rotated.stop(), onlyNew.stop()]);
    }
  }, 60_000);
});

describe('the sample process given a platform it does not know', () => {
  it('refuses to start, naming HTTP_ADAPTER, the value and the platforms it takes', async () => {
    await expect(startSampleProcess({ SESSION_STORE: 'memory', SESSION_SECRET: SECRET, HTTP_ADAPTER: 'koa' })).rejects.toThrow(
      /HTTP_ADAPTER must be one of express, fastify \(got "koa"\)/,
    );
  });
});
