import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { SessionModuleOptions } from '../../lib/index.js';
import {
  bearer,
  closeAll,
  cookieHeader,
  CountingStore,
  createFixtureApp,
  PLATFORMS,
  requireSid,
  requireToken,
  setCookieLine,
  tokenOf,
} from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * The header transport (`transport: 'header' | 'both'`): API clients send
 * `Authorization: Bearer <token>` and receive new or rotated tokens in `X-Session-Token`; the
 * guard and `@Session()` work the same; logout makes a server-side token unusable.
 */
describe.each(PLATFORMS)('on %s', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  async function start(options: Partial<SessionModuleOptions>): Promise<FixtureApp> {
    const app = await createFixtureApp(options, { platform });
    apps.push(app);
    return app;
  }

  describe("transport: 'header'", () => {
    it('returns the token in X-Session-Token on sign-in, with Cache-Control: no-store and no cookie', async () => {
      const app = await start({ transport: 'header' });

      const res = await app.http().post('/login').send({ userId: 'api-user' }).expect(200);

      expect(requireToken(res)).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('signs the client in through Authorization: Bearer, for the guard and for @Session()', async () => {
      const app = await start({ transport: 'header' });
      const token = requireToken(await app.http().post('/login').send({ userId: 'api-user' }).expect(200));

      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'api-user' });
      await app.http().get('/me').set('Authorization', `bearer  ${token}`).expect(200, { userId: 'api-user' });
    });

    it('sends no token back on a request that neither creates nor rotates the session', async () => {
      const app = await start({ transport: 'header' });
      const token = requireToken(await app.http().post('/login').send({ userId: 'api-user' }).expect(200));

      const res = await app.http().post('/set').set('Authorization', bearer(token)).send({ theme: 'dark' }).expect(200);

      expect(tokenOf(res)).toBeUndefined();
    });

    it('hands out a new token on rotation, and the old one is dead', async () => {
      const app = await start({ transport: 'header' });
      const before = requireToken(
        await app
          .http()
          .post('/set')
          .send({ cart: [1] })
          .expect(200),
      );

      const after = requireToken(await app.http().post('/login').set('Authorization', bearer(before)).send({ userId: 'u1' }).expect(200));

      expect(after).not.toBe(before);
      await app.http().get('/guarded').set('Authorization', bearer(after)).expect(200);
      const old = await app.http().get('/read').set('Authorization', bearer(before)).expect(200);
      expect(old.body.data).toEqual({});
    });

    it('makes the token unusable on logout, and tells the client to drop it (an empty X-Session-Token)', async () => {
      const app = await start({ transport: 'header' });
      const token = requireToken(await app.http().post('/login').send({ userId: 'api-user' }).expect(200));

      const logout = await app.http().post('/logout').set('Authorization', bearer(token)).expect(204);

      expect(tokenOf(logout)).toBe('');
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(401);
    });

    it('ignores a session cookie', async () => {
      const app = await start({ transport: 'header', cookie: { name: 'sid' } });
      const token = requireToken(await app.http().post('/login').send({ userId: 'api-user' }).expect(200));

      await app.http().get('/guarded').set('Cookie', cookieHeader(token)).expect(401);
    });

    it.each([
      ['another scheme', (t: string) => `Basic ${t}`],
      ['no token', () => 'Bearer'],
      ['a tampered signature', (t: string) => bearer(`${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`)],
      ['a truncated token', (t: string) => bearer(t.slice(0, 50))],
      ['an oversized token', () => bearer('a'.repeat(8192))],
      ['two tokens', (t: string) => `Bearer ${t} ${t}`],
      ['garbage', () => 'Bearer %%%\u00ff'],
    ])('treats %s as anonymous without touching the store, never 5xx', async (_what, header) => {
      const store = new CountingStore();
      const app = await start({ transport: 'header', store });
      const token = requireToken(await app.http().post('/login').send({ userId: 'api-user' }).expect(200));
      store.reset();

      const guarded = await app.http().get('/guarded').set('Authorization', header(token));
      const read = await app.http().get('/read').set('Authorization', header(token));

      expect(guarded.status).toBe(401);
      expect(read.status).toBe(200);
      expect(read.body.data).toEqual({});
      expect(store.calls.get).toBe(0);
    });
  });

  describe("transport: 'both'", () => {
    it('hands a new session out both as a cookie and as a token', async () => {
      const app = await start({ transport: 'both' });

      const res = await app.http().post('/login').send({ userId: 'u1' }).expect(200);

      expect(requireToken(res)).toBe(requireSid(res));
    });

    it('accepts either the cookie or the bearer token', async () => {
      const app = await start({ transport: 'both' });
      const token = requireToken(await app.http().post('/login').send({ userId: 'u1' }).expect(200));

      await app.http().get('/guarded').set('Cookie', cookieHeader(token)).expect(200, { userId: 'u1' });
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'u1' });
    });

    // A credential goes out only on the channel the request came in on (SPEC §2): a browser
    // holding the HttpOnly cookie never receives a token a page script could read and replay.
    it('answers a request that came with the cookie on the cookie alone, even when it rotates the session', async () => {
      const app = await start({ transport: 'both' });
      const anonymous = requireSid(await app.http().post('/set').send({ visits: 1 }).expect(200));

      const login = await app.http().post('/login').set('Cookie', cookieHeader(anonymous)).send({ userId: 'u1' }).expect(200);
      const rotated = requireSid(login);
      const logout = await app.http().post('/logout').set('Cookie', cookieHeader(rotated)).expect(204);

      expect(tokenOf(login)).toBeUndefined();
      expect(rotated).not.toBe(anonymous);
      expect(setCookieLine(logout)).toMatch(/^sid=;/);
      expect(tokenOf(logout)).toBeUndefined();
    });

    it('answers a request that came with a bearer token on the header alone, even when it rotates the session', async () => {
      const app = await start({ transport: 'both' });
      const token = requireToken(await app.http().post('/login').send({ userId: 'u1' }).expect(200));

      const login = await app.http().post('/login').set('Authorization', bearer(token)).send({ userId: 'u2' }).expect(200);
      const logout = await app
        .http()
        .post('/logout')
        .set('Authorization', bearer(requireToken(login)))
        .expect(204);

      expect(requireToken(login)).not.toBe(token);
      expect(setCookieLine(login)).toBeUndefined();
      expect(tokenOf(logout)).toBe('');
      expect(setCookieLine(logout)).toBeUndefined();
    });

    it('keeps to the channel of a credential that no longer opens: a stale cookie signing in again gets a cookie only', async () => {
      const app = await start({ transport: 'both' });
      const old = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      await app.http().post('/logout').set('Cookie', cookieHeader(old)).expect(204);

      const again = await app.http().post('/login').set('Cookie', cookieHeader(old)).send({ userId: 'u1' }).expect(200);

      expect(requireSid(again)).not.toBe(old);
      expect(tokenOf(again)).toBeUndefined();
    });

    // A page script can plant a cookie that shadows the real one (a longer Path is sent first), or
    // a client can send one the server cannot use: the request still came in on the cookie.
    it.each([
      ['oversized and planted before the real one', (real: string) => `sid=${'A'.repeat(88)}; sid=${real}`],
      ['quoted', (real: string) => `sid="${real}"`],
      ['garbage', () => 'sid=%%%'],
    ])('answers a request whose session cookie cannot be used (%s) on the cookie alone', async (_what, cookie) => {
      const app = await start({ transport: 'both' });
      const real = requireSid(await app.http().post('/set').send({ a: 1 }).expect(200));

      const login = await app.http().post('/login').set('Cookie', cookie(real)).send({ userId: 'u1' }).expect(200);

      expect(requireSid(login)).toBeDefined();
      expect(tokenOf(login)).toBeUndefined();
    });

    it.each([
      ['oversized', () => `Bearer ${'A'.repeat(5_000)}`],
      ['garbage', () => 'Bearer %%%'],
    ])('answers a request whose bearer token cannot be used (%s) on the header alone', async (_what, authorization) => {
      const app = await start({ transport: 'both' });

      const login = await app.http().post('/login').set('Authorization', authorization()).send({ userId: 'u1' }).expect(200);

      expect(requireToken(login)).toBeDefined();
      expect(setCookieLine(login)).toBeUndefined();
    });

    it('uses the Authorization header when a request carries both (the documented rule)', async () => {
      const app = await start({ transport: 'both' });
      const cookieUser = requireToken(await app.http().post('/login').send({ userId: 'cookie-user' }).expect(200));
      const headerUser = requireToken(await app.http().post('/login').send({ userId: 'header-user' }).expect(200));

      await app
        .http()
        .get('/guarded')
        .set('Cookie', cookieHeader(cookieUser))
        .set('Authorization', bearer(headerUser))
        .expect(200, { userId: 'header-user' });
    });
  });
});
