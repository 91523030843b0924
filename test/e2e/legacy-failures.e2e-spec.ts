import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import pg from 'pg';
import type { SessionModuleOptions } from '../../lib/index.js';
import { closeAll, cookieAttributes, createFixtureApp, isClearing, requireSid, setCookieLine, sidFrom, tokenOf } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { LEGACY_COOKIE, legacyCookieFor, legacyCookieHeader } from '../fixtures/express-session-app.js';
import { RawClients } from '../fixtures/redis-apps.js';
import { FlakyStore } from '../fixtures/stores.js';
import { postgresForTests } from '../support/postgres-server.js';
import type { PostgresServer } from '../support/postgres-server.js';
import { startRedisServer } from '../support/redis-topology.js';
import { pollUntil } from '../support/waiting.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * The `legacy` option when something goes wrong, or when the request is not a plain old-cookie
 * one: the old store or this module's store failing mid-takeover must never lose the old
 * session nor answer 500, and a request with a credential of this module never touches the old
 * session. The old sessions are written into a throwaway Redis as connect-redis writes them
 * (`sess:<id>`, express-session's JSON, a TTL); test/e2e/legacy-migration.e2e-spec.ts runs the
 * real express-session deployment.
 */

const raw = new RawClients();
const apps: FixtureApp[] = [];
const TTL_MS = 3_600_000;

let redis: RedisServer;
let client: Redis;

beforeAll(async () => {
  redis = await startRedisServer();
  client = raw.server(redis);
});

afterEach(() => closeAll(apps));

afterAll(async () => {
  raw.closeAll();
  await redis.stop();
});

/** An old session as connect-redis keeps it; returns the `connect.sid` value its browser holds. */
async function oldSession(fields: Record<string, unknown>): Promise<{ id: string; cookie: string }> {
  const id = randomBytes(24).toString('base64url');
  const json = JSON.stringify({ cookie: { originalMaxAge: TTL_MS, httpOnly: true, path: '/' }, ...fields });
  await client.set(`sess:${id}`, json, 'PX', TTL_MS);
  return { id, cookie: legacyCookieFor(id) };
}

async function app(options: Partial<SessionModuleOptions>, setup: Parameters<typeof createFixtureApp>[1] = {}): Promise<FixtureApp> {
  const started = await createFixtureApp({ legacy: { store: 'connect-redis', secret: 'keyboard cat', url: redis.url }, ...options }, setup);
  apps.push(started);
  return started;
}

const withOldCookie = (app: FixtureApp, path: string, cookie: string) => app.http().get(path).set('Cookie', legacyCookieHeader(cookie));

describe('Switching from express-session, when things go wrong', () => {
  it('answers 503 to code that reads the session while the old Redis is down, serves the rest, and takes over once it is back', async () => {
    const fixture = await app({});
    const old = await oldSession({ userId: 'outage' });
    await redis.kill();

    const reading = await withOldCookie(fixture, '/read', old.cookie);
    const notReading = await withOldCookie(fixture, '/ping', old.cookie);

    expect(reading.status).toBe(503);
    expect(reading.body).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE' });
    expect(reading.body.message).toContain('connect-redis');
    expect(notReading.status).toBe(200);
    // Nothing was taken: the browser keeps its old cookie for when the store is back.
    expect(setCookieLine(reading, LEGACY_COOKIE)).toBeUndefined();

    await redis.restart();
    // The server came back empty (nothing is persisted), and the test's own client gave up on it.
    client = raw.server(redis);
    const back = await oldSession({ userId: 'outage' });
    const res = await withOldCookie(fixture, '/read', back.cookie).expect(200);
    expect(res.body.data).toEqual({ userId: 'outage' });
  });

  it('puts the old session back, with its remaining TTL, when it cannot be created in this store, and takes it over later', async () => {
    const store = new FlakyStore();
    const fixture = await app({ store });
    const old = await oldSession({ userId: 'flaky', theme: 'dark' });
    store.down = true;

    const failed = await withOldCookie(fixture, '/read', old.cookie);

    expect(failed.status).toBe(503);
    expect(setCookieLine(failed, LEGACY_COOKIE)).toBeUndefined();
    expect(JSON.parse((await client.get(`sess:${old.id}`))!)).toMatchObject({ userId: 'flaky', theme: 'dark' });
    const ttl = await client.pttl(`sess:${old.id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_MS);

    store.down = false;
    const res = await withOldCookie(fixture, '/read', old.cookie).expect(200);
    expect(res.body.data).toEqual({ userId: 'flaky', theme: 'dark' });
    expect(await client.exists(`sess:${old.id}`)).toBe(0);
  });

  it("answers maxSessionsPerUser's 409 when the user has no room left, and keeps the old session for later", async () => {
    const fixture = await app({ maxSessionsPerUser: 1, onMaxSessions: 'reject' });
    const signedIn = requireSid(await fixture.http().post('/login').send({ userId: 'full' }).expect(200));
    const old = await oldSession({ userId: 'full' });

    const refused = await withOldCookie(fixture, '/read', old.cookie);

    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'SESSION_LIMIT_REACHED' });
    expect(await client.exists(`sess:${old.id}`)).toBe(1);
    // Once the user signs out elsewhere there is room, and the old session moves.
    await fixture
      .http()
      .post('/logout')
      .set('Cookie', `sid=${encodeURIComponent(signedIn)}`)
      .expect(204);
    await withOldCookie(fixture, '/guarded', old.cookie).expect(200, { userId: 'full' });
  });

  it('leaves the old session alone when the request brings a credential of this module too', async () => {
    const fixture = await app({});
    const ours = requireSid(await fixture.http().post('/set').send({ mine: true }).expect(200));
    const old = await oldSession({ userId: 'both' });

    const res = await fixture
      .http()
      .get('/read')
      .set('Cookie', `sid=${encodeURIComponent(ours)}; ${legacyCookieHeader(old.cookie)}`)
      .expect(200);

    expect(res.body.data).toEqual({ mine: true });
    expect(setCookieLine(res, LEGACY_COOKIE)).toBeUndefined();
    expect(await client.exists(`sess:${old.id}`)).toBe(1);
  });

  it('creates no session for an old one that held nothing but its cookie, and removes it', async () => {
    const fixture = await app({});
    const old = await oldSession({});

    const res = await withOldCookie(fixture, '/read', old.cookie).expect(200);

    expect(res.body).toEqual({ data: {}, isNew: true });
    expect(sidFrom(res)).toBeUndefined();
    expect(isClearing(setCookieLine(res, LEGACY_COOKIE))).toBe(true);
    expect(await client.exists(`sess:${old.id}`)).toBe(0);
  });

  it("hands out only a cookie with transport 'both': the old credential was a cookie, and a page script must not get a token", async () => {
    const fixture = await app({ transport: 'both' });
    const old = await oldSession({ userId: 'both-ways' });

    const res = await withOldCookie(fixture, '/guarded', old.cookie).expect(200, { userId: 'both-ways' });

    expect(sidFrom(res)).toBeDefined();
    expect(tokenOf(res)).toBeUndefined();
  });

  it('takes over an old session into the cookie store, which keeps it in the new cookie', async () => {
    const fixture = await app({ store: { type: 'cookie' } });
    const old = await oldSession({ userId: 'sealed', theme: 'dark' });

    const res = await withOldCookie(fixture, '/read', old.cookie).expect(200);
    const sealed = requireSid(res);

    expect(res.body.data).toEqual({ userId: 'sealed', theme: 'dark' });
    await fixture
      .http()
      .get('/guarded')
      .set('Cookie', `sid=${encodeURIComponent(sealed)}`)
      .expect(200, { userId: 'sealed' });
    expect(await client.exists(`sess:${old.id}`)).toBe(0);
  });

  it('takes over an old session on Fastify too', async () => {
    const fixture = await app({}, { platform: 'fastify' });
    const old = await oldSession({ userId: 'fast', cart: ['pear'] });

    const res = await withOldCookie(fixture, '/read', old.cookie).expect(200);

    expect(res.body.data).toEqual({ userId: 'fast', cart: ['pear'] });
    expect(sidFrom(res)).toBeDefined();
    expect(isClearing(setCookieLine(res, LEGACY_COOKIE))).toBe(true);
  });
});

describe('Switching from express-session: the old cookie', () => {
  /** How many scripts the old sessions' Redis has run: every take is one. */
  async function takesRun(): Promise<number> {
    const stats = await client.info('commandstats');
    return Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }

  it('costs no store access when no old secret signed it', async () => {
    const fixture = await app({});
    const old = await oldSession({ userId: 'target' });
    const before = await takesRun();
    const forged = [
      legacyCookieFor(old.id, 'not the secret'),
      `${old.cookie.slice(0, -2)}AA`,
      encodeURIComponent(`s:${old.id}`),
      encodeURIComponent(old.id),
    ];

    for (const cookie of forged) await withOldCookie(fixture, '/guarded', cookie).expect(401);

    expect(await takesRun()).toBe(before);
    expect(await client.exists(`sess:${old.id}`)).toBe(1);
    // The genuine cookie is one take: the count above would have seen any.
    await withOldCookie(fixture, '/guarded', old.cookie).expect(200, { userId: 'target' });
    expect(await takesRun()).toBe(before + 1);
  });

  it('is cleared on the path and domain express-session set it with', async () => {
    const fixture = await app({
      legacy: { store: 'connect-redis', secret: 'keyboard cat', url: redis.url, cookie: { path: '/shop', domain: 'example.test' } },
    });
    const old = await oldSession({ userId: 'shopper' });

    const res = await withOldCookie(fixture, '/guarded', old.cookie).expect(200, { userId: 'shopper' });

    const clearing = setCookieLine(res, LEGACY_COOKIE);
    expect(isClearing(clearing)).toBe(true);
    expect(cookieAttributes(clearing!).get('path')).toBe('/shop');
    expect(cookieAttributes(clearing!).get('domain')).toBe('example.test');
  });
});

describe("Switching from express-session: the old sessions' connection", () => {
  /** Connections the old sessions' Redis holds, the test's own included. */
  const connections = async (): Promise<number> =>
    String(await client.client('LIST'))
      .trim()
      .split('\n').length;

  it('closes a client it made from legacy.url when the application shuts down', async () => {
    const before = await connections();
    const fixture = await createFixtureApp({ legacy: { store: 'connect-redis', secret: 'keyboard cat', url: redis.url } });
    const old = await oldSession({ userId: 'closing' });
    await withOldCookie(fixture, '/guarded', old.cookie).expect(200);

    expect(await connections()).toBe(before + 1);
    await fixture.close();
    // The server notices a closed connection a moment after the client's QUIT.
    await pollUntil('the legacy client closing', async () => ((await connections()) === before ? true : undefined));
  });

  it('leaves a client it was given open', async () => {
    const given = raw.server(redis);
    const fixture = await createFixtureApp({ legacy: { store: 'connect-redis', secret: 'keyboard cat', client: given } });
    const old = await oldSession({ userId: 'kept' });
    await withOldCookie(fixture, '/guarded', old.cookie).expect(200);

    await fixture.close();

    expect(given.status).toBe('ready');
    expect(await given.ping()).toBe('PONG');
  });
});

describe('Switching from express-session on connect-pg-simple', () => {
  let server: PostgresServer;
  let pool: pg.Pool;

  beforeAll(async () => {
    server = await postgresForTests();
    // A database whose TimeZone is far from UTC: connect-pg-simple's `expire` (a timestamp without
    // time zone) is written in it, and must be compared in it. Set before any pool connects.
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query(`ALTER DATABASE "${server.database}" SET TimeZone = 'Pacific/Auckland'`);
    await admin.end();
    pool = new pg.Pool({ connectionString: server.url(), max: 2 });
    pool.on('error', () => undefined);
    // connect-pg-simple's own table.sql.
    await pool.query('CREATE TABLE "session" ("sid" varchar NOT NULL PRIMARY KEY, "sess" json NOT NULL, "expire" timestamp(6) NOT NULL)');
  });

  afterAll(async () => {
    await pool?.end();
    await server?.dispose();
  });

  const rowOf = async (id: string) =>
    (await pool.query<{ sess: unknown; expire: string }>('SELECT sess, expire::text AS expire FROM "session" WHERE sid = $1', [id])).rows[0];

  it('puts the row back as it was, expiry included, and takes it over once the store is back', async () => {
    const store = new FlakyStore();
    const fixture = await createFixtureApp({ store, legacy: { store: 'connect-pg-simple', secret: 'keyboard cat', pool } });
    apps.push(fixture);
    const id = randomBytes(24).toString('base64url');
    await pool.query(`INSERT INTO "session" (sid, sess, expire) VALUES ($1, $2, now() + interval '1 hour')`, [
      id,
      JSON.stringify({ cookie: { path: '/' }, userId: 'pg-flaky', theme: 'dark' }),
    ]);
    const before = await rowOf(id);
    store.down = true;

    await withOldCookie(fixture, '/read', legacyCookieFor(id)).expect(503);

    expect(await rowOf(id)).toEqual(before);
    store.down = false;
    const res = await withOldCookie(fixture, '/read', legacyCookieFor(id)).expect(200);
    expect(res.body.data).toEqual({ userId: 'pg-flaky', theme: 'dark' });
    expect(await rowOf(id)).toBeUndefined();
  });

  it("reads expire in the database's time zone, as connect-pg-simple writes and reads it", async () => {
    const fixture = await createFixtureApp({ legacy: { store: 'connect-pg-simple', secret: 'keyboard cat', pool } });
    apps.push(fixture);
    const [live, expired] = [randomBytes(24).toString('base64url'), randomBytes(24).toString('base64url')];
    const insert = `INSERT INTO "session" (sid, sess, expire) VALUES ($1, $2, (now() + $3::interval)::timestamp)`;
    await pool.query(insert, [live, JSON.stringify({ userId: 'auckland' }), '1 hour']);
    // An hour ago in Auckland reads as some twelve hours ahead if taken for UTC.
    await pool.query(insert, [expired, JSON.stringify({ userId: 'auckland-expired' }), '-1 hour']);

    await withOldCookie(fixture, '/guarded', legacyCookieFor(expired)).expect(401);
    await withOldCookie(fixture, '/guarded', legacyCookieFor(live)).expect(200, { userId: 'auckland' });
    // The expired row is left for connect-pg-simple's pruner, as it leaves it.
    expect(await rowOf(expired)).toBeDefined();
  });
});
