import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import { MemoryStore, SessionConfigError, SessionService } from '../../lib/index.js';
import type { SessionEvent } from '../../lib/index.js';
import { closeAll, cookieHeader, createFixtureApp, dataOf, idOf, keyOf, requireSid } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { dumpMemoryStore, marker } from '../fixtures/store-dumps.js';
import { pollUntil } from '../support/waiting.js';

/**
 * `encryptionKeys` through the module, on apps that share one store as nodes share one: what the
 * store holds, what the application still sees in the clear (data, listings, events), and what
 * happens to a session no configured key opens.
 */

const newKey = (): string => randomBytes(32).toString('base64url');

const apps: FixtureApp[] = [];
afterEach(() => closeAll(apps));

async function node(store: MemoryStore, encryptionKeys?: string[], options: Record<string, unknown> = {}): Promise<FixtureApp> {
  const app = await createFixtureApp({ store, ...(encryptionKeys ? { encryptionKeys } : {}), ...options });
  apps.push(app);
  return app;
}

async function signIn(app: FixtureApp, userId: string, fields: Record<string, unknown> = {}): Promise<string> {
  const cookie = requireSid(
    await app
      .http()
      .post('/login')
      .set('User-Agent', 'agent-of-' + userId)
      .send({ userId })
      .expect(200),
  );
  if (Object.keys(fields).length > 0) await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send(fields).expect(200);
  return cookie;
}

describe('encryptionKeys', () => {
  it('keeps data, user ids and the client record out of the store in the clear, and hands them to the application as written', async () => {
    const store = new MemoryStore();
    const app = await node(store, [newKey()], { recordClient: true });
    const [userId, secret] = [marker('user'), marker('secret')];

    const cookie = await signIn(app, userId, { secret, profile: { secret } });

    expect(await dataOf(app, cookie)).toEqual({ userId, secret, profile: { secret } });
    const held = dumpMemoryStore(store);
    expect(held).toContain(keyOf(cookie));
    for (const clear of [idOf(cookie), userId, secret, `agent-of-${userId}`]) expect(held).not.toContain(clear);
    const listed = await app.http().get('/sessions').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(listed.body).toEqual([expect.objectContaining({ id: keyOf(cookie), current: true, userAgent: `agent-of-${userId}` })]);
  });

  it('reports the clear user id in expired events', async () => {
    const store = new MemoryStore({ sweepInterval: 50 });
    const app = await node(store, [newKey()], { idleTimeout: 300, touchAfter: 0 });
    const expired: SessionEvent[] = [];
    app.app.get(SessionService).on('expired', (event) => expired.push(event));
    const userId = marker('user');

    const cookie = await signIn(app, userId);

    await pollUntil('an expired event', () => (expired.length > 0 ? true : undefined), { timeoutMs: 5_000 });
    expect(expired).toEqual([expect.objectContaining({ type: 'expired', sessionId: keyOf(cookie), userId })]);
  });

  it('keeps maxSessionsPerUser exact under keys: the third sign-in evicts the oldest, whose index entry holds only a token', async () => {
    const store = new MemoryStore();
    const app = await node(store, [newKey()], { maxSessionsPerUser: 2 });
    const userId = marker('user');

    const [first, second, third] = [await signIn(app, userId), await signIn(app, userId), await signIn(app, userId)];

    await app.http().get('/guarded').set('Cookie', cookieHeader(first)).expect(401);
    for (const kept of [second, third]) await app.http().get('/guarded').set('Cookie', cookieHeader(kept)).expect(200, { userId });
    const listed = await app.http().get('/sessions').set('Cookie', cookieHeader(third)).expect(200);
    expect(listed.body.map((session: { id: string }) => session.id)).toEqual([keyOf(second), keyOf(third)]);
    expect(dumpMemoryStore(store)).not.toContain(userId);
  });

  it('lets the nodes of a rotation (new key first, old key second) read what the old key sealed, and rewrites it under the new one', async () => {
    const store = new MemoryStore();
    const [oldKey, newKey_] = [newKey(), newKey()];
    const before = await node(store, [oldKey]);
    const during = await node(store, [newKey_, oldKey]);
    const after = await node(store, [newKey_]);
    const used = await signIn(before, 'u-used', { cart: ['a'] });
    const idle = await signIn(before, 'u-idle', { cart: ['b'] });

    // A read, nothing written by the handler: the node writes the session back under the new key.
    await during.http().get('/guarded').set('Cookie', cookieHeader(used)).expect(200, { userId: 'u-used' });

    expect(await dataOf(after, used)).toEqual({ userId: 'u-used', cart: ['a'] });
    await after.http().get('/guarded').set('Cookie', cookieHeader(idle)).expect(401);
    expect(await dataOf(after, idle)).toEqual({});
  });

  it('treats a session no configured key opens as anonymous: never a 5xx, nothing half-read, a warning naming its key', async () => {
    const store = new MemoryStore();
    const writer = await node(store, [newKey()]);
    const warnings: string[] = [];
    const logger = { log: () => undefined, error: () => undefined, warn: (message: unknown) => void warnings.push(String(message)) };
    const stranger = await node(store, [newKey()], { logger });
    const keyless = await node(store, undefined, { logger });
    const cookie = await signIn(writer, 'u1', { isAdmin: false });

    for (const reader of [stranger, keyless]) {
      await reader.http().get('/guarded').set('Cookie', cookieHeader(cookie)).expect(401);
      await reader.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200, { data: {}, isNew: true });
    }

    expect(warnings.some((line) => line.includes(keyOf(cookie)) && /encryptionKeys/.test(line))).toBe(true);
    expect(warnings.join('\n')).not.toContain(idOf(cookie));
    // The writer still reads it whole: an unreadable read destroyed nothing.
    expect(await dataOf(writer, cookie)).toEqual({ userId: 'u1', isAdmin: false });
  });

  it('refuses to start with a key that is not 32 bytes of base64url, or with the cookie store, naming the option', async () => {
    await expect(createFixtureApp({ encryptionKeys: ['not-a-key'] })).rejects.toThrow(SessionConfigError);
    await expect(createFixtureApp({ encryptionKeys: ['not-a-key'] })).rejects.toThrow(/"encryptionKeys\[0\]" must be 32 random bytes in base64url/);
    await expect(createFixtureApp({ encryptionKeys: [newKey()], store: { type: 'cookie' } })).rejects.toThrow(
      /"encryptionKeys" does not apply to the cookie store/,
    );
  });
});
