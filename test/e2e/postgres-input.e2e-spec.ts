import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { requireSid } from '../fixtures/cookies.js';
import { startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { postgresForTests, type PostgresServer } from '../support/postgres-server.js';
import { PLATFORMS } from '../fixtures/platforms.js';

/**
 * SPEC §3.6 on the PostgreSQL store: input that JSON carries but a `jsonb` column cannot (a NUL
 * character, a lone UTF-16 surrogate) is the client's mistake, so it gets a clear 4xx. It is not
 * a store outage: no 503 while /health says the store is fine, and the session keeps its data.
 */
describe.each(PLATFORMS)('the sample on PostgreSQL, given strings jsonb cannot hold (SPEC §3.6) (%s)', (platform) => {
  let server: PostgresServer;
  let sample: SampleNode;

  beforeAll(async () => {
    server = await postgresForTests();
    sample = await startSampleNode({ SESSION_STORE: 'postgres', DATABASE_URL: server.url() }, platform);
  });

  afterAll(async () => {
    await sample?.close();
    await server?.dispose();
  });

  it.each([
    ['a NUL character', '{"value":"before\\u0000after"}'],
    ['a lone surrogate', '{"value":"broken \\ud800 pair"}'],
  ])('answers a write of %s with a 4xx, keeps the session and its data, and stays healthy', async (_, body) => {
    const cookie = requireSid(await sample.http().post('/visits').expect(200));

    const res = await withSid(sample.http().put('/prefs/note'), cookie).set('Content-Type', 'application/json').send(body);

    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.stringify(res.body)).toContain('pref:note');
    await withSid(sample.http().get('/session'), cookie).expect(200, { data: { visits: 1 } });
    await sample.http().get('/health').expect(200);
  });
});
