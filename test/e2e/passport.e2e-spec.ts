import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cookieHeader, idOf, isClearing, keyOf, requireSid, setCookieLine } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import { postgresForTests } from '../support/postgres-server.js';
import type { PostgresServer } from '../support/postgres-server.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';
import { createPassportApp } from '../fixtures/passport-app.js';

/** How each store under test is started for the app, and stopped after it. */
interface StoreUnderTest {
  store(): Promise<SessionModuleOptions['store']>;
  stop(): Promise<void>;
}

const memory = (): StoreUnderTest => ({ store: async () => ({ type: 'memory' }), stop: async () => undefined });

/** A throwaway redis-server of its own: the shared Redis of the machine is never touched. */
const redis = (): StoreUnderTest => {
  let server: RedisServer | undefined;
  return {
    store: async () => {
      server = await startRedisServer();
      return { type: 'redis', url: server.url };
    },
    stop: async () => server?.stop(),
  };
};

/** A directory of its own, removed afterwards. */
const file = (): StoreUnderTest => {
  let directory: string | undefined;
  return {
    store: async () => {
      directory = await mkdtemp(join(tmpdir(), 'nss-passport-'));
      return { type: 'file', directory };
    },
    stop: async () => {
      if (directory) await rm(directory, { recursive: true, force: true });
    },
  };
};

/** A database of its own (a throwaway cluster, or one created on DATABASE_URL's server). */
const postgres = (): StoreUnderTest => {
  let server: PostgresServer | undefined;
  return {
    store: async () => {
      server = await postgresForTests();
      return { type: 'postgres', connectionString: server.url(), createTable: true };
    },
    stop: async () => server?.dispose(),
  };
};

/**
 * Express only: Passport's session support (`req.logIn`, `req.logout`, `req.user`) extends the
 * Node request that Express hands to guards and handlers. On Fastify, guards see Fastify's own
 * request, which Passport does not extend; the README's Passport recipe says so.
 */
describe.each([
  ['memory', memory],
  ['Redis', redis],
  ['file', file],
  ['PostgreSQL', postgres],
])('Passport (@nestjs/passport + passport-local, sessions) on the %s store', (_name, storeUnderTest) => {
  let app: FixtureApp;
  const backing = storeUnderTest();

  beforeAll(async () => {
    app = await createPassportApp({ store: await backing.store() });
  }, 30_000);

  afterAll(async () => {
    await app?.close();
    await backing.stop();
  });

  const login = (username: string, password = 'demo', cookie?: string) => {
    const req = app.http().post('/login');
    if (cookie) req.set('Cookie', cookieHeader(cookie));
    return req.send({ username, password });
  };

  it('signs in with req.login(): a new session id, the user serialized into it, the guard and req.user working', async () => {
    const res = await login('ann').expect(200);
    const cookie = requireSid(res);

    expect(res.body).toEqual({ user: { id: 'ann', name: 'ANN' } });
    const profile = await app.http().get('/profile').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(profile.body).toEqual({ user: { id: 'ann', name: 'ANN' }, authenticated: true, sessionId: idOf(cookie) });
    const session = await app.http().get('/session').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(session.body).toEqual({ data: { passport: { user: 'ann' } } });
  });

  it('refuses a wrong password with 401 and signs nobody in', async () => {
    await login('ann', 'wrong').expect(401);
  });

  it('regenerates the session on sign-in: the pre-login id is dead afterwards', async () => {
    const before = requireSid(await app.http().post('/cart').expect(200));

    const after = requireSid(await login('bob', 'demo', before).expect(200));

    expect(idOf(after)).not.toBe(idOf(before));
    await expect(app.store.get(keyOf(before))).resolves.toBeNull();
  });

  it('drops what the session held before sign-in, as Passport does by default', async () => {
    const before = requireSid(await app.http().post('/cart').expect(200));

    const after = requireSid(await login('bea', 'demo', before).expect(200));

    const session = await app.http().get('/session').set('Cookie', cookieHeader(after)).expect(200);
    expect(session.body).toEqual({ data: { passport: { user: 'bea' } } });
  });

  it('keeps what the session held before sign-in with keepSessionInfo: true, under the new id', async () => {
    const before = requireSid(await app.http().post('/cart').expect(200));

    const res = await app
      .http()
      .post('/login-keeping-session-info')
      .set('Cookie', cookieHeader(before))
      .send({ username: 'kim', password: 'demo' })
      .expect(200);

    const after = requireSid(res);
    expect(idOf(after)).not.toBe(idOf(before));
    await expect(app.store.get(keyOf(before))).resolves.toBeNull();
    const session = await app.http().get('/session').set('Cookie', cookieHeader(after)).expect(200);
    expect(session.body).toEqual({ data: { cart: ['apple'], passport: { user: 'kim' } } });
    await app.http().get('/profile').set('Cookie', cookieHeader(after)).expect(200);
  });

  it('signs out with req.logout(): the session is regenerated empty, the cookie cleared, and the old cookie gets 401', async () => {
    const cookie = requireSid(await login('carl').expect(200));

    const logout = await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).expect(204);

    expect(isClearing(setCookieLine(logout)!)).toBe(true);
    await expect(app.store.get(keyOf(cookie))).resolves.toBeNull();
    await app.http().get('/profile').set('Cookie', cookieHeader(cookie)).expect(401);
  });

  it("indexes the session under Passport's user (userKey: 'passport.user')", async () => {
    const cookie = requireSid(await login('dora').expect(200));

    await expect(app.store.listByUser('dora')).resolves.toEqual([expect.objectContaining({ id: keyOf(cookie) })]);
  });
});
