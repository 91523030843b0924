import 'reflect-metadata';
import type { LoggerService } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import type { Response } from 'supertest';
import { SessionService } from '../../lib/index.js';
import { createFixtureApp, PLATFORMS, requireSid } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { pollUntil, sleep, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { RecordingLogger } from '../support/recording-logger.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * The `metrics` option, seen as Prometheus sees it: sessions are driven through the sample app
 * over HTTP and GET /metrics is scraped before and after, on a real Redis (stopped for the error
 * count) and on the memory store (for expiries, which it reports when a read finds one).
 */

/** A request that takes longer than this counts as a hang and fails the test. */
const HANG = 5_000;

type Labels = Record<string, string>;

/** One scrape, parsed: the value of each sample, by metric name and labels. */
class Scrape {
  private readonly samples = new Map<string, number>();

  constructor(text: string) {
    for (const line of text.split('\n')) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) continue;
      const labels: Labels = {};
      for (const [, name, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[name] = value;
      this.samples.set(Scrape.key(match[1], labels), Number(match[3]));
    }
  }

  /** A sample's value; 0 for one not reported yet (a labelled counter before its first increment). */
  value(name: string, labels: Labels = {}): number {
    return this.samples.get(Scrape.key(name, labels)) ?? 0;
  }

  private static key(name: string, labels: Labels): string {
    return `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`;
  }
}

/** GET /metrics: the Prometheus text format. */
async function scrape(node: SampleNode): Promise<Scrape> {
  const res = await node.http().get('/metrics').expect(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return new Scrape(res.text);
}

/** What one metric moved by between two scrapes. */
const delta = (before: Scrape, after: Scrape, name: string, labels: Labels = {}): number => after.value(name, labels) - before.value(name, labels);

const login = (node: SampleNode, username: string, cookie?: string): Promise<Response> => {
  const req = node.http().post('/auth/login');
  return (cookie ? withSid(req, cookie) : req).send({ username, password: 'demo' }).expect(200);
};

describe.each(PLATFORMS)('session metrics of the sample on Redis, scraped from GET /metrics (%s)', (platform) => {
  let server: RedisServer;
  let sample: SampleNode;

  beforeAll(async () => {
    server = await startRedisServer();
    sample = await startSampleNode({ SESSION_STORE: 'redis', REDIS_URL: server.url }, platform);
  });

  afterAll(async () => {
    await sample?.close();
    await server?.stop();
  });

  it('serves the help and type of every session metric', async () => {
    const res = await sample.http().get('/metrics').expect(200);

    for (const name of [
      'session_created_total',
      'session_rotated_total',
      'session_destroyed_total',
      'session_expired_total',
      'session_store_errors_total',
    ]) {
      expect(res.text).toContain(`# TYPE ${name} counter`);
    }
    expect(res.text).toContain('# TYPE session_store_duration_seconds histogram');
    expect(res.text).toMatch(/# HELP session_expired_total .*redis store only with expiryEvents: true/);
  });

  it('counts a sign-in on a new client as created, and one on an existing session as rotated', async () => {
    const before = await scrape(sample);

    await login(sample, 'ann');
    const visitor = requireSid(await sample.http().post('/visits').expect(200));
    await login(sample, 'bob', visitor);

    const after = await scrape(sample);
    expect(delta(before, after, 'session_created_total')).toBe(2);
    expect(delta(before, after, 'session_rotated_total')).toBe(1);
  });

  it('counts a logout as destroyed, with the reason "destroyed"', async () => {
    const cookie = requireSid(await login(sample, 'cat'));
    const before = await scrape(sample);

    await withSid(sample.http().post('/auth/logout'), cookie).expect(204);

    const after = await scrape(sample);
    expect(delta(before, after, 'session_destroyed_total', { reason: 'destroyed' })).toBe(1);
    expect(delta(before, after, 'session_destroyed_total', { reason: 'revoked' })).toBe(0);
  });

  it('counts sessions revoked through SessionService as destroyed, with the reason "revoked"', async () => {
    const laptop = requireSid(await login(sample, 'dan'));
    await login(sample, 'dan');
    await login(sample, 'dan');
    const before = await scrape(sample);

    await withSid(sample.http().delete('/auth/sessions'), laptop).expect(200, { revoked: 2 });

    const after = await scrape(sample);
    expect(delta(before, after, 'session_destroyed_total', { reason: 'revoked' })).toBe(2);
    expect(delta(before, after, 'session_destroyed_total', { reason: 'destroyed' })).toBe(0);
  });

  it('times each store operation, labelled by operation and store type', async () => {
    const before = await scrape(sample);

    const cookie = requireSid(await sample.http().post('/visits').expect(200)); // create
    await withSid(sample.http().put('/prefs/theme'), cookie).send({ value: 'dark' }).expect(200); // get, commit
    const signedIn = requireSid(await login(sample, 'eve', cookie)); // get, rotate
    await withSid(sample.http().get('/auth/sessions'), signedIn).expect(200); // get, listByUser
    await withSid(sample.http().post('/auth/logout'), signedIn).expect(204); // get, destroy
    await sample.http().get('/health').expect(200); // ping

    const after = await scrape(sample);
    const count = (operation: string): number => delta(before, after, 'session_store_duration_seconds_count', { operation, store: 'redis' });
    expect({
      get: count('get'),
      create: count('create'),
      commit: count('commit'),
      rotate: count('rotate'),
      listByUser: count('listByUser'),
      destroy: count('destroy'),
      ping: count('ping'),
    }).toEqual({ get: 4, create: 1, commit: 1, rotate: 1, listByUser: 1, destroy: 1, ping: 1 });
    expect(after.value('session_store_duration_seconds_sum', { operation: 'get', store: 'redis' })).toBeGreaterThan(
      before.value('session_store_duration_seconds_sum', { operation: 'get', store: 'redis' }),
    );
    expect(after.value('session_store_duration_seconds_bucket', { operation: 'get', store: 'redis', le: '+Inf' })).toBe(
      after.value('session_store_duration_seconds_count', { operation: 'get', store: 'redis' }),
    );
    expect(delta(before, after, 'session_store_errors_total', { operation: 'get', store: 'redis' })).toBe(0);
  });

  it('counts the store calls that fail while Redis is down, by operation and store type', async () => {
    const cookie = requireSid(await login(sample, 'fay'));
    const before = await scrape(sample);
    await server.kill();

    const profile = await withSid(sample.http().get('/profile'), cookie).timeout(HANG);
    const health = await sample.http().get('/health').timeout(HANG);

    expect([profile.status, health.status]).toEqual([503, 503]);
    // A call the module gave up on (storeTimeout) is counted once the store's own timeout ends it.
    const after = await pollUntil('the failed calls to be counted', async () => {
      const now = await scrape(sample);
      return delta(before, now, 'session_store_errors_total', { operation: 'get', store: 'redis' }) >= 1 ? now : undefined;
    });
    expect(delta(before, after, 'session_store_errors_total', { operation: 'get', store: 'redis' })).toBe(1);
    expect(delta(before, after, 'session_store_errors_total', { operation: 'ping', store: 'redis' })).toBe(1);
    await server.restart();
  });
});

describe.each(PLATFORMS)('session expiries in the metrics of the sample on the memory store (%s)', (platform) => {
  let sample: SampleNode;

  beforeAll(async () => {
    sample = await startSampleNode({ SESSION_STORE: 'memory', SESSION_IDLE_TIMEOUT: '300' }, platform);
  });

  afterAll(async () => {
    await sample?.close();
  });

  it('counts a session the store finds expired', async () => {
    const cookie = requireSid(await sample.http().post('/visits').expect(200));
    const before = await scrape(sample);
    await sleep(400);

    await withSid(sample.http().get('/session'), cookie).expect(200, { data: {} });

    const after = await scrape(sample);
    expect(delta(before, after, 'session_expired_total')).toBe(1);
  });
});

describe.each(PLATFORMS)('session expiries in the metrics of an app on Redis (%s)', (platform) => {
  let server: RedisServer;
  const apps: FixtureApp[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    for (const app of apps.splice(0)) await app.close();
    await server?.stop();
  });

  async function startApp(store: object, logger: LoggerService): Promise<{ app: FixtureApp; registry: Registry }> {
    const registry = new Registry();
    const app = await createFixtureApp({ store: store as never, idleTimeout: 300, metrics: { registry }, logger }, { platform });
    apps.push(app);
    return { app, registry };
  }

  it('counts the sessions Redis expires when the store has expiryEvents: true', async () => {
    const { app, registry } = await startApp({ type: 'redis', url: server.url, prefix: 'on:', expiryEvents: true }, new RecordingLogger());
    requireSid(await app.http().post('/set').send({ color: 'red' }).expect(200));

    await pollUntil('Redis to expire the session and the metric to count it', async () =>
      new Scrape(await registry.metrics()).value('session_expired_total') === 1 ? true : undefined,
    );
  });

  it('does not listen for expiries, nor make the store warn that it cannot report them, without expiryEvents', async () => {
    const quiet = new RecordingLogger();
    const { app, registry } = await startApp({ type: 'redis', url: server.url, prefix: 'off:' }, quiet);
    requireSid(await app.http().post('/set').send({ color: 'red' }).expect(200));
    // What metrics must not do: an expired listener makes this store warn.
    const listening = new RecordingLogger();
    const { app: other } = await startApp({ type: 'redis', url: server.url, prefix: 'other:' }, listening);
    other.moduleRef.get(SessionService).on('expired', () => undefined);

    await pollUntil('the store with a listener to warn', () => (listening.warnings.some((w) => w.includes('expiryEvents')) ? true : undefined));
    expect(quiet.warnings).toEqual([]);
    expect(new Scrape(await registry.metrics()).value('session_expired_total')).toBe(0);
  });
});

describe.each(PLATFORMS)('store metrics of an app on the cookie store (%s)', (platform) => {
  let app: FixtureApp;
  const registry = new Registry();

  beforeAll(async () => {
    app = await createFixtureApp({ store: { type: 'cookie' }, metrics: { registry } }, { platform });
  });

  afterAll(async () => {
    await app?.close();
  });

  it("times the calls on each request's view of the store, labelled store=cookie", async () => {
    const before = new Scrape(await registry.metrics());

    const cookie = requireSid(await app.http().post('/set').send({ color: 'red' }).expect(200));
    await withSid(app.http().get('/read'), cookie).expect(200);

    const after = new Scrape(await registry.metrics());
    expect(delta(before, after, 'session_store_duration_seconds_count', { operation: 'create', store: 'cookie' })).toBe(1);
    expect(delta(before, after, 'session_store_duration_seconds_count', { operation: 'get', store: 'cookie' })).toBe(1);
    expect(delta(before, after, 'session_created_total')).toBe(1);
  });
});
