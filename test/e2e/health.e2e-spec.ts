import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionHealthIndicator } from '../../lib/index.js';
import { MemoryStore } from '../../lib/stores/index.js';
import { createFixtureApp, PLATFORMS } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { pollUntil, startSampleNode } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * SessionHealthIndicator, a @nestjs/terminus indicator, against a real Redis that is stopped and
 * started again: up with the store type and latency while it answers, down with a message while
 * it does not, up again once it is back, without restarting the application. The sample's
 * GET /health is terminus's HealthCheckService over it: 200, then 503, then 200 (SPEC §4).
 *
 * The cases run in order against one server: up, killed, restarted.
 */

/** A request that takes longer than this counts as a hang and fails the test. */
const HANG = 5_000;

const UP = { status: 'up', store: 'redis', latencyMs: expect.any(Number) };

describe.each(PLATFORMS)('SessionHealthIndicator on a Redis that stops and comes back (%s)', (platform) => {
  let server: RedisServer;
  let sample: SampleNode;
  let indicator: SessionHealthIndicator;

  beforeAll(async () => {
    server = await startRedisServer();
    sample = await startSampleNode({ SESSION_STORE: 'redis', REDIS_URL: server.url }, platform);
    indicator = sample.app.get(SessionHealthIndicator);
  });

  afterAll(async () => {
    await sample?.close();
    await server?.stop();
  });

  it('reports up with the store type and the ping latency, under the key it is given', async () => {
    expect(await indicator.isHealthy()).toEqual({ session: UP });
    expect(await indicator.isHealthy('sessions-redis')).toEqual({ 'sessions-redis': UP });
  });

  it("has the sample answer GET /health with 200 and terminus's report", async () => {
    const res = await sample.http().get('/health').expect(200);

    expect(res.body).toEqual({ status: 'ok', info: { session: UP }, error: {}, details: { session: UP } });
  });

  it('reports down with a code while Redis is stopped, and no driver detail (the host or port); the sample answers 503', async () => {
    await server.kill();

    const down = await indicator.isHealthy();
    const res = await sample.http().get('/health').timeout(HANG);

    const report = {
      status: 'down',
      store: 'redis',
      latencyMs: expect.any(Number),
      code: 'SESSION_STORE_UNAVAILABLE',
      message: 'The session store (redis) failed its ping.',
    };
    expect(down).toEqual({ session: report });
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ status: 'error', info: {}, error: { session: report }, details: { session: report } });
    expect(res.text).not.toContain(String(server.port));
  });

  it('reports up again once Redis is back, without restarting the application', async () => {
    await server.restart();

    await pollUntil('the sample to answer GET /health with 200', async () =>
      (await sample.http().get('/health').timeout(HANG)).status === 200 ? true : undefined,
    );
    expect(await indicator.isHealthy()).toEqual({ session: UP });
  });
});

/** A store whose ping never answers: what a network partition looks like to the indicator. */
class SilentStore extends MemoryStore {
  override ping(): Promise<void> {
    return new Promise(() => undefined);
  }
}

describe.each(PLATFORMS)('SessionHealthIndicator on a store that does not answer (%s)', (platform) => {
  let app: FixtureApp;

  beforeAll(async () => {
    app = await createFixtureApp({ store: new SilentStore(), storeTimeout: 200 }, { platform });
  });

  afterAll(async () => {
    await app?.close();
  });

  it("reports down once the module's storeTimeout has passed, instead of waiting for ever", async () => {
    const result = await app.moduleRef.get(SessionHealthIndicator).isHealthy();

    expect(result).toEqual({
      session: {
        status: 'down',
        store: 'memory',
        latencyMs: expect.any(Number),
        code: 'SESSION_STORE_UNAVAILABLE',
        message: "The session store (memory) failed its ping: no answer within 200 ms (the module's storeTimeout).",
      },
    });
  });
});
