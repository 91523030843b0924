import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createFixtureApp, PLATFORMS, requireSid, setCookieLine } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { pollUntil, sleep, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { startPostgresServer } from '../support/postgres-server.js';
import type { PostgresServer } from '../support/postgres-server.js';

/**
 * SPEC §3.7 on a real PostgreSQL that goes away and comes back: requests that need the session
 * fail fast with a 503 JSON answer, routes that do not keep working, the process stays up, and
 * once the server is back the very same sessions work again (PostgreSQL kept them), without
 * restarting the application. First a clean shutdown (`stop()`), then a crash (`kill()`).
 *
 * The tests run in order against one server this file owns.
 */

/** A request that takes longer than this counts as a hang and fails the test. */
const HANG = 5_000;
/** How long the server may take to be usable again after a restart. */
const RECOVERY = 15_000;

const UNAVAILABLE = {
  statusCode: 503,
  code: 'SESSION_STORE_UNAVAILABLE',
  message: expect.stringMatching(/session store \(postgres\)/i),
};

describe.each(PLATFORMS)('a PostgreSQL outage and recovery (SPEC §3.7) (%s)', (platform) => {
  let server: PostgresServer;
  let app: FixtureApp;
  let sample: SampleNode;
  /** A session created on the fixture app while PostgreSQL was up. */
  let cookie: string;
  /** A session signed in on the sample while PostgreSQL was up. */
  let signedIn: string;

  beforeAll(async () => {
    server = await startPostgresServer();
    app = await createFixtureApp(
      {
        store: { type: 'postgres', connectionString: server.url(), createTable: true, queryTimeout: 500 },
        storeTimeout: 1_500,
      },
      { platform },
    );
    sample = await startSampleNode({ SESSION_STORE: 'postgres', DATABASE_URL: server.url() }, platform);
  });

  afterAll(async () => {
    await app?.close();
    await sample?.close();
    await server?.dispose();
  });

  /** The session reads back with its data: it survived, and the app reaches the store again. */
  const readsBack = (expected: Record<string, unknown>) =>
    pollUntil(
      'the same session to be readable again',
      async () => {
        const res = await withSid(app.http().get('/read'), cookie).timeout(HANG);
        return res.status === 200 ? res : undefined;
      },
      { timeoutMs: RECOVERY, intervalMs: 200 },
    ).then((res) => expect(res.body).toEqual({ data: expected, isNew: false }));

  const sampleRecovers = () =>
    pollUntil(
      'the sample to report a healthy store',
      async () => ((await sample.http().get('/health').timeout(HANG)).status === 200 ? true : undefined),
      { timeoutMs: RECOVERY, intervalMs: 200 },
    );

  /** What every outage must look like from the outside. */
  async function expectOutageHandled(): Promise<void> {
    const read = await withSid(app.http().get('/read'), cookie).timeout(HANG);
    expect(read.status).toBe(503);
    expect(read.headers['content-type']).toMatch(/application\/json/);
    expect(read.body).toMatchObject(UNAVAILABLE);

    const guarded = await withSid(app.http().get('/guarded'), cookie).timeout(HANG);
    expect(guarded.status).toBe(503);
    expect(guarded.body).toMatchObject(UNAVAILABLE);

    const write = await withSid(app.http().post('/set'), cookie).send({ color: 'red' }).timeout(HANG);
    expect(write.status).toBe(503);
    expect(setCookieLine(write)).toBeUndefined();

    await withSid(app.http().get('/ping'), cookie).timeout(HANG).expect(200, { pong: true });

    const health = await sample.http().get('/health').timeout(HANG);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'error', error: { session: { status: 'down', store: 'postgres' } } });
    const profile = await withSid(sample.http().get('/profile'), signedIn).timeout(HANG);
    expect(profile.status).toBe(503);

    // Idle pool connections that the server dropped report errors for a while: still up.
    await sleep(1_000);
    await app.http().get('/ping').timeout(HANG).expect(200, { pong: true });
    await sample.http().get('/health').timeout(HANG).expect(503);
  }

  it('works while PostgreSQL is up', async () => {
    cookie = requireSid(await app.http().post('/set').send({ color: 'blue' }).expect(200));

    const res = await withSid(app.http().get('/read'), cookie).expect(200);

    expect(res.body).toEqual({ data: { color: 'blue' }, isNew: false });
    expect((await sample.http().get('/health').expect(200)).body).toMatchObject({
      status: 'ok',
      info: { session: { status: 'up', store: 'postgres' } },
    });
    signedIn = requireSid(await sample.http().post('/auth/login').send({ username: 'early', password: 'demo' }).expect(200));
    await withSid(sample.http().get('/profile'), signedIn).expect(200, { userId: 'early' });
  });

  describe('after a clean shutdown (stop)', () => {
    beforeAll(async () => {
      await server.stop();
    });

    it('answers 503 JSON in bounded time to requests that need the session, keeps other routes and the process up', async () => {
      await expectOutageHandled();
    });

    it('serves the same sessions again once PostgreSQL is restarted, without restarting the app', async () => {
      await server.restart();

      await readsBack({ color: 'blue' });
      await sampleRecovers();
      await withSid(sample.http().get('/profile'), signedIn).timeout(HANG).expect(200, { userId: 'early' });
      await withSid(app.http().post('/set'), cookie).send({ size: 'L' }).timeout(HANG).expect(200);
      await readsBack({ color: 'blue', size: 'L' });
    });
  });

  describe('after a crash (kill)', () => {
    beforeAll(async () => {
      await server.kill();
    });

    it('answers 503 JSON in bounded time to requests that need the session, keeps other routes and the process up', async () => {
      await expectOutageHandled();
    });

    it('serves the same sessions again once PostgreSQL has recovered, without restarting the app', async () => {
      await server.restart();

      await readsBack({ color: 'blue', size: 'L' });
      await sampleRecovers();
      await withSid(sample.http().get('/profile'), signedIn).timeout(HANG).expect(200, { userId: 'early' });
      const login = await sample.http().post('/auth/login').send({ username: 'late', password: 'demo' }).timeout(HANG).expect(200);
      await withSid(sample.http().get('/profile'), requireSid(login)).timeout(HANG).expect(200, { userId: 'late' });
    });
  });
});
