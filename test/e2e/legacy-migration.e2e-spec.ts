import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import pg from 'pg';
import type request from 'supertest';
import { hashSessionId, SessionService } from '../../lib/index.js';
import type { SessionEvent } from '../../lib/index.js';
import { cookieAttributes, idOf, isClearing, keyOf, requireSid, setCookieLine, sidFrom } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import {
  EXPRESS_SESSION_SECRET,
  LEGACY_COOKIE,
  legacyCookieFor,
  legacyCookieHeader,
  startExpressSessionApp,
} from '../fixtures/express-session-app.js';
import type { ExpressSessionApp, LegacyUser } from '../fixtures/express-session-app.js';
import { createPassportApp } from '../fixtures/passport-app.js';
import { RawClients, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { postgresForTests } from '../support/postgres-server.js';
import type { PostgresServer } from '../support/postgres-server.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * The `legacy` option, as a team switching from express-session lives it: the old Express
 * deployment (test/fixtures/express-session-app.ts) has signed users in on connect-redis or
 * connect-pg-simple, then the sample runs as two nodes on the same Redis or PostgreSQL, and every
 * returning browser still holds only `connect.sid`. Its first request, on either node, must
 * already be signed in, with every field the old session had; from then on our own `sid` carries
 * the session and the old cookie opens nothing, anywhere. Forged or broken old cookies and
 * entries must leave the request anonymous, never fail it, and never reach Object.prototype.
 */

const raw = new RawClients();

/** The sample's own cookie: what a takeover hands out in place of the old one. */
const SAMPLE_COOKIE = 'sid';

/** An id as express-session makes them (uid-safe: 24 random bytes, base64url). */
const expressSessionId = (): string => randomBytes(24).toString('base64url');

/** Old entries that are JSON but no session to take over: not an object, or a `__proto__` key somewhere. */
const HOSTILE_JSON: ReadonlyArray<[what: string, json: string]> = [
  ['JSON, not an object', '"mallory"'],
  ['a JSON array', '["mallory"]'],
  ['JSON null', 'null'],
  ['__proto__ at the top', '{"__proto__":{"polluted":1},"userId":"mallory"}'],
  ['__proto__ nested in a field', '{"userId":"mallory","prefs":{"__proto__":{"polluted":1}}}'],
  ['__proto__ in an array', '{"userId":"mallory","cart":[{"__proto__":{"polluted":1}}]}'],
  ["__proto__ in express-session's cookie", '{"cookie":{"path":"/","__proto__":{"polluted":1}},"userId":"mallory"}'],
];

/** A request carrying only the old deployment's cookie, as a browser that has not been back since the switch sends it. */
const withOldCookie = <T extends request.Test>(req: T, cookie: string, name: string = LEGACY_COOKIE): T =>
  req.set('Cookie', legacyCookieHeader(cookie, name));

/** What the old deployment's `POST /login` put in the session (express-session's `cookie` member aside). */
const fieldsOf = (user: LegacyUser): Record<string, unknown> => ({ userId: user.username, theme: 'dark', cart: ['apple', user.username] });

/**
 * The first request after the switch, on `first`: signed in at once, handed our cookie, told to
 * drop the old one on the path express-session set it. Then the session lives on, every field
 * included, with requests alternating between the two nodes. Returns our cookie.
 */
async function expectTakenOver(first: SampleNode, other: SampleNode, user: LegacyUser): Promise<string> {
  const res = await withOldCookie(first.http().get('/profile'), user.cookie);

  expect(res.status).toBe(200);
  expect(res.body).toEqual({ userId: user.username });
  const sid = requireSid(res, SAMPLE_COOKIE);
  const clearing = setCookieLine(res, LEGACY_COOKIE);
  expect(isClearing(clearing)).toBe(true);
  expect(cookieAttributes(clearing!).get('path')).toBe('/');

  await withSid(other.http().get('/session'), sid).expect(200, { data: fieldsOf(user) });
  await withSid(first.http().put('/prefs/lang'), sid).send({ value: 'fr' }).expect(200);
  await withSid(other.http().get('/session'), sid).expect(200, { data: { ...fieldsOf(user), 'pref:lang': 'fr' } });
  await withSid(first.http().get('/profile'), sid).expect(200, { userId: user.username });
  return sid;
}

/** The old cookie alone, after the takeover: anonymous on both nodes. */
async function expectOldCookieDead(nodes: readonly SampleNode[], user: LegacyUser): Promise<void> {
  for (const node of nodes) {
    const res = await withOldCookie(node.http().get('/profile'), user.cookie);
    expect({ user: user.username, status: res.status }).toEqual({ user: user.username, status: 401 });
  }
}

/**
 * Ten requests bring the same old cookie at once, spread over both nodes: one takes the session
 * over, the nine others are anonymous, nothing fails, and the user ends up with one session.
 */
async function expectOneTakeover(a: SampleNode, b: SampleNode, user: LegacyUser): Promise<void> {
  const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => withOldCookie((i % 2 === 0 ? a : b).http().get('/profile'), user.cookie)));

  expect(responses.map((res) => res.status).filter((status) => status >= 500)).toEqual([]);
  const winners = responses.filter((res) => sidFrom(res, SAMPLE_COOKIE));
  expect(winners).toHaveLength(1);
  const [winner] = winners;
  expect(winner.status).toBe(200);
  expect(winner.body).toEqual({ userId: user.username });
  expect(responses.filter((res) => res !== winner).map((res) => res.status)).toEqual(Array(9).fill(401));
  const sid = requireSid(winner, SAMPLE_COOKIE);
  for (const node of [a, b]) {
    const listed = await withSid(node.http().get('/auth/sessions'), sid).expect(200);
    expect(listed.body).toEqual([expect.objectContaining({ id: keyOf(sid), current: true })]);
  }
}

/** A request that must end anonymous: 401 on the guarded route (so no 5xx), and Object.prototype untouched. */
async function expectAnonymous(node: SampleNode, cookieHeaderValue: string, what: string): Promise<void> {
  const res = await node.http().get('/profile').set('Cookie', cookieHeaderValue);
  expect({ what, status: res.status }).toEqual({ what, status: 401 });
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
}

/** `session_migrated_total` as the node's GET /metrics reports it (all label sets summed). */
async function migratedTotal(node: SampleNode): Promise<number> {
  const res = await node.http().get('/metrics').expect(200);
  return res.text
    .split('\n')
    .filter((line) => /^session_migrated_total[{ ]/.test(line))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Collects the `migrated` events a node emits from now on. */
function recordMigrations(node: SampleNode): SessionEvent[] {
  const events: SessionEvent[] = [];
  node.app.get(SessionService).on('migrated', (event) => events.push(event));
  return events;
}

describe('Switching from express-session', () => {
  describe('on connect-redis: two sample nodes on the Redis the old deployment used', () => {
    let server: RedisServer;
    let old: ExpressSessionApp;
    let a: SampleNode;
    let b: SampleNode;
    let redis: Redis;
    let eventsOnA: SessionEvent[];
    let eventsOnB: SessionEvent[];
    /** Signed in on the old deployment before the switch. */
    let users: LegacyUser[];

    beforeAll(async () => {
      server = await startRedisServer();
      old = await startExpressSessionApp({ store: 'connect-redis', url: server.url });
      users = await old.signInMany(20, 'redis-user');
      const env = { SESSION_STORE: 'redis', REDIS_URL: server.url, SESSION_LEGACY: 'connect-redis', SESSION_LEGACY_SECRET: EXPRESS_SESSION_SECRET };
      [a, b] = await Promise.all([startSampleNode(env), startSampleNode(env)]);
      redis = raw.server(server);
      eventsOnA = recordMigrations(a);
      eventsOnB = recordMigrations(b);
    });

    afterAll(async () => {
      await a?.close();
      await b?.close();
      await old?.close();
      raw.closeAll();
      await server?.stop();
    });

    it('keeps 20 connect-redis users signed in with every field, their requests alternating between the nodes', async () => {
      // The old deployment really left them behind: a switch that found nothing would prove nothing.
      for (const user of users) expect(await redis.exists(`sess:${user.id}`)).toBe(1);
      await expect(old.sessionOf(users[0])).resolves.toEqual(fieldsOf(users[0]));

      for (const [n, user] of users.entries()) {
        const [first, other] = n % 2 === 0 ? [a, b] : [b, a];
        await expectTakenOver(first, other, user);
      }

      const left = await Promise.all(users.map((user) => redis.exists(`sess:${user.id}`)));
      expect(left).toEqual(Array(users.length).fill(0));
    });

    it('answers each old cookie replayed alone as anonymous, on both nodes', async () => {
      for (const user of users) await expectOldCookieDead([a, b], user);
    });

    it('reports the takeover on the node that did it: a "migrated" event with hashed ids, and session_migrated_total', async () => {
      const user = await old.signIn('counted');
      const [beforeA, beforeB] = [await migratedTotal(a), await migratedTotal(b)];
      const [startA, startB] = [eventsOnA.length, eventsOnB.length];

      const sid = requireSid(await withOldCookie(a.http().get('/profile'), user.cookie).expect(200));

      expect(eventsOnA.slice(startA)).toEqual([
        expect.objectContaining({ type: 'migrated', sessionId: hashSessionId(idOf(sid)), previousSessionId: hashSessionId(user.id) }),
      ]);
      const [event] = eventsOnA.slice(startA);
      // A listener that logs events must not log credentials.
      expect([event.sessionId, event.previousSessionId]).not.toContain(idOf(sid));
      expect([event.sessionId, event.previousSessionId]).not.toContain(user.id);
      expect(eventsOnB.slice(startB)).toEqual([]);
      expect((await migratedTotal(a)) - beforeA).toBe(1);
      expect((await migratedTotal(b)) - beforeB).toBe(0);
    });

    it('takes one old session over once when 10 requests bring its cookie at the same time to both nodes', async () => {
      const user = await old.signIn('racer');

      await expectOneTakeover(a, b, user);

      expect(await redis.exists(`sess:${user.id}`)).toBe(0);
      await expectOldCookieDead([a, b], user);
    });

    it('keeps a forged old cookie anonymous and leaves the genuine session it aimed at in place', async () => {
      const victim = await old.signIn('victim');
      const signed = decodeURIComponent(victim.cookie);
      const dot = signed.lastIndexOf('.');
      const flip = (text: string, at: number): string => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
      const forgeries: Array<[string, string]> = [
        ['tampered signature', flip(signed, signed.length - 5)],
        ['tampered id', flip(signed, 4)],
        ['signature cut short', signed.slice(0, -3)],
        ['no signature', signed.slice(0, dot)],
        ['signed with another secret', decodeURIComponent(legacyCookieFor(victim.id, 'not the secret'))],
        ['without the s: prefix', signed.slice(2)],
      ];

      for (const [what, value] of forgeries) {
        for (const node of [a, b]) await expectAnonymous(node, legacyCookieHeader(encodeURIComponent(value)), what);
      }

      // Nothing was consumed by a forgery: the owner of the cookie still gets in.
      expect(await redis.exists(`sess:${victim.id}`)).toBe(1);
      await expectTakenOver(b, a, victim);
    });

    it('keeps malformed old cookies anonymous', async () => {
      const malformed: Array<[string, string]> = [
        ['garbage', 'garbage'],
        ['bad URL encoding', 's%3A%E0%A4%A.abc'],
        ['the prefix alone', 's%3A'],
        ['a dot alone', 's%3A.'],
        ['an empty id, validly signed', legacyCookieFor('')],
        ['a very long value', `s%3A${'a'.repeat(10_000)}.${'b'.repeat(43)}`],
        ['control characters', encodeURIComponent(`s:\u0000\u0001.${'b'.repeat(43)}`)],
        ['an empty value', ''],
      ];

      for (const [what, value] of malformed) await expectAnonymous(a, legacyCookieHeader(value), what);
    });

    it('keeps a correctly signed cookie anonymous when its old session expired or never existed', async () => {
      const gone = await old.signIn('expired');
      // connect-redis lets Redis expire the key: an expired session is a missing key.
      await redis.del(`sess:${gone.id}`);

      await expectAnonymous(a, legacyCookieHeader(gone.cookie), 'expired');
      await expectAnonymous(b, legacyCookieHeader(legacyCookieFor(expressSessionId())), 'never existed');
    });

    it('keeps a correctly signed cookie anonymous when its old entry is not a JSON object, or holds __proto__ anywhere', async () => {
      // Redis holds any string; a json column refuses text that is not JSON.
      const entries: Array<[string, string]> = [['not JSON', '{"userId":"mallory",'], ...HOSTILE_JSON];

      for (const [n, [what, value]] of entries.entries()) {
        const id = expressSessionId();
        await redis.set(`sess:${id}`, value, 'EX', 3600);
        await expectAnonymous(n % 2 === 0 ? a : b, legacyCookieHeader(legacyCookieFor(id)), what);
      }

      // Not connect-redis's at all: another application's hash under a key that looks like one.
      const foreign = expressSessionId();
      await redis.hset(`sess:${foreign}`, { userId: 'mallory' });
      await expectAnonymous(a, legacyCookieHeader(legacyCookieFor(foreign)), 'a hash, not a string');
    });

    it('takes over a cookie signed with the second of two legacy secrets, and one signed with the first', async () => {
      const rotating = await startSampleNode({
        SESSION_STORE: 'redis',
        REDIS_URL: server.url,
        SESSION_LEGACY: 'connect-redis',
        SESSION_LEGACY_SECRET: `the newer secret,${EXPRESS_SESSION_SECRET}`,
      });
      try {
        // Signed by the old deployment with "keyboard cat", second in the list.
        const before = await old.signIn('rotation-old');
        await expectTakenOver(rotating, a, before);

        // Re-signed as express-session would once "the newer secret" came first.
        const after = await old.signIn('rotation-new');
        await expectTakenOver(rotating, b, { ...after, cookie: legacyCookieFor(after.id, 'the newer secret') });

        // Neither secret signs this one: the list adds secrets, it does not loosen the check.
        const third = await old.signIn('rotation-none');
        await expectAnonymous(rotating, legacyCookieHeader(legacyCookieFor(third.id, 'some other secret')), 'signed with neither secret');
      } finally {
        await rotating.close();
      }
    });

    it('reads an old deployment with its own cookie name and key prefix (SESSION_LEGACY_COOKIE, SESSION_LEGACY_PREFIX)', async () => {
      const custom = await startExpressSessionApp({ store: 'connect-redis', url: server.url, prefix: 'shop:' }, { cookieName: 'shop.sid' });
      const node = await startSampleNode({
        SESSION_STORE: 'redis',
        REDIS_URL: server.url,
        SESSION_LEGACY: 'connect-redis',
        SESSION_LEGACY_SECRET: EXPRESS_SESSION_SECRET,
        SESSION_LEGACY_COOKIE: 'shop.sid',
        SESSION_LEGACY_PREFIX: 'shop:',
      });
      try {
        const user = await custom.signIn('shopper');
        expect(await redis.exists(`shop:${user.id}`)).toBe(1);

        const res = await withOldCookie(node.http().get('/profile'), user.cookie, 'shop.sid');

        expect(res.status).toBe(200);
        expect(res.body).toEqual({ userId: 'shopper' });
        expect(isClearing(setCookieLine(res, 'shop.sid'))).toBe(true);
        await withSid(a.http().get('/session'), requireSid(res)).expect(200, { data: fieldsOf(user) });
        expect(await redis.exists(`shop:${user.id}`)).toBe(0);
      } finally {
        await node.close();
        await custom.close();
      }
    });
  });

  describe('on connect-pg-simple: two sample nodes on the database the old deployment used', () => {
    const TABLE = 'express_sessions';
    let server: PostgresServer;
    let old: ExpressSessionApp;
    let a: SampleNode;
    let b: SampleNode;
    let pool: pg.Pool;
    let users: LegacyUser[];

    /** How many of these old sessions still have a row. */
    const rowsOf = async (ids: string[]): Promise<number> =>
      Number((await pool.query(`SELECT count(*) AS n FROM ${TABLE} WHERE sid = ANY($1)`, [ids])).rows[0].n);

    beforeAll(async () => {
      server = await postgresForTests();
      old = await startExpressSessionApp({ store: 'connect-pg-simple', connectionString: server.url(), tableName: TABLE });
      users = await old.signInMany(20, 'pg-user');
      const env = {
        SESSION_STORE: 'postgres',
        DATABASE_URL: server.url(),
        SESSION_LEGACY: 'connect-pg-simple',
        SESSION_LEGACY_SECRET: EXPRESS_SESSION_SECRET,
        SESSION_LEGACY_TABLE: TABLE,
      };
      // One after the other: both would create the sample's own table at start-up.
      a = await startSampleNode(env);
      b = await startSampleNode(env);
      pool = new pg.Pool({ connectionString: server.url(), max: 2 });
      pool.on('error', () => undefined);
    });

    afterAll(async () => {
      await a?.close();
      await b?.close();
      await old?.close();
      await pool?.end();
      await server?.dispose();
    });

    it('keeps 20 connect-pg-simple users signed in with every field, their requests alternating between the nodes', async () => {
      expect(await rowsOf(users.map((user) => user.id))).toBe(20);
      await expect(old.sessionOf(users[0])).resolves.toEqual(fieldsOf(users[0]));

      for (const [n, user] of users.entries()) {
        const [first, other] = n % 2 === 0 ? [a, b] : [b, a];
        await expectTakenOver(first, other, user);
      }

      expect(await rowsOf(users.map((user) => user.id))).toBe(0);
    });

    it('answers each old cookie replayed alone as anonymous, on both nodes', async () => {
      for (const user of users) await expectOldCookieDead([a, b], user);
    });

    it('takes one old session over once when 10 requests bring its cookie at the same time to both nodes', async () => {
      const user = await old.signIn('pg-racer');

      await expectOneTakeover(a, b, user);

      expect(await rowsOf([user.id])).toBe(0);
    });

    it('keeps a correctly signed cookie anonymous when its row has expired', async () => {
      const user = await old.signIn('pg-expired');
      // connect-pg-simple leaves expired rows until its pruning runs; they are sessions no longer.
      await pool.query(`UPDATE ${TABLE} SET expire = now() - interval '1 hour' WHERE sid = $1`, [user.id]);

      await expectAnonymous(a, legacyCookieHeader(user.cookie), 'expired row');
      await expectAnonymous(b, legacyCookieHeader(legacyCookieFor(expressSessionId())), 'no row');
    });

    it('keeps a correctly signed cookie anonymous when its row is not a JSON object, or holds __proto__ anywhere', async () => {
      for (const [n, [what, value]] of HOSTILE_JSON.entries()) {
        const id = expressSessionId();
        await pool.query(`INSERT INTO ${TABLE} (sid, sess, expire) VALUES ($1, $2::json, now() + interval '1 day')`, [id, value]);
        await expectAnonymous(n % 2 === 0 ? a : b, legacyCookieHeader(legacyCookieFor(id)), what);
      }
    });
  });

  describe('with Passport: a user signed in through passport-local on the old deployment', () => {
    let server: RedisServer;
    let old: ExpressSessionApp;
    let app: FixtureApp;

    beforeAll(async () => {
      server = await startRedisServer();
      old = await startExpressSessionApp({ store: 'connect-redis', url: server.url });
      app = await createPassportApp({
        store: { type: 'redis', url: server.url },
        legacy: { store: 'connect-redis', secret: EXPRESS_SESSION_SECRET },
      });
    });

    afterAll(async () => {
      await app?.close();
      await old?.close();
      await server?.stop();
    });

    it('stays signed in on the Nest Passport app: req.user, the guard and the per-user index all see them', async () => {
      const user = await old.passportSignIn('ann');
      await expect(old.sessionOf(user)).resolves.toEqual({ passport: { user: 'ann' }, theme: 'dark' });

      const res = await withOldCookie(app.http().get('/profile'), user.cookie);

      expect(res.status).toBe(200);
      const sid = requireSid(res);
      expect(res.body).toEqual({ user: { id: 'ann', name: 'ANN' }, authenticated: true, sessionId: idOf(sid) });
      expect(isClearing(setCookieLine(res, LEGACY_COOKIE))).toBe(true);
      await withSid(app.http().get('/session'), sid).expect(200, { data: { passport: { user: 'ann' }, theme: 'dark' } });
      await expect(app.store.listByUser('ann')).resolves.toEqual([expect.objectContaining({ id: keyOf(sid) })]);
      await withOldCookie(app.http().get('/profile'), user.cookie).expect(401);
    });

    it('signs the migrated user out with req.logout() like any other session', async () => {
      const user = await old.passportSignIn('bob');
      const sid = requireSid(await withOldCookie(app.http().get('/profile'), user.cookie).expect(200));

      await withSid(app.http().post('/logout'), sid).expect(204);

      await withSid(app.http().get('/profile'), sid).expect(401);
      await withOldCookie(app.http().get('/profile'), user.cookie).expect(401);
    });
  });
});
