import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { SessionConfigError } from '../../lib/index.js';
import { AppModule } from '../../sample/app.module.js';
import { cookieHeader, createPlatformApp, isClearing, PLATFORMS, requireSid, setCookieLine, setCookies } from '../fixtures/index.js';

const ENV = { SESSION_SECRET: 'sample-e2e-secret-0123456789abcdefghij' };

describe.each(PLATFORMS)('sample application (SPEC §4 HTTP contract) (%s)', (platform) => {
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.forEnv(ENV)] }).compile();
    app = await createPlatformApp(moduleRef, platform);
  });

  afterAll(async () => {
    await app?.close();
  });

  /** Signs in as `username` (optionally carrying an existing cookie) and returns the new cookie. */
  const login = async (username: string, cookie?: string): Promise<string> => {
    const req = http().post('/auth/login');
    if (cookie) req.set('Cookie', cookieHeader(cookie));
    const res = await req.send({ username, password: 'demo' }).expect(200);
    return requireSid(res);
  };

  const withCookie = (res: request.Test, cookie: string) => res.set('Cookie', cookieHeader(cookie));

  describe('POST /auth/login', () => {
    it('signs in with password "demo" and returns { userId }', async () => {
      const res = await http().post('/auth/login').send({ username: 'alice', password: 'demo' }).expect(200);

      expect(res.body).toEqual({ userId: 'alice' });
      const profile = await withCookie(http().get('/profile'), requireSid(res)).expect(200);
      expect(profile.body).toEqual({ userId: 'alice' });
    });

    it('rotates the session id: the cookie after sign-in differs from the one before, and keeps the data', async () => {
      const before = requireSid(await http().post('/visits').expect(200));

      const after = await login('alice', before);

      expect(after).not.toBe(before);
      const session = await withCookie(http().get('/session'), after).expect(200);
      expect(session.body).toEqual({ data: { visits: 1, userId: 'alice' } });
    });

    it('kills the pre-login id: the old cookie neither signs in nor still holds the old data', async () => {
      const before = requireSid(await http().post('/visits').expect(200));
      await login('alice', before);

      const profile = await withCookie(http().get('/profile'), before).expect(401);
      expect(profile.body).toMatchObject({ statusCode: 401 });
      const session = await withCookie(http().get('/session'), before).expect(200);
      expect(session.body).toEqual({ data: {} });
    });

    it('answers 401 to a wrong password and signs nobody in', async () => {
      const res = await http().post('/auth/login').send({ username: 'alice', password: 'nope' }).expect(401);

      expect(res.body).toMatchObject({ statusCode: 401 });
      expect(setCookieLine(res)).toBeUndefined();
    });

    it.each([
      ['a missing password', { username: 'alice' }],
      ['a missing username', { password: 'demo' }],
      ['an empty body', {}],
      ['a numeric password', { username: 'alice', password: 123 }],
      ['an object as username', { username: { $ne: '' }, password: 'demo' }],
      ['an empty username', { username: '', password: 'demo' }],
      ['an extra field', { username: 'alice', password: 'demo', admin: true }],
    ])('answers 400 to a body with %s', async (_case, body) => {
      const res = await http().post('/auth/login').send(body).expect(400);

      expect(res.body).toMatchObject({ statusCode: 400 });
      expect(setCookieLine(res)).toBeUndefined();
    });
  });

  describe('GET /profile', () => {
    it('answers 401 with a JSON error body without a session', async () => {
      const res = await http()
        .get('/profile')
        .expect(401)
        .expect('Content-Type', /application\/json/);

      expect(res.body).toMatchObject({ statusCode: 401, code: 'SESSION_NOT_SIGNED_IN', message: expect.any(String) });
    });

    it('answers 401 to an anonymous session (one that was never signed in)', async () => {
      const anonymous = requireSid(await http().post('/visits').expect(200));

      await withCookie(http().get('/profile'), anonymous).expect(401);
    });

    it('only reads: it sets no cookie', async () => {
      const cookie = await login('carol');

      const res = await withCookie(http().get('/profile'), cookie).expect(200);

      expect(setCookies(res)).toEqual([]);
    });
  });

  describe('POST /auth/logout', () => {
    it('answers 204 and clears the cookie', async () => {
      const cookie = await login('alice');

      const res = await withCookie(http().post('/auth/logout'), cookie).expect(204);

      expect(isClearing(setCookieLine(res))).toBe(true);
    });

    it('destroys the session server-side: replaying the old cookie gets 401', async () => {
      const cookie = await login('alice');
      await withCookie(http().post('/auth/logout'), cookie).expect(204);

      await withCookie(http().get('/profile'), cookie).expect(401);
      const session = await withCookie(http().get('/session'), cookie).expect(200);
      expect(session.body).toEqual({ data: {} });
    });
  });

  describe('POST /visits', () => {
    it('creates a session and increments visits on each call', async () => {
      const first = await http().post('/visits').expect(200);
      expect(first.body).toEqual({ visits: 1 });
      const cookie = requireSid(first);

      const second = await withCookie(http().post('/visits'), cookie).expect(200);
      const third = await withCookie(http().post('/visits'), cookie).expect(200);

      expect(second.body).toEqual({ visits: 2 });
      expect(third.body).toEqual({ visits: 3 });
    });
  });

  describe('PUT /prefs/:key', () => {
    it('sets the top-level field pref:<key>, seen in GET /session', async () => {
      const res = await http().put('/prefs/theme').send({ value: 'dark' }).expect(200);
      expect(res.body).toEqual({ ok: true });
      const cookie = requireSid(res);
      await withCookie(http().put('/prefs/lang'), cookie)
        .send({ value: { code: 'fr' } })
        .expect(200);

      const session = await withCookie(http().get('/session'), cookie).expect(200);

      expect(session.body).toEqual({ data: { 'pref:theme': 'dark', 'pref:lang': { code: 'fr' } } });
    });

    it.each([
      ['a dot', 'a.b'],
      ['a space', 'a%20b'],
      ['65 characters', 'k'.repeat(65)],
      ['__proto__ shaped', '__proto__%2E'],
    ])('answers 400 to a key with %s', async (_case, key) => {
      const res = await http().put(`/prefs/${key}`).send({ value: 1 }).expect(400);

      expect(res.body).toMatchObject({ statusCode: 400 });
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('stores a key named __proto__ as the plain field pref:__proto__, polluting no prototype', async () => {
      const res = await http()
        .put('/prefs/__proto__')
        .send({ value: { polluted: true } })
        .expect(200);

      const session = await withCookie(http().get('/session'), requireSid(res)).expect(200);
      expect(session.body).toEqual({ data: { 'pref:__proto__': { polluted: true } } });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('answers 400 to a body without a value', async () => {
      await http().put('/prefs/theme').send({}).expect(400);
    });
  });

  describe('malformed bodies (SPEC §4: a 4xx, never a 500)', () => {
    const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

    it.each([
      ['POST /auth/login', 'post', '/auth/login', (deep: string) => `{"username":${deep},"password":"demo"}`],
      ['PUT /prefs/:key', 'put', '/prefs/theme', (deep: string) => `{"value":${deep}}`],
    ] as const)('answers 400 to %s with a value nested thousands of levels deep, and stores nothing', async (_route, method, path, bodyOf) => {
      const res = await http()
        [method](path)
        .set('Content-Type', 'application/json')
        .send(bodyOf(nested(5_000)));

      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'BODY_TOO_DEEP' });
      expect(setCookieLine(res)).toBeUndefined();
    });

    it('still takes values nested as deep as real preferences get', async () => {
      await http()
        .put('/prefs/layout')
        .send({ value: JSON.parse(nested(20)) })
        .expect(200);
    });
  });

  describe('GET /session', () => {
    it('answers { data: {} } without a cookie and sets none (saveUninitialized is false)', async () => {
      const res = await http().get('/session').expect(200);

      expect(res.body).toEqual({ data: {} });
      expect(setCookies(res)).toEqual([]);
    });
  });

  describe('GET /auth/sessions', () => {
    const sessionsOf = async (cookie: string) =>
      (await withCookie(http().get('/auth/sessions'), cookie).expect(200)).body as Array<{
        id: string;
        createdAt: string;
        lastSeenAt: string;
        current: boolean;
      }>;

    it("lists both sessions of a user signed in twice, marking the caller's as current", async () => {
      const first = await login('dave');
      const second = await login('dave');
      await login('not-dave');

      const fromFirst = await sessionsOf(first);
      const fromSecond = await sessionsOf(second);

      expect(fromFirst).toHaveLength(2);
      for (const entry of fromFirst) {
        expect(entry).toEqual({
          id: expect.any(String),
          createdAt: expect.any(String),
          lastSeenAt: expect.any(String),
          current: expect.any(Boolean),
        });
        expect(Number.isNaN(Date.parse(entry.createdAt))).toBe(false);
      }
      expect(fromFirst.filter((s) => s.current)).toHaveLength(1);
      expect(fromSecond.filter((s) => s.current)).toHaveLength(1);
      // The same two sessions, seen from each: the one marked current is the caller's own.
      expect(fromSecond.map((s) => s.id).sort()).toEqual(fromFirst.map((s) => s.id).sort());
      expect(fromFirst.find((s) => s.current)!.id).not.toBe(fromSecond.find((s) => s.current)!.id);
      // Ids are never handed out in full: the list cannot be used to hijack a session.
      for (const entry of fromFirst) expect([first, second].map((c) => c.split('.')[0])).not.toContain(entry.id);
    });

    it('answers 401 without a signed-in session', async () => {
      await http().get('/auth/sessions').expect(401);
    });
  });

  describe('DELETE /auth/sessions', () => {
    it("revokes the user's other session: { revoked: 1 }, the other cookie then gets 401, this one still works", async () => {
      const mine = await login('erin');
      const other = await login('erin');

      const res = await withCookie(http().delete('/auth/sessions'), mine).expect(200);

      expect(res.body).toEqual({ revoked: 1 });
      await withCookie(http().get('/profile'), other).expect(401);
      await withCookie(http().get('/profile'), mine).expect(200);
      const left = await withCookie(http().get('/auth/sessions'), mine).expect(200);
      expect(left.body).toHaveLength(1);
    });
  });

  describe('GET /health', () => {
    it('answers 200 when the store answers', async () => {
      await http().get('/health').expect(200);
    });
  });

  describe('configuration', () => {
    it('fails to start with a store type it does not know (SESSION_STORE=mongo), naming store.type', async () => {
      const compiling = Test.createTestingModule({ imports: [AppModule.forEnv({ ...ENV, SESSION_STORE: 'mongo' })] }).compile();

      await expect(compiling).rejects.toBeInstanceOf(SessionConfigError);
      await expect(compiling).rejects.toThrow(/store\.type/);
    });

    it('fails to start with a secret that is too short, naming secret', async () => {
      const compiling = Test.createTestingModule({ imports: [AppModule.forEnv({ SESSION_SECRET: 'short' })] }).compile();

      await expect(compiling).rejects.toThrow(/"secret"/);
    });

    it.each([
      [{ SESSION_MAX_PER_USER: 'two' }, 'option "maxSessionsPerUser" must be a positive whole number (got "two")'],
      [{ SESSION_MAX_PER_USER: '0' }, 'option "maxSessionsPerUser" must be a positive whole number (got 0)'],
      [{ SESSION_MAX_PER_USER: '2', SESSION_ON_MAX_SESSIONS: 'drop' }, 'option "onMaxSessions" must be one of'],
      [{ SESSION_ON_MAX_SESSIONS: 'reject' }, 'does nothing without "maxSessionsPerUser"'],
      [{ SESSION_RECORD_CLIENT: 'yes' }, 'option "recordClient" must be true or false (got "yes")'],
    ])('fails to start with a bad session-management variable (%p), naming the option and the value', async (env, message) => {
      const compiling = Test.createTestingModule({ imports: [AppModule.forEnv({ ...ENV, ...env })] }).compile();

      await expect(compiling).rejects.toThrow(message);
    });
  });
});
