import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { decodeProtectedHeader } from 'jose';
import { loadJose, SessionSealer } from '../../lib/crypto/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import {
  closeAll,
  cookieHeader,
  createFixtureApp,
  dataOf,
  delay,
  isClearing,
  OTHER_SECRET,
  PLATFORMS,
  requireSid,
  requireToken,
  SECRET,
  setCookieLine,
  setCookies,
  tokenOf,
} from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * The cookie store (`store: { type: 'cookie' }`) end to end: the whole session travels sealed in
 * the client's cookie (JWE compact, `dir` + A256GCM), so any node with the secret serves it, and
 * nothing is kept on a server. The stateless limits the store declares (no revocation, last
 * response wins, 4096 bytes) are asserted as such.
 */

const ROTATED_SECRET = 'e2e-rotated-secret-zyxwvutsrqponmlkjihgfedcba';
const SIGNED_ID = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/;
const COOKIE_STORE = { type: 'cookie' } as const;

/** Signs `userId` in on `app` and returns the sealed cookie. */
async function login(app: FixtureApp, userId: string, cookie?: string): Promise<string> {
  const req = app.http().post('/login');
  if (cookie !== undefined) req.set('Cookie', cookieHeader(cookie));
  return requireSid(await req.send({ userId }).expect(200));
}

/** What a seal holds, opened with the library's own sealer (expiry not checked). */
interface SealedRecord {
  id: string;
  c: number;
  s: number;
  e: number;
  u: string | null;
  d: Record<string, unknown>;
}

async function readSeal(seal: string, secrets: string[] = [SECRET]): Promise<SealedRecord> {
  const opened = await new SessionSealer(await loadJose('e2e test'), secrets).open(seal);
  if (!opened) throw new Error('the seal does not open with the given secrets');
  return JSON.parse(opened.plaintext) as SealedRecord;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The part with its middle character replaced by another base64url character (or made non-empty). */
function changeOneCharacter(part: string): string {
  if (part === '') return 'AAAA';
  const at = Math.floor(part.length / 2);
  const next = BASE64URL[(BASE64URL.indexOf(part[at]) + 17) % 64];
  return part.slice(0, at) + next + part.slice(at + 1);
}

const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
const unb64url = (part: string): string => Buffer.from(part, 'base64url').toString('utf8');

describe.each(PLATFORMS)("store: { type: 'cookie' } (%s)", (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  async function start(options: Partial<SessionModuleOptions> = {}): Promise<FixtureApp> {
    const app = await createFixtureApp({ store: COOKIE_STORE, ...options }, { platform });
    apps.push(app);
    return app;
  }

  describe('sealed cookie', () => {
    it('signs a client in with a cookie that is a five-part JWE (not id.signature), sent with Cache-Control: no-store, whose data cannot be read', async () => {
      const app = await start();

      const res = await app.http().post('/login').send({ userId: 'alice-the-user' }).expect(200);
      const cookie = requireSid(res);

      expect(res.headers['cache-control']).toBe('no-store');
      expect(cookie).not.toMatch(SIGNED_ID);
      const parts = cookie.split('.');
      expect(parts).toHaveLength(5);
      expect(decodeProtectedHeader(cookie)).toMatchObject({ alg: 'dir', enc: 'A256GCM' });
      expect(parts[1]).toBe('');
      for (const text of [cookie, ...parts.map(unb64url)]) {
        expect(text).not.toContain('alice-the-user');
        expect(text).not.toContain('userId');
      }
      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'alice-the-user' });
    });

    it('keeps the session in the cookie: what the seal holds is the session the request sees', async () => {
      const app = await start();
      const cookie = await login(app, 'u1');

      const record = await readSeal(cookie);

      expect(record.u).toBe('u1');
      expect(record.d).toEqual({ userId: 'u1' });
      expect(await dataOf(app, cookie)).toEqual({ userId: 'u1' });
    });
  });

  describe('many nodes', () => {
    it('accepts a cookie sealed by another node with the same secret, both ways', async () => {
      const a = await start();
      const b = await start();
      const cookie = await login(a, 'u1');

      await b.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u1' });
      const written = requireSid(await b.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ theme: 'dark' }).expect(200));
      expect(await dataOf(a, written)).toEqual({ userId: 'u1', theme: 'dark' });
    });

    it('treats a cookie sealed with another secret as anonymous (401, empty session), never 5xx, and leaves it alone', async () => {
      const a = await start();
      const b = await start({ secret: OTHER_SECRET });
      const cookie = await login(a, 'u1');

      await b.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(401);
      await b.http().get('/me').set('Cookie', cookieHeader(cookie)).expect(200, { userId: null });
      const read = await b.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200);
      expect(read.body).toEqual({ data: {}, isNew: true });
      expect(setCookies(read)).toEqual([]);
    });
  });

  describe('secret rotation', () => {
    it('opens a cookie sealed with a retiring secret and reseals it with the newest in the same response', async () => {
      const old = await start({ secret: [SECRET] });
      const rotating = await start({ secret: [ROTATED_SECRET, SECRET] });
      const onlyNew = await start({ secret: [ROTATED_SECRET] });
      const original = await login(old, 'u1');

      const res = await rotating.http().get('/guarded').set('Cookie', cookieHeader(original)).expect(200, { userId: 'u1' });
      const resealed = requireSid(res);

      expect(resealed).not.toBe(original);
      expect(res.headers['cache-control']).toBe('no-store');
      await onlyNew.http().get('/guarded').set('Cookie', cookieHeader(resealed)).expect(200, { userId: 'u1' });
      await onlyNew.http().get('/guarded').set('Cookie', cookieHeader(original)).expect(401);
      expect((await readSeal(resealed, [ROTATED_SECRET])).id).toBe((await readSeal(original, [SECRET])).id);
    });

    it('sends no new cookie for a cookie already sealed with the newest secret', async () => {
      const rotating = await start({ secret: [ROTATED_SECRET, SECRET] });
      const cookie = await login(rotating, 'u1');

      const res = await rotating.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u1' });

      expect(setCookies(res)).toEqual([]);
    });

    it('treats the old cookie as anonymous once the secret that sealed it is removed', async () => {
      const old = await start({ secret: [SECRET] });
      const rotated = await start({ secret: [ROTATED_SECRET] });
      const original = await login(old, 'u1');

      await rotated.http().get('/guarded').set('Cookie', cookieHeader(original)).expect(401);
      expect(await dataOf(rotated, original)).toEqual({});
    });
  });

  describe('tampering', () => {
    async function twoCookies(app: FixtureApp): Promise<[string, string]> {
      return [await login(app, 'u1'), await login(app, 'u2')];
    }

    /** Every forgery must leave the request anonymous: 401 on the guard, an empty session, never 5xx. */
    async function expectAnonymous(app: FixtureApp, forgeries: Array<[string, string]>): Promise<void> {
      for (const [what, forged] of forgeries) {
        const guarded = await app.http().get('/guarded').set('Cookie', cookieHeader(forged));
        const read = await app.http().get('/read').set('Cookie', cookieHeader(forged));
        expect({ what, guarded: guarded.status, read: read.status, data: read.body.data }).toEqual({ what, guarded: 401, read: 200, data: {} });
      }
    }

    it('treats a cookie with a character changed in any of its five parts as anonymous', async () => {
      const app = await start();
      const [cookie] = await twoCookies(app);
      const parts = cookie.split('.');
      const names = ['header', 'encrypted key', 'iv', 'ciphertext', 'tag'];

      await expectAnonymous(
        app,
        parts.map((part, i) => [names[i], parts.map((p, j) => (j === i ? changeOneCharacter(part) : p)).join('.')]),
      );
      // The untouched cookie still works: the forgeries were refused for what was changed.
      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u1' });
    });

    it('treats a truncated cookie, swapped parts and parts of two cookies spliced together as anonymous', async () => {
      const app = await start();
      const [first, second] = await twoCookies(app);
      const [h, k, iv, c, t] = first.split('.');
      const other = second.split('.');

      await expectAnonymous(app, [
        ['last character dropped', first.slice(0, -1)],
        ['cut in half', first.slice(0, Math.floor(first.length / 2))],
        ['tag missing', [h, k, iv, c].join('.')],
        ['ciphertext and tag swapped', [h, k, iv, t, c].join('.')],
        ['iv and ciphertext swapped', [h, k, c, iv, t].join('.')],
        ['ciphertext of another cookie', [h, k, iv, other[3], t].join('.')],
        ['iv of another cookie', [h, k, other[2], c, t].join('.')],
        ['tag of another cookie', [h, k, iv, c, other[4]].join('.')],
      ]);
    });

    it('treats a cookie whose header says alg none, garbage and an 8 KB value as anonymous', async () => {
      const app = await start();
      const [cookie] = await twoCookies(app);
      const [header, ...rest] = cookie.split('.');
      const withHeader = (fields: object): string => [b64url(JSON.stringify({ ...JSON.parse(unb64url(header)), ...fields })), ...rest].join('.');
      const unsecured = `${b64url(JSON.stringify({ alg: 'none' }))}..${b64url('{"v":1}')}.${b64url('{"d":{"userId":"admin"}}')}.`;

      await expectAnonymous(app, [
        ['alg none in the real header', withHeader({ alg: 'none' })],
        ['alg none, enc removed', [b64url(JSON.stringify({ alg: 'none' })), ...rest].join('.')],
        ['a hand-made unsecured token', unsecured],
        ['another enc', withHeader({ enc: 'A128GCM' })],
        ['garbage', 'not-a-session-at-all'],
        ['five empty parts', '....'],
        ['random base64url parts', Array.from({ length: 5 }, (_, i) => 'QUJD'.repeat(i + 1)).join('.')],
        ['an 8 KB value', 'A'.repeat(8192)],
        ['the real cookie padded to 8 KB', `${cookie}${'A'.repeat(8192 - cookie.length)}`],
      ]);
    });
  });

  describe('size', () => {
    it('answers 413 SESSION_TOO_LARGE, without a cookie, for a write that makes the session larger than 4096 bytes; the previous cookie keeps its data', async () => {
      const app = await start();
      const cookie = requireSid(await app.http().post('/set').send({ kept: 'yes' }).expect(200));

      const res = await app
        .http()
        .post('/set')
        .set('Cookie', cookieHeader(cookie))
        .send({ kept: 'overwritten', blob: 'x'.repeat(5000) });

      expect(res.status).toBe(413);
      expect(res.body).toEqual({
        statusCode: 413,
        error: 'Payload Too Large',
        code: 'SESSION_TOO_LARGE',
        message: expect.stringContaining('4096'),
      });
      expect(setCookies(res)).toEqual([]);
      expect(tokenOf(res)).toBeUndefined();
      expect(await dataOf(app, cookie)).toEqual({ kept: 'yes' });
    });

    it('answers 413 for a session whose seal fits in 4096 bytes but whose Set-Cookie line (name and attributes) does not', async () => {
      const cookieApp = await start();
      // The same store over the header transport, where the credential is the bare seal.
      const headerApp = await start({ transport: 'header' });
      const sealFor = async (padding: number): Promise<string> =>
        requireToken(
          await headerApp
            .http()
            .post('/set')
            .send({ pad: 'x'.repeat(padding) })
            .expect(200),
        );
      const sealLength = async (padding: number): Promise<number> => (await sealFor(padding)).length;

      // The attributes the cookie line adds to the seal, measured on a real line.
      const small = await cookieApp.http().post('/set').send({ pad: 'x' }).expect(200);
      const overhead = setCookieLine(small)!.length - requireSid(small).length;
      expect(overhead).toBeGreaterThan(0);

      // A seal grows by 4 base64url characters per 3 bytes of data: aim for its middle.
      const target = 4096 - Math.floor(overhead / 2);
      const base = await sealLength(1000);
      let padding = 1000 + Math.floor(((target - base) * 3) / 4);
      for (let step = 0; step < 50; step += 1) {
        const length = await sealLength(padding);
        if (length <= 4096 && length + overhead > 4096) break;
        padding += length > 4096 ? -1 : 1;
      }
      const seal = await sealFor(padding);
      expect(seal.length).toBeLessThanOrEqual(4096);
      expect(seal.length + overhead).toBeGreaterThan(4096);
      // As a bare token the seal is within the limit, and is accepted.
      const read = await headerApp.http().get('/read').set('Authorization', `Bearer ${seal}`).expect(200);
      expect(read.body.data).toEqual({ pad: 'x'.repeat(padding) });

      const res = await cookieApp
        .http()
        .post('/set')
        .send({ pad: 'x'.repeat(padding) });

      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ statusCode: 413, error: 'Payload Too Large', code: 'SESSION_TOO_LARGE' });
      expect(res.body.message).toContain('4096');
      expect(res.body.message).toContain('cookie "sid"');
      expect(setCookies(res)).toEqual([]);
    });
  });

  describe('logout and the stateless limit', () => {
    it('clears the cookie on logout (an expiry in the past), and the next request without it is anonymous', async () => {
      const app = await start();
      const cookie = await login(app, 'u1');

      const res = await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).expect(204);

      const line = setCookieLine(res);
      expect(isClearing(line)).toBe(true);
      expect(line).toMatch(/Expires=Thu, 01 Jan 1970 00:00:00 GMT/i);
      expect(res.headers['cache-control']).toBe('no-store');
      await app.http().get('/guarded').expect(401);
      await app.http().get('/me').expect(200, { userId: null });
    });

    it('cannot revoke: the old cookie replayed after logout still opens (the documented stateless limit)', async () => {
      const app = await start();
      const cookie = await login(app, 'u1');
      await app.http().post('/logout').set('Cookie', cookieHeader(cookie)).expect(204);

      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u1' });
    });
  });

  describe('timeouts from the timestamps inside the seal', () => {
    it('treats a cookie not used for longer than idleTimeout as anonymous', async () => {
      const app = await start({ idleTimeout: 300, touchAfter: 50, absoluteTimeout: '1h' });
      const cookie = await login(app, 'u1');
      const record = await readSeal(cookie);
      expect(record.e - record.s).toBe(300);
      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u1' });

      await delay(450);

      await app.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(401);
      expect(await dataOf(app, cookie)).toEqual({});
    });

    it('ends a session kept active by requests once its absolute timeout is reached', async () => {
      const app = await start({ idleTimeout: 500, absoluteTimeout: 600, touchAfter: 50 });
      let cookie = await login(app, 'u1');
      const created = (await readSeal(cookie)).c;
      const reissued: string[] = [];
      let ended = false;

      // A client that keeps using its session, always with the latest cookie it was given.
      for (let i = 0; i < 40 && !ended; i += 1) {
        await delay(75);
        const res = await app.http().get('/guarded').set('Cookie', cookieHeader(cookie));
        expect([200, 401]).toContain(res.status);
        ended = res.status === 401;
        if (res.status === 200 && setCookieLine(res)) {
          cookie = requireSid(res);
          reissued.push(cookie);
        }
      }

      expect(ended).toBe(true);
      // Activity did slide the session (new cookies were handed out), up to the absolute cap.
      expect(reissued.length).toBeGreaterThan(0);
      const last = await readSeal(reissued[reissued.length - 1]);
      expect(last.c).toBe(created);
      expect(last.s).toBeGreaterThan(created);
      expect(last.e).toBeLessThanOrEqual(created + 600);
      expect(await dataOf(app, cookie)).toEqual({});
    });
  });

  describe('sliding expiry', () => {
    it('re-issues the cookie with a later expiry on a request after touchAfter, and sends none before', async () => {
      const app = await start({ idleTimeout: '1m', touchAfter: 300 });
      const cookie = await login(app, 'u1');

      const early = await app.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200);
      expect(setCookies(early)).toEqual([]);

      await delay(400);
      const late = await app.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200);

      const renewed = requireSid(late);
      expect(late.headers['cache-control']).toBe('no-store');
      const [before, after] = [await readSeal(cookie), await readSeal(renewed)];
      expect(after.id).toBe(before.id);
      expect(after.s).toBeGreaterThan(before.s);
      expect(after.e).toBeGreaterThan(before.e);
      expect(after.d).toEqual(before.d);
      await app.http().get('/guarded').set('Cookie', cookieHeader(renewed)).expect(200, { userId: 'u1' });
    });
  });

  describe('what a stateless store cannot do', () => {
    it("answers 501 with a clear message to listing a user's sessions (SessionService.listForUser), not 500", async () => {
      const app = await start();
      const cookie = await login(app, 'u1');

      const res = await app.http().get('/sessions').set('Cookie', cookieHeader(cookie));

      expect(res.status).toBe(501);
      expect(res.body).toEqual({
        statusCode: 501,
        error: 'Not Implemented',
        code: 'SESSION_STORE_UNSUPPORTED',
        message: expect.stringMatching(/cookie session store cannot list a user's sessions/),
      });
    });

    it('keeps only the last response: of two concurrent writes to different fields, each cookie holds only its own field (the declared stateless limit)', async () => {
      const app = await start();
      const cookie = requireSid(await app.http().post('/set').send({ base: 1 }).expect(200));

      const [first, second] = await Promise.all([
        app.http().post('/field/a/1').set('Cookie', cookieHeader(cookie)).expect(200),
        app.http().post('/field/b/2').set('Cookie', cookieHeader(cookie)).expect(200),
      ]);

      expect(await dataOf(app, requireSid(first))).toEqual({ base: 1, a: '1' });
      expect(await dataOf(app, requireSid(second))).toEqual({ base: 1, b: '2' });
    });
  });

  describe('header transport', () => {
    it("with transport 'header', returns the seal in X-Session-Token on login and accepts it as a Bearer token", async () => {
      const app = await start({ transport: 'header' });

      const res = await app.http().post('/login').send({ userId: 'api-user' }).expect(200);
      const token = requireToken(res);

      expect(setCookieLine(res)).toBeUndefined();
      expect(res.headers['cache-control']).toBe('no-store');
      expect(token.split('.')).toHaveLength(5);
      expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'dir', enc: 'A256GCM' });
      await app.http().get('/guarded').set('Authorization', `Bearer ${token}`).expect(200, { userId: 'api-user' });
      await app.http().get('/guarded').set('Cookie', cookieHeader(token)).expect(401);
    });

    it("with transport 'both', acts as the header's user when a request carries both (the Authorization header wins)", async () => {
      const app = await start({ transport: 'both' });
      const cookieRes = await app.http().post('/login').send({ userId: 'cookie-user' }).expect(200);
      const cookieUser = requireSid(cookieRes);
      expect(requireToken(cookieRes)).toBe(cookieUser);
      const headerUser = requireToken(await app.http().post('/login').send({ userId: 'header-user' }).expect(200));

      await app.http().get('/guarded').set('Cookie', cookieHeader(cookieUser)).expect(200, { userId: 'cookie-user' });
      await app
        .http()
        .get('/guarded')
        .set('Cookie', cookieHeader(cookieUser))
        .set('Authorization', `Bearer ${headerUser}`)
        .expect(200, { userId: 'header-user' });
    });
  });

  describe('streaming', () => {
    it('sets the fields of a streamed response (StreamableFile) and hands the resealed cookie out with it', async () => {
      const app = await start();
      const cookie = requireSid(await app.http().post('/set').send({ before: 1 }).expect(200));

      const res = await app.http().post('/stream').set('Cookie', cookieHeader(cookie)).send({ streamed: true }).buffer(true).expect(200);

      expect(res.text).toBe('streamed body');
      const next = requireSid(res);
      expect(next).not.toBe(cookie);
      expect(await dataOf(app, next)).toEqual({ before: 1, streamed: true });
    });
  });
});
