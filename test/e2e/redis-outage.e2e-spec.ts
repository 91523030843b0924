import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createFixtureApp, PLATFORMS, requireSid, setCookieLine } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { pollUntil, sleep, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * SPEC §3.7 on a real Redis that crashes and comes back: requests that need the session fail
 * fast with a 503 JSON answer, routes that do not keep working, the process stays up, and
 * service resumes by itself once Redis answers again, without restarting the application.
 *
 * The tests run in order against one server: up, killed, restarted (empty: nothing persists).
 */

/** A request that takes longer than this counts as a hang and fails the test. */
const HANG = 5_000;

const UNAVAILABLE = {
  statusCode: 503,
  code: 'SESSION_STORE_UNAVAILABLE',
  message: expect.stringMatching(/session store \(redis\) is not answering/i),
};

describe.each(PLATFORMS)('a Redis outage and recovery (SPEC §3.7) (%s)', (platform) => {
  let server: RedisServer;
  let app: FixtureApp;
  let sample: SampleNode;
  /** A session created while Redis was up. */
  let before: string;
  /** A session signed in on the sample while Redis was up. */
  let sampleBefore: string;

  beforeAll(async () => {
    server = await startRedisServer();
    app = await createFixtureApp({ store: { type: 'redis', url: server.url, commandTimeout: 500 }, storeTimeout: 1_500 }, { platform });
    sample = await startSampleNode({ SESSION_STORE: 'redis', REDIS_URL: server.url }, platform);
  });

  afterAll(async () => {
    await app?.close();
    await sample?.close();
    await server?.stop();
  });

  it('works while Redis is up', async () => {
    before = requireSid(await app.http().post('/set').send({ color: 'blue' }).expect(200));

    const res = await withSid(app.http().get('/read'), before).expect(200);

    expect(res.body).toEqual({ data: { color: 'blue' }, isNew: false });
    expect((await sample.http().get('/health').expect(200)).body).toMatchObject({
      status: 'ok',
      info: { session: { status: 'up', store: 'redis' } },
    });
    sampleBefore = requireSid(await sample.http().post('/auth/login').send({ username: 'early', password: 'demo' }).expect(200));
    await withSid(sample.http().get('/profile'), sampleBefore).expect(200, { userId: 'early' });
  });

  describe('while Redis is down', () => {
    beforeAll(async () => {
      await server.kill();
    });

    it('answers 503 with a JSON message, not a hang, to a request that reads the session', async () => {
      const res = await withSid(app.http().get('/read'), before).timeout(HANG);

      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      expect(res.body).toMatchObject(UNAVAILABLE);
    });

    it('answers 503, not 401, on a guarded route', async () => {
      const res = await withSid(app.http().get('/guarded'), before).timeout(HANG);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject(UNAVAILABLE);
    });

    it('keeps serving a route that does not use the session, even with a session cookie', async () => {
      const res = await withSid(app.http().get('/ping'), before).timeout(HANG);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ pong: true });
    });

    it('answers 503 and sets no cookie to a write that would create a session', async () => {
      const res = await app.http().post('/set').send({ color: 'red' }).timeout(HANG);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject(UNAVAILABLE);
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('answers 503 and sets no cookie to a write to an existing session', async () => {
      const res = await withSid(app.http().post('/set'), before).send({ color: 'red' }).timeout(HANG);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject(UNAVAILABLE);
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('has the sample answer 503 on GET /health and on a guarded route', async () => {
      const health = await sample.http().get('/health').timeout(HANG);
      const profile = await withSid(sample.http().get('/profile'), sampleBefore).timeout(HANG);

      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'error', error: { session: { status: 'down', store: 'redis' } } });
      expect(profile.status).toBe(503);
      expect(profile.body).toMatchObject(UNAVAILABLE);
    });

    it('stays up: after reconnect attempts have failed for a while, routes without the session still answer', async () => {
      // Long enough for several reconnect attempts (and their error events) to happen.
      await sleep(2_500);

      await app.http().get('/ping').timeout(HANG).expect(200, { pong: true });
      await sample.http().get('/health').timeout(HANG).expect(503);
      expect(server.running).toBe(false);
    });
  });

  describe('once Redis is back (empty: nothing was persisted)', () => {
    beforeAll(async () => {
      await server.restart();
    });

    it('resumes by itself: new sessions are created and read back, without restarting the app', async () => {
      const cookie = await pollUntil(
        'a session write to succeed after the restart',
        async () => {
          const res = await app.http().post('/set').send({ color: 'green' }).timeout(HANG);
          return res.status === 200 ? requireSid(res) : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );

      const res = await withSid(app.http().get('/read'), cookie).timeout(HANG).expect(200);

      expect(res.body).toEqual({ data: { color: 'green' }, isNew: false });
    });

    it('treats a cookie whose session the outage lost as an anonymous session, not an error', async () => {
      const read = await withSid(app.http().get('/read'), before).timeout(HANG).expect(200);
      const guarded = await withSid(app.http().get('/guarded'), before).timeout(HANG);

      expect(read.body).toEqual({ data: {}, isNew: true });
      expect(guarded.status).toBe(401);
    });

    it('has the sample healthy again, and signing in on it works', async () => {
      await pollUntil(
        'the sample to report a healthy store',
        async () => ((await sample.http().get('/health').timeout(HANG)).status === 200 ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      const login = await sample.http().post('/auth/login').send({ username: 'back', password: 'demo' }).timeout(HANG).expect(200);

      const profile = await withSid(sample.http().get('/profile'), requireSid(login)).timeout(HANG).expect(200);

      expect(profile.body).toEqual({ userId: 'back' });
    });
  });
});
