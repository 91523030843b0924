import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { MemoryStore, SessionIdSigner } from '../../lib/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import {
  closeAll,
  cookieAttributes,
  cookieHeader,
  CountingStore,
  createFixtureApp,
  dataOf,
  delay,
  FlakyStore,
  idOf,
  keyOf,
  OTHER_SECRET,
  PLATFORMS,
  requireSid,
  SECRET,
  setCookieLine,
  setCookies,
} from '../fixtures/index.js';
import type { FixtureApp, FixtureAppSetup } from '../fixtures/index.js';

/** Starts a session holding `fields` and returns its cookie value. */
async function sessionWith(app: FixtureApp, fields: Record<string, unknown>, cookieName = 'sid'): Promise<string> {
  const res = await app.http().post('/set').send(fields).expect(200);
  return requireSid(res, cookieName);
}

describe.each(PLATFORMS)('request pipeline (%s)', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  async function start(options: Partial<SessionModuleOptions> = {}, setup?: FixtureAppSetup): Promise<FixtureApp> {
    const app = await createFixtureApp(options, { ...setup, platform });
    apps.push(app);
    return app;
  }

  describe('session cookie', () => {
    it('is HttpOnly, SameSite=Lax, Path=/ and not Secure over plain http', async () => {
      const app = await start();

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      const line = setCookieLine(res);
      expect(line).toBeDefined();
      const attributes = cookieAttributes(line!);
      expect(attributes.has('httponly')).toBe(true);
      expect(attributes.get('samesite')?.toLowerCase()).toBe('lax');
      expect(attributes.get('path')).toBe('/');
      expect(attributes.has('secure')).toBe(false);
    });

    it('comes with Cache-Control: no-store on the response that sets it', async () => {
      const app = await start();

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      expect(setCookieLine(res)).toBeDefined();
      expect(res.headers['cache-control']).toBe('no-store');
    });

    // OWASP: a response for a signed-in user may hold personal data; no cache may keep it.
    it('puts Cache-Control: no-store on every response to a signed-in session, reads included (noStoreWhenSignedIn, on by default)', async () => {
      const app = await start();
      const signedIn = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      const anonymous = requireSid(await app.http().post('/set').send({ a: 1 }).expect(200));

      const read = await app.http().get('/guarded').set('Cookie', cookieHeader(signedIn)).expect(200);
      const ping = await app.http().get('/ping').set('Cookie', cookieHeader(signedIn)).expect(200);
      const anonymousRead = await app.http().get('/read').set('Cookie', cookieHeader(anonymous)).expect(200);

      expect(setCookieLine(read)).toBeUndefined();
      expect(read.headers['cache-control']).toBe('no-store');
      expect(ping.headers['cache-control']).toBe('no-store');
      expect(anonymousRead.headers['cache-control']).toBeUndefined();
    });

    it('leaves the caching of signed-in reads to the application with noStoreWhenSignedIn: false', async () => {
      const app = await start({ noStoreWhenSignedIn: false });
      const signedIn = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));

      const read = await app.http().get('/guarded').set('Cookie', cookieHeader(signedIn)).expect(200);

      expect(read.headers['cache-control']).toBeUndefined();
    });

    it("is added to the cookies the application sets, and its Cache-Control: no-store wins over the application's", async () => {
      const app = await start();

      const res = await app.http().post('/with-headers').send({ a: 1 }).expect(200);

      expect(setCookies(res)).toEqual([expect.stringMatching(/^theme=dark;/), expect.stringMatching(/^sid=/)]);
      expect(res.headers['cache-control']).toBe('no-store');
      await expect(dataOf(app, requireSid(res))).resolves.toEqual({ a: 1 });
    });

    it('is added to a cookie the route passes to writeHead in a raw header list', async () => {
      const app = await start();

      const res = await app.http().post('/raw-header-list').send({ a: 1 }).expect(200);

      expect(res.text).toBe('done');
      expect(res.headers['content-type']).toBe('text/plain');
      expect(setCookies(res)).toEqual([expect.stringMatching(/^theme=dark;/), expect.stringMatching(/^sid=/)]);
      await expect(dataOf(app, requireSid(res))).resolves.toEqual({ a: 1 });
    });

    it("leaves the application's headers alone on a response that hands out no credential", async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().post('/with-headers').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).expect(200);

      expect(setCookies(res)).toEqual(['theme=dark; Path=/']);
      expect(res.headers['cache-control']).toBe('public, max-age=60');
      await expect(dataOf(app, cookie)).resolves.toEqual({ a: 1, b: 2 });
    });

    it('carries the signed id: id.signature', async () => {
      const app = await start();

      const cookie = await sessionWith(app, { a: 1 });

      expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    });

    // Trusting the proxies on this host by address, as the README's TLS-terminating proxy recipe does.
    it('with secure: "auto" and trust proxy, is Secure behind a proxy that says X-Forwarded-Proto: https', async () => {
      const app = await start({}, { trustProxy: 'loopback' });

      const res = await app.http().post('/set').set('X-Forwarded-Proto', 'https').send({ a: 1 }).expect(200);

      expect(cookieAttributes(setCookieLine(res)!).has('secure')).toBe(true);
    });

    it('with secure: "auto" and trust proxy, is not Secure when the proxy says plain http', async () => {
      const app = await start({}, { trustProxy: 'loopback' });

      const res = await app.http().post('/set').set('X-Forwarded-Proto', 'http').send({ a: 1 }).expect(200);

      expect(cookieAttributes(setCookieLine(res)!).has('secure')).toBe(false);
    });

    it('with secure: "auto" and no trust proxy, ignores X-Forwarded-Proto (not Secure)', async () => {
      const app = await start();

      const res = await app.http().post('/set').set('X-Forwarded-Proto', 'https').send({ a: 1 }).expect(200);

      expect(cookieAttributes(setCookieLine(res)!).has('secure')).toBe(false);
    });

    it('with secure: true, is always Secure', async () => {
      const app = await start({ cookie: { secure: true } });

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      expect(cookieAttributes(setCookieLine(res)!).has('secure')).toBe(true);
    });

    it('uses a custom cookie name, and ignores a cookie under the default name', async () => {
      const app = await start({ cookie: { name: 'app_sid' } });

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      expect(setCookieLine(res, 'sid')).toBeUndefined();
      const cookie = requireSid(res, 'app_sid');
      expect(await dataOf(app, cookie, 'app_sid')).toEqual({ a: 1 });
      expect(await dataOf(app, cookie, 'sid')).toEqual({});
    });

    it('with cookie.maxAge, carries Max-Age', async () => {
      const app = await start({ cookie: { maxAge: '1h' } });

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      expect(cookieAttributes(setCookieLine(res)!).get('max-age')).toBe('3600');
    });

    it('is set by a route that streams its response (StreamableFile), and the session holds the write', async () => {
      const app = await start();

      const res = await app.http().post('/stream').send({ a: 1 }).buffer(true).expect(200);

      expect(res.text).toBe('streamed body');
      const cookie = requireSid(res);
      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
    });

    it('is set by a route that calls writeHead itself and writes its body in many chunks, and the session holds the write', async () => {
      const app = await start();

      const res = await app.http().post('/raw').send({ a: 1 }).buffer(true).expect(200);

      expect(res.text).toBe(`${'x'.repeat(64 * 1024)}end`);
      expect(res.headers['content-type']).toBe('text/plain');
      const cookie = requireSid(res);
      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
    });

    it('is not sent back on a request that neither changes nor rotates the session', async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200);

      expect(setCookies(res)).toEqual([]);
    });
  });

  describe('minimal store I/O (SPEC §3.3, §3.5)', () => {
    it('makes no store call for a request without a cookie', async () => {
      const store = new CountingStore();
      const app = await start({ store });

      await app.http().get('/read').expect(200);
      await app.http().get('/ping').expect(200);
      await app.http().get('/guarded').expect(401);

      expect(store.calls).toEqual({ get: 0, create: 0, commit: 0, touch: 0, rotate: 0, destroy: 0 });
    });

    it('rejects a bad signature without touching the store, and the request is anonymous', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      const last = cookie.at(-1) === 'A' ? 'B' : 'A';
      store.reset();

      const data = await dataOf(app, cookie.slice(0, -1) + last);

      expect(data).toEqual({});
      expect(store.total).toBe(0);
    });

    it('rejects an id signed with a secret it does not know, without touching the store', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();

      const forged = new SessionIdSigner([OTHER_SECRET]).sign(idOf(cookie));
      const data = await dataOf(app, forged);

      expect(data).toEqual({});
      expect(store.total).toBe(0);
    });

    it('costs one store read and no write for a request that only reads', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();

      const data = await dataOf(app, cookie);

      expect(data).toEqual({ a: 1 });
      expect(store.calls).toEqual({ get: 1, create: 0, commit: 0, touch: 0, rotate: 0, destroy: 0 });
    });

    it('costs one read and one delta commit for a request that changes a field', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();

      await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).expect(200);

      expect(store.calls).toEqual({ get: 1, create: 0, commit: 1, touch: 0, rotate: 0, destroy: 0 });
    });

    it('neither stores nor sends a cookie for a session nobody wrote to (saveUninitialized: false)', async () => {
      const store = new CountingStore();
      const app = await start({ store });

      const res = await app.http().get('/read').expect(200);

      expect(setCookies(res)).toEqual([]);
      expect(store.size).toBe(0);
    });
  });

  describe('bad cookies (SPEC §3.6)', () => {
    /** A valid signed value to mangle. */
    const validCookie = () => new SessionIdSigner([SECRET]).sign('A'.repeat(43));

    const cases: Array<[string, () => string]> = [
      ['a tampered id', () => 'B' + validCookie().slice(1)],
      ['a truncated value', () => validCookie().slice(0, 60)],
      ['an id without a signature', () => 'A'.repeat(43)],
      ['an oversized (8 KB) value', () => 'a'.repeat(8 * 1024)],
      ['an 8 KB value that starts with a valid cookie', () => validCookie() + 'x'.repeat(8 * 1024)],
      ['"%%%"', () => '%%%'],
      ['an empty value', () => ''],
      ['percent-encoded unicode', () => encodeURIComponent('sïd-✓-😀')],
      ['raw latin-1 bytes', () => 'ÿéü'],
      ['an express-session "s:" value', () => `s:${validCookie()}`],
      ['an encoded express-session "s%3A" value', () => `s%3A${encodeURIComponent(validCookie())}`],
      ['a path-traversal shape', () => '..%2F..%2Fetc%2Fpasswd.' + 'A'.repeat(43)],
      ['a __proto__ value', () => '__proto__'],
      ['quotes and separators', () => '"a,b;c\\d"'],
    ];

    it.each(cases)('treats %s as anonymous, without touching the store, never 5xx', async (_case, value) => {
      const store = new CountingStore();
      const app = await start({ store });

      const res = await app.http().get('/read').set('Cookie', `sid=${value()}`);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: {}, isNew: true });
      expect(store.total).toBe(0);
    });

    it.each(cases)('starts a fresh session when a request with %s writes', async (_case, value) => {
      const app = await start();

      const res = await app.http().post('/set').set('Cookie', `sid=${value()}`).send({ a: 1 });

      expect(res.status).toBe(200);
      expect(await dataOf(app, requireSid(res))).toEqual({ a: 1 });
    });

    it('reads the right cookie among others, and ignores a look-alike name', async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().get('/read').set('Cookie', `xsid=garbage; theme=dark; sid=${cookie}; other=1`).expect(200);

      expect(res.body.data).toEqual({ a: 1 });
    });
  });

  describe('idle timeout (sliding expiry)', () => {
    it('ends a session unused for longer than idleTimeout', async () => {
      const app = await start({ idleTimeout: 400, touchAfter: 50 });
      const cookie = await sessionWith(app, { a: 1 });

      await delay(550);

      expect(await dataOf(app, cookie)).toEqual({});
    });

    it('keeps a session alive while it is used, even read-only, past idleTimeout in total', async () => {
      const app = await start({ idleTimeout: 400, touchAfter: 50 });
      const cookie = await sessionWith(app, { a: 1 });

      for (let i = 0; i < 3; i += 1) {
        await delay(250);
        expect(await dataOf(app, cookie)).toEqual({ a: 1 });
      }
    });
  });

  describe('absolute timeout', () => {
    it('ends a session absoluteTimeout after creation, however steady the activity', async () => {
      const app = await start({ idleTimeout: 500, absoluteTimeout: 600, touchAfter: 50 });
      const beforeCreate = Date.now();
      const cookie = await sessionWith(app, { a: 1 });
      const afterCreate = Date.now();

      const seen: Array<{ sentAt: number; doneAt: number; alive: boolean }> = [];
      while (Date.now() < afterCreate + 900) {
        await delay(150);
        const sentAt = Date.now();
        const data = await dataOf(app, cookie);
        seen.push({ sentAt, doneAt: Date.now(), alive: 'a' in data });
      }

      // Every 150 ms is well within the 500 ms idle timeout: only the absolute limit can end it.
      const surelyBefore = seen.filter((s) => s.doneAt < beforeCreate + 600);
      const surelyAfter = seen.filter((s) => s.sentAt > afterCreate + 600);
      expect(surelyBefore.length).toBeGreaterThan(0);
      expect(surelyAfter.length).toBeGreaterThan(0);
      expect(surelyBefore.every((s) => s.alive)).toBe(true);
      expect(surelyAfter.every((s) => !s.alive)).toBe(true);
    });
  });

  describe('touch throttling', () => {
    it('refreshes an unmodified session at most once per touchAfter', async () => {
      const store = new CountingStore();
      const app = await start({ store, idleTimeout: 5000, touchAfter: 300 });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();

      for (let i = 0; i < 10; i += 1) await dataOf(app, cookie);
      const touchesAfterBurst = store.calls.touch;
      expect(touchesAfterBurst).toBeLessThanOrEqual(1);

      await delay(400);
      await dataOf(app, cookie);

      expect(store.calls.touch).toBe(touchesAfterBurst + 1);
      expect(store.calls.commit).toBe(0);
      expect(store.calls.get).toBe(11);
    });
  });

  describe('read-your-writes (SPEC §3.1)', () => {
    it('sends the response only after the store acknowledged the new session', async () => {
      const store = new CountingStore();
      store.commitDelay = 100;
      const app = await start({ store });

      const res = await app.http().post('/set').send({ a: 1 }).expect(200);

      expect(store.completedWrites).toBe(1);
      expect(await dataOf(app, requireSid(res))).toEqual({ a: 1 });
    });

    it('commits a change made by a route that streams its response before the response completes', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();
      store.commitDelay = 100;

      await app.http().post('/stream').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).buffer(true).expect(200);

      expect(store.completedWrites).toBe(1);
      expect(await dataOf(app, cookie)).toEqual({ a: 1, b: 2 });
    });

    it('sends the response only after the store acknowledged the change, so the next request sees it', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.reset();
      store.commitDelay = 100;

      await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).expect(200);

      expect(store.completedWrites).toBe(1);
      expect(await dataOf(app, cookie)).toEqual({ a: 1, b: 2 });
    });
  });

  describe('concurrent requests on one session', () => {
    it('keeps every field when 20 requests each change a different field at once', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { base: true });
      // Slow writes: every request has read the session before any of them writes.
      store.commitDelay = 50;

      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => app.http().post(`/field/f${i}/v${i}`).set('Cookie', cookieHeader(cookie))),
      );

      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
      const expected: Record<string, unknown> = { base: true };
      for (let i = 0; i < 20; i += 1) expected[`f${i}`] = `v${i}`;
      expect(await dataOf(app, cookie)).toEqual(expected);
    });

    it('keeps a destroyed session dead when a slow write races the logout', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.commitDelay = 200;

      const write: Promise<Response> = app
        .http()
        .post('/set')
        .set('Cookie', cookieHeader(cookie))
        .send({ b: 2 })
        .then((r) => r);
      await delay(50);
      await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).expect(204);
      const written = await write;

      expect(written.status).toBeLessThan(500);
      expect(await store.get(keyOf(cookie))).toBeNull();
      expect(await dataOf(app, cookie)).toEqual({});
    });

    it('keeps a session dead when a write races a revoke made directly on the store', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const login = await app.http().post('/login').send({ userId: 'u1' }).expect(200);
      const cookie = requireSid(login);
      store.commitDelay = 200;

      const write: Promise<Response> = app
        .http()
        .post('/set')
        .set('Cookie', cookieHeader(cookie))
        .send({ b: 2 })
        .then((r) => r);
      await delay(50);
      expect(await store.destroyByUser('u1')).toEqual([keyOf(cookie)]);
      await write;

      expect(await store.get(keyOf(cookie))).toBeNull();
      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(401);
    });
  });

  describe('secret rotation', () => {
    it('accepts a cookie signed with the old secret after a restart with [new, old], and signs new cookies with the new one', async () => {
      // Sessions outlive the restarts: every app generation shares one store.
      const store = new MemoryStore();

      const before = await start({ secret: SECRET, store });
      const oldCookie = await sessionWith(before, { gen: 1 });
      await closeAll(apps);

      const rotating = await start({ secret: [OTHER_SECRET, SECRET], store });
      expect(await dataOf(rotating, oldCookie)).toEqual({ gen: 1 });
      const newCookie = await sessionWith(rotating, { gen: 2 });
      expect(newCookie).toBe(new SessionIdSigner([OTHER_SECRET]).sign(idOf(newCookie)));
      await closeAll(apps);

      // Once the old secret is retired, only cookies signed with the new one still work.
      const after = await start({ secret: [OTHER_SECRET], store });
      expect(await dataOf(after, newCookie)).toEqual({ gen: 2 });
      expect(await store.get(keyOf(oldCookie))).not.toBeNull();
      expect(await dataOf(after, oldCookie)).toEqual({});
    });

    it('hands a cookie signed with a retiring secret out again, signed with the newest, even on a read', async () => {
      const store = new MemoryStore();
      const before = await start({ secret: SECRET, store });
      const oldCookie = await sessionWith(before, { gen: 1 });
      const rotating = await start({ secret: [OTHER_SECRET, SECRET], store });

      const res = await rotating.http().get('/read').set('Cookie', cookieHeader(oldCookie)).expect(200);

      const renewed = requireSid(res);
      expect(renewed).toBe(new SessionIdSigner([OTHER_SECRET]).sign(idOf(oldCookie)));
      const again = await rotating.http().get('/read').set('Cookie', cookieHeader(renewed)).expect(200);
      expect(setCookieLine(again)).toBeUndefined();
    });
  });

  describe('store outage (SPEC §3.7)', () => {
    /** Fails the test instead of hanging if the app does not answer. */
    const BOUND = { response: 3000, deadline: 3000 };

    it('answers 503 with a clear JSON message to a request that reads the session, without hanging', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.down = true;

      const res = await app.http().get('/read').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      expect(res.body).toMatchObject({ statusCode: 503, message: expect.stringMatching(/session store .* not answering/i) });
    });

    it('answers 503 to a request that writes a new session while the store is down', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      store.down = true;

      const res = await app.http().post('/set').send({ a: 1 }).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ statusCode: 503, message: expect.stringMatching(/session store/i) });
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('answers 503 instead of a half-sent body when a streaming route writes a session the store cannot take', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      store.down = true;

      for (const route of ['/stream', '/raw']) {
        const res = await app.http().post(route).send({ a: 1 }).buffer(true).timeout(BOUND);

        expect(res.status).toBe(503);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(res.body).toMatchObject({ statusCode: 503, code: 'SESSION_STORE_UNAVAILABLE' });
        expect(setCookieLine(res)).toBeUndefined();
      }
    });

    it('answers 503, not 401, on a guarded route while the store is down', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      store.down = true;

      const res = await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(503);
    });

    it('keeps serving routes that do not use the session, even with a session cookie', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.down = true;

      const res = await app.http().get('/ping').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ pong: true });
    });

    it('answers 503 within storeTimeout when the store hangs on the read, instead of holding the request', async () => {
      const store = new FlakyStore();
      const app = await start({ store, storeTimeout: 200 });
      const cookie = await sessionWith(app, { a: 1 });
      store.hanging = true;

      const res = await app.http().get('/read').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ statusCode: 503, code: 'SESSION_STORE_UNAVAILABLE' });
    });

    // SPEC §3.13: storeTimeout bounds the store work of the whole request, not each call: a read
    // and a commit that each stay under it but together pass it make a 503.
    it('answers 503 when the read and the commit together take longer than storeTimeout, each within it', async () => {
      const store = new CountingStore();
      const app = await start({ store, storeTimeout: 400 });
      const cookie = await sessionWith(app, { a: 1 });
      const read = store.get.bind(store);
      store.get = async (id: string) => {
        await new Promise((resolve) => setTimeout(resolve, 250));
        return read(id);
      };
      store.commitDelay = 250;

      const res = await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE', message: expect.stringContaining('within 400 ms') });
    });

    it('answers 503 within storeTimeout when the store hangs on the commit, and sets no cookie', async () => {
      const store = new FlakyStore();
      const app = await start({ store, storeTimeout: 200 });
      store.hanging = true;

      const res = await app.http().post('/set').send({ a: 1 }).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('answers 503, not 500, when a logout cannot reach the store', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      const id = keyOf(cookie);
      // The load succeeds; the store fails only for destroy(), as it would mid-request.
      const logout = app.http().post('/logout').set('Cookie', cookieHeader(cookie)).timeout(BOUND);
      const failing = store.destroy.bind(store);
      store.destroy = async (sessionId: string) => {
        store.down = true;
        try {
          return await failing(sessionId);
        } finally {
          store.down = false;
        }
      };

      const res = await logout;

      expect(res.status).toBe(503);
      expect(await store.get(id)).not.toBeNull();
    });

    it('answers 503, not 500, when a logout waits on the store past storeTimeout', async () => {
      const store = new FlakyStore();
      const app = await start({ store, storeTimeout: 200 });
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      // The load succeeds; only destroy() hangs, so the bound on store calls is what answers.
      store.destroy = () => new Promise<void>(() => undefined);

      const res = await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({
        code: 'SESSION_STORE_UNAVAILABLE',
        message: expect.stringContaining('destroy() did not answer within 200 ms'),
      });
    });

    it('answers 503 from SessionService when the store is down', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      store.down = true;
      const original = store.get.bind(store);
      // Let the session load so the request reaches the service, which then meets the outage.
      store.get = async (sessionId: string) => {
        store.down = false;
        try {
          return await original(sessionId);
        } finally {
          store.down = true;
        }
      };

      const res = await app.http().get('/sessions').set('Cookie', cookieHeader(cookie)).timeout(BOUND);

      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE' });
    });

    it('resumes by itself when the store comes back, with the session intact', async () => {
      const store = new FlakyStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });
      store.down = true;
      await app.http().get('/read').set('Cookie', cookieHeader(cookie)).timeout(BOUND).expect(503);

      store.down = false;

      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
      await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ b: 2 }).expect(200);
      expect(await dataOf(app, cookie)).toEqual({ a: 1, b: 2 });
    });
  });

  describe('the Session object', () => {
    it('gives one field through @Session("userId")', async () => {
      const app = await start();
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u42' }).expect(200));

      const signedIn = await app.http().get('/me').set('Cookie', cookieHeader(cookie)).expect(200);
      const anonymous = await app.http().get('/me').expect(200);

      expect(signedIn.body).toEqual({ userId: 'u42' });
      expect(anonymous.body).toEqual({ userId: null });
    });

    it('lets SessionGuard through only a signed-in session', async () => {
      const app = await start();
      const anonymous = await sessionWith(app, { a: 1 });
      const signedIn = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));

      const denied = await app.http().get('/guarded').set('Cookie', cookieHeader(anonymous)).expect(401);
      await app.http().get('/guarded').set('Cookie', cookieHeader(signedIn)).expect(200, { userId: 'u1' });

      expect(denied.body).toMatchObject({ statusCode: 401, code: 'SESSION_NOT_SIGNED_IN', message: expect.any(String) });
    });

    it('rotates the id on rotateId(): new cookie, same data, the old id dead once the response is sent', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const before = await sessionWith(app, { cart: [1, 2] });

      const res = await app.http().post('/login').set('Cookie', cookieHeader(before)).send({ userId: 'u1' }).expect(200);

      const after = requireSid(res);
      expect(after).not.toBe(before);
      expect(await store.get(keyOf(before))).toBeNull();
      expect(await dataOf(app, after)).toEqual({ cart: [1, 2], userId: 'u1' });
      expect(await dataOf(app, before)).toEqual({});
    });

    it("supports Passport's flow: regenerate(cb), set the user, save(cb)", async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const before = await sessionWith(app, { cart: [1] });

      const res = await app.http().post('/passport-login').set('Cookie', cookieHeader(before)).send({ user: 'u7' }).expect(200);

      expect(res.body).toEqual({ ok: true });
      const after = requireSid(res);
      expect(after).not.toBe(before);
      // regenerate() is express-session's: a new id and empty data, the old session destroyed.
      expect(await dataOf(app, after)).toEqual({ passport: { user: 'u7' } });
      expect(await dataOf(app, before)).toEqual({});
      expect(await store.get(keyOf(before))).toBeNull();
    });

    it("supports Passport's flow on a request without a session", async () => {
      const app = await start();

      const res = await app.http().post('/passport-login').send({ user: 'u8' }).expect(200);

      expect(await dataOf(app, requireSid(res))).toEqual({ passport: { user: 'u8' } });
    });

    it('destroys the session on logout and clears the cookie', async () => {
      const store = new CountingStore();
      const app = await start({ store });
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).expect(204);

      expect(setCookieLine(res)).toMatch(/^sid=;/);
      expect(await store.get(keyOf(cookie))).toBeNull();
    });
  });

  describe('values JSON cannot carry (SPEC §3.13)', () => {
    it('answers 400 SESSION_FIELD_NOT_JSON to a value nested too deep to serialise, and keeps the session as it was', async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });
      // Parsed fine by the body parser; too deep for JSON.stringify when the session is written.
      const depth = 20_000;
      const body = `{"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`;

      const res = await app.http().post('/set').set('Cookie', cookieHeader(cookie)).set('Content-Type', 'application/json').send(body);

      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'SESSION_FIELD_NOT_JSON' });
      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
    });
  });

  describe('reserved field names (SPEC §2, §3.6)', () => {
    // SPEC §2: writing a reserved name is an error; §3.6: a __proto__ key gets a clear 4xx or a
    // fresh anonymous session, never a 500. Either way the session and every prototype are intact.

    it('answers a clear 4xx when a handler writes a data field named like a method (session.save = 1)', async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().post('/reserved/save').set('Cookie', cookieHeader(cookie));

      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.text).toMatch(/\bsave\b.*\breserved\b/);
      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
    });

    it('answers a clear 4xx when a handler writes session["__proto__"], and pollutes no prototype', async () => {
      const app = await start();
      const cookie = await sessionWith(app, { a: 1 });

      const res = await app.http().post('/reserved/proto').set('Cookie', cookieHeader(cookie));

      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(await dataOf(app, cookie)).toEqual({ a: 1 });
    });

    it.each(['__proto__', 'constructor', 'prototype'])(
      'never answers 5xx to a JSON body key %s copied into the session, and pollutes no prototype',
      async (key) => {
        const app = await start();
        const cookie = await sessionWith(app, { a: 1 });

        const res = await app
          .http()
          .post('/set')
          .set('Cookie', cookieHeader(cookie))
          .set('Content-Type', 'application/json')
          .send(`{"${key}": {"polluted": true}}`);

        expect(res.status).toBeLessThan(500);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(await dataOf(app, cookie)).toEqual({ a: 1 });
      },
    );
  });
});
