import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, UnsecuredJWT } from 'jose';
import { MemoryStore, SessionConfigError, SessionModule, sessionJwtKey } from '../../lib/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import {
  bearer,
  closeAll,
  createFixtureApp,
  idOf,
  OTHER_SECRET,
  PLATFORMS,
  requireSid,
  requireToken,
  SECRET,
  setCookieLine,
  tokenOf,
} from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * Header tokens as JWTs (`transport: 'header', tokenFormat: 'jwt'`): an HS256 JWT signed with the
 * secret's bytes, claims `sid`, `sub`, `iat`, `exp`. Any JWT library holding the secret verifies
 * (and can issue) one; the token still names a server-side session, so a logout ends it at once.
 */

const ROTATED_SECRET = 'e2e-rotated-secret-zyxwvutsrqponmlkjihgfedcba';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
const JWT_OPTIONS = { transport: 'header', tokenFormat: 'jwt' } as const;

/** The key a service holding the secret verifies (and, in these tests, forges) tokens with. */
const keyOf = (secret: string): Uint8Array => sessionJwtKey(secret);
const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
const nowInSeconds = (): number => Math.floor(Date.now() / 1000);

/** Signs `userId` in and returns the JWT the response hands out. */
async function login(app: FixtureApp, userId: string): Promise<string> {
  return requireToken(await app.http().post('/login').send({ userId }).expect(200));
}

/** The session id a token names, read without the secret. */
const sidOf = (token: string): string => decodeJwt(token).sid as string;

/** A token that must leave the request anonymous: 401 on the guard, an empty session, never 5xx. */
async function expectAnonymous(app: FixtureApp, what: string, token: string): Promise<void> {
  const guarded = await app.http().get('/guarded').set('Authorization', bearer(token));
  const read = await app.http().get('/read').set('Authorization', bearer(token));
  expect({ what, guarded: guarded.status, read: read.status, data: read.body.data }).toEqual({ what, guarded: 401, read: 200, data: {} });
}

async function startupError(options: SessionModuleOptions): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({ imports: [SessionModule.forRoot(options)] }).compile();
    await moduleRef.close();
  } catch (error) {
    return error;
  }
  throw new Error('expected start-up to fail, but the module compiled');
}

describe.each(PLATFORMS)("tokenFormat: 'jwt' (%s)", (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  async function start(options: Partial<SessionModuleOptions> = {}): Promise<FixtureApp> {
    const app = await createFixtureApp({ ...JWT_OPTIONS, ...options }, { platform });
    apps.push(app);
    return app;
  }

  describe('the token', () => {
    it('is an HS256 JWT whose claims (sub, sid, iat, exp) a client reads without the secret', async () => {
      const app = await start({ idleTimeout: '30m' });
      const before = nowInSeconds();

      const res = await app.http().post('/login').send({ userId: 'api-user' }).expect(200);
      const token = requireToken(res);

      expect(res.headers['cache-control']).toBe('no-store');
      expect(setCookieLine(res)).toBeUndefined();
      expect(token.split('.')).toHaveLength(3);
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
      const claims = decodeJwt(token);
      expect(claims.sub).toBe('api-user');
      expect(claims.sid).toMatch(SESSION_ID);
      expect(claims.iat).toBeGreaterThanOrEqual(before);
      expect(claims.iat).toBeLessThanOrEqual(nowInSeconds());
      // exp is the session's expiry in seconds: after iat, at most idleTimeout away.
      expect(claims.exp).toBeGreaterThan(claims.iat!);
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(30 * 60);
      expect(claims.exp! - claims.iat!).toBeGreaterThanOrEqual(30 * 60 - 5);
    });

    it('carries no sub for a session nobody signed in to', async () => {
      const app = await start();

      const token = requireToken(
        await app
          .http()
          .post('/set')
          .send({ cart: [1] })
          .expect(200),
      );

      const claims = decodeJwt(token);
      expect(claims.sid).toMatch(SESSION_ID);
      expect(claims).not.toHaveProperty('sub');
    });
  });

  describe('bearer flow', () => {
    it('signs the client in through Authorization: Bearer <jwt>, and after logout the same token gets 401 (server-side revocation)', async () => {
      const app = await start();
      const token = await login(app, 'api-user');

      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'api-user' });
      await app.http().get('/me').set('Authorization', bearer(token)).expect(200, { userId: 'api-user' });

      const logout = await app.http().post('/logout').set('Authorization', bearer(token)).expect(204);

      expect(tokenOf(logout)).toBe('');
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(401);
      await app.http().get('/me').set('Authorization', bearer(token)).expect(200, { userId: null });
    });
  });

  describe('interop', () => {
    it('issues tokens any JWT library verifies with the secret', async () => {
      const app = await start();
      const token = await login(app, 'api-user');

      const { payload, protectedHeader } = await jwtVerify(token, keyOf(SECRET), { algorithms: ['HS256'] });

      expect(protectedHeader.alg).toBe('HS256');
      expect(payload).toMatchObject({ sub: 'api-user', sid: sidOf(token) });
      await expect(jwtVerify(token, keyOf(OTHER_SECRET))).rejects.toThrow();
    });

    it('accepts a token a service holding the secret signs itself (HS256, sid of a live session, exp in the future)', async () => {
      const app = await start();
      const sid = sidOf(await login(app, 'api-user'));

      const issuedElsewhere = await new SignJWT({ sid })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject('api-user')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(keyOf(SECRET));

      await app.http().get('/guarded').set('Authorization', bearer(issuedElsewhere)).expect(200, { userId: 'api-user' });
    });
  });

  describe('rejected tokens (401 / anonymous, never 5xx)', () => {
    it('refuses alg none: an UnsecuredJWT, and the real payload under a hand-made {alg: none} header with no signature', async () => {
      const app = await start();
      const token = await login(app, 'api-user');
      const [, payload] = token.split('.');

      const unsecured = new UnsecuredJWT({ sid: sidOf(token) }).setSubject('api-user').setIssuedAt().setExpirationTime('5m').encode();
      await expectAnonymous(app, 'UnsecuredJWT', unsecured);
      await expectAnonymous(app, 'hand-made alg none', `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.`);
      await expectAnonymous(app, 'hand-made alg none (lower-case header)', `${b64url('{"alg":"none"}')}.${payload}.`);
      // The real token still works: the forgeries were refused for what they are.
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'api-user' });
    });

    it('refuses an expired token, one signed with another secret, and HS512 with the right secret', async () => {
      const app = await start();
      const sid = sidOf(await login(app, 'api-user'));
      const sign = (alg: string, secret: string, exp: number) =>
        new SignJWT({ sid })
          .setProtectedHeader({ alg, typ: 'JWT' })
          .setSubject('api-user')
          .setIssuedAt(exp - 60)
          .setExpirationTime(exp)
          .sign(keyOf(secret));

      await expectAnonymous(app, 'expired', await sign('HS256', SECRET, nowInSeconds() - 10));
      await expectAnonymous(app, 'another secret', await sign('HS256', OTHER_SECRET, nowInSeconds() + 300));
      await expectAnonymous(app, 'HS512', await sign('HS512', SECRET, nowInSeconds() + 300));
      await expectAnonymous(app, 'HS384', await sign('HS384', SECRET, nowInSeconds() + 300));
    });

    it('refuses a changed payload under the original signature, swapped header and payload, truncation and garbage', async () => {
      const app = await start();
      const token = await login(app, 'api-user');
      const [header, payload, signature] = token.split('.');
      const swappedSub = b64url(JSON.stringify({ ...decodeJwt(token), sub: 'admin' }));
      const longerExp = b64url(JSON.stringify({ ...decodeJwt(token), exp: nowInSeconds() + 86_400 }));

      for (const [what, forged] of [
        ['sub swapped, original signature', `${header}.${swappedSub}.${signature}`],
        ['exp extended, original signature', `${header}.${longerExp}.${signature}`],
        ['header and payload swapped', `${payload}.${header}.${signature}`],
        ['signature dropped', `${header}.${payload}.`],
        ['signature part missing', `${header}.${payload}`],
        ['last character dropped', token.slice(0, -1)],
        ['cut in half', token.slice(0, Math.floor(token.length / 2))],
        ['trailing part added', `${token}.${signature}`],
        ['garbage', 'not-a-jwt'],
        ['three garbage parts', 'a.b.c'],
        ['empty parts', '..'],
      ]) {
        await expectAnonymous(app, what, forged);
      }
    });

    it('refuses a correctly signed token whose sid is not a session id, or names no session', async () => {
      const app = await start();
      await login(app, 'api-user');
      const sign = (claims: Record<string, unknown>) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .setSubject('api-user')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(keyOf(SECRET));

      await expectAnonymous(app, 'sid too short', await sign({ sid: 'abc' }));
      await expectAnonymous(app, 'sid a path', await sign({ sid: '../../../etc/passwd' }));
      await expectAnonymous(app, 'sid a number', await sign({ sid: 12345 }));
      await expectAnonymous(app, 'sid missing', await sign({}));
      await expectAnonymous(app, 'sid of no session', await sign({ sid: 'A'.repeat(43) }));
    });

    it('refuses an oversized (10 KB) token, even one correctly signed for a live session', async () => {
      const app = await start();
      const sid = sidOf(await login(app, 'api-user'));
      const oversized = await new SignJWT({ sid, padding: 'x'.repeat(10 * 1024) })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject('api-user')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(keyOf(SECRET));
      expect(oversized.length).toBeGreaterThan(10 * 1024);

      await expectAnonymous(app, '10 KB signed token', oversized);
      await expectAnonymous(app, '10 KB garbage', 'A'.repeat(10 * 1024));
    });
  });

  describe('long claims', () => {
    it('never hands out a token it will refuse: a long user id (1,500 characters) gets a token that works', async () => {
      const app = await start();
      const userId = 'u'.repeat(1500);

      const token = requireToken(await app.http().post('/login').send({ userId }).expect(200));

      expect(token.length).toBeGreaterThan(2048);
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId });
    });

    it('answers 413 SESSION_TOO_LARGE, with no token, when the claims would make a token over 4096 bytes', async () => {
      const app = await start();

      const res = await app
        .http()
        .post('/login')
        .send({ userId: 'u'.repeat(4000) })
        .expect(413);

      expect(res.body).toMatchObject({ statusCode: 413, code: 'SESSION_TOO_LARGE', message: expect.stringContaining('4096') });
      expect(tokenOf(res)).toBeUndefined();
    });
  });

  describe('many nodes over one shared store', () => {
    it('accepts tokens issued by another app with the same secret; an app with another secret refuses them', async () => {
      const store = new MemoryStore();
      const a = await start({ store });
      const b = await start({ store });
      const stranger = await start({ store, secret: OTHER_SECRET });
      const fromA = await login(a, 'u1');
      const fromB = await login(b, 'u2');

      await b.http().get('/guarded').set('Authorization', bearer(fromA)).expect(200, { userId: 'u1' });
      await a.http().get('/guarded').set('Authorization', bearer(fromB)).expect(200, { userId: 'u2' });
      await stranger.http().get('/guarded').set('Authorization', bearer(fromA)).expect(401);
    });

    it('rotates secrets: a token issued under [S1] is accepted by [S2, S1], which hands it out again under S2, and refused once S1 is removed', async () => {
      const store = new MemoryStore();
      const old = await start({ store, secret: [SECRET] });
      const rotating = await start({ store, secret: [ROTATED_SECRET, SECRET] });
      const rotated = await start({ store, secret: [ROTATED_SECRET] });
      const token = await login(old, 'u1');

      const renewing = await rotating.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'u1' });
      await rotated.http().get('/guarded').set('Authorization', bearer(token)).expect(401);

      // Even a read hands a token of a retiring secret out again, signed with the newest.
      const renewed = requireToken(renewing);
      expect(decodeJwt(renewed).sid).toBe(sidOf(token));
      await rotated.http().get('/guarded').set('Authorization', bearer(renewed)).expect(200, { userId: 'u1' });
      expect(tokenOf(await rotating.http().get('/guarded').set('Authorization', bearer(renewed)).expect(200))).toBeUndefined();

      // What [S2, S1] issues is signed with S2, the first secret.
      const fresh = await login(rotating, 'u2');
      await expect(jwtVerify(fresh, keyOf(ROTATED_SECRET))).resolves.toBeDefined();
      await rotated.http().get('/guarded').set('Authorization', bearer(fresh)).expect(200, { userId: 'u2' });
    });
  });

  describe('re-issue', () => {
    it('hands out a fresh JWT for the same sid after a write, and none after a read-only request', async () => {
      const app = await start();
      const token = await login(app, 'api-user');

      const write = await app.http().post('/set').set('Authorization', bearer(token)).send({ theme: 'dark' }).expect(200);
      const reissued = requireToken(write);

      expect(decodeProtectedHeader(reissued)).toEqual({ alg: 'HS256', typ: 'JWT' });
      const [before, after] = [decodeJwt(token), decodeJwt(reissued)];
      expect(after.sid).toBe(before.sid);
      expect(after.sub).toBe('api-user');
      expect(after.exp!).toBeGreaterThanOrEqual(before.exp!);
      await expect(jwtVerify(reissued, keyOf(SECRET))).resolves.toBeDefined();
      const read = await app.http().get('/read').set('Authorization', bearer(reissued)).expect(200);
      expect(read.body.data).toEqual({ userId: 'api-user', theme: 'dark' });
      expect(tokenOf(read)).toBeUndefined();
      const me = await app.http().get('/me').set('Authorization', bearer(token)).expect(200, { userId: 'api-user' });
      expect(tokenOf(me)).toBeUndefined();
    });
  });

  describe("transport: 'both'", () => {
    it('never hands a JWT to a request that came with the HttpOnly cookie, though a JWT changes with every write', async () => {
      const app = await start({ transport: 'both' });
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));

      const write = await app.http().post('/set').set('Cookie', `sid=${cookie}`).send({ theme: 'dark' }).expect(200);

      expect(tokenOf(write)).toBeUndefined();
    });

    it('keeps a signed id (id.signature) in the cookie while the header carries a JWT for the same session', async () => {
      const app = await start({ transport: 'both' });

      const res = await app.http().post('/login').send({ userId: 'u1' }).expect(200);

      const cookie = requireSid(res);
      const token = requireToken(res);
      expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
      expect(sidOf(token)).toBe(idOf(cookie));
      await app.http().get('/guarded').set('Cookie', `sid=${cookie}`).expect(200, { userId: 'u1' });
      await app.http().get('/guarded').set('Authorization', bearer(token)).expect(200, { userId: 'u1' });
    });
  });

  describe('start-up errors', () => {
    it.each<[string, Partial<SessionModuleOptions>]>([
      ["transport 'cookie'", { transport: 'cookie' }],
      ['the default transport (cookie)', {}],
      ['the cookie store', { transport: 'header', store: { type: 'cookie' } }],
    ])('fails module compilation with a SessionConfigError naming "tokenFormat" for %s', async (_case, options) => {
      const error = await startupError({ secret: SECRET, tokenFormat: 'jwt', ...options });

      expect(error).toBeInstanceOf(SessionConfigError);
      expect((error as Error).message).toContain('"tokenFormat"');
    });
  });
});
