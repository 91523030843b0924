/**
 * The client record (`recordClient`: who signed a session in) in RedisStore: kept as metadata
 * beside the data, in the session hash's `~k` field as JSON, never as a data field. It travels
 * through create, commit (set, keep, clear), rotation and listByUser.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import type { SessionChange, SessionClient, StoredSession } from '../../lib/stores/session-store.js';
import { redisStoreOnServer } from '../support/redis-store-on-server.js';

const HOUR = 60 * 60_000;

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(9).toString('base64url')}`;
const sessionKey = (id: string): string => `sess:{${id}}`;

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { n: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

const laptop: SessionClient = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', ip: '203.0.113.7' };
const phone: SessionClient = { userAgent: 'Mobile Safari — “quoted” 🎉', ip: '2001:db8::1' };

describe('RedisStore client record', () => {
  const redis = redisStoreOnServer();

  const change = (session: StoredSession, extra: Partial<SessionChange> = {}): SessionChange => ({
    set: {},
    unset: [],
    expiresAt: session.expiresAt,
    lastSeenAt: Date.now(),
    ...extra,
  });

  it('keeps a created client record in the ~k field as JSON, beside the data and not in it, and reads it back', async () => {
    const session = newSession({ client: laptop, data: { cart: ['a'] } });

    await redis.store.create(session);

    expect(JSON.parse((await redis.probe.hget(sessionKey(session.id), '~k'))!)).toEqual(laptop);
    const stored = await redis.store.get(session.id);
    expect(stored?.client).toEqual(laptop);
    expect(stored?.data).toEqual({ cart: ['a'] });
  });

  it('reads a session created without a client record with client null, and stores no ~k field', async () => {
    const session = newSession();

    await redis.store.create(session);

    expect(await redis.probe.hexists(sessionKey(session.id), '~k')).toBe(0);
    expect((await redis.store.get(session.id))?.client ?? null).toBeNull();
  });

  it('sets, keeps and clears the record through commits, in the same step as the data', async () => {
    const session = newSession();
    await redis.store.create(session);

    await expect(redis.store.commit(session.id, change(session, { set: { signedIn: true }, client: phone }))).resolves.toBe(true);
    expect(await redis.store.get(session.id)).toMatchObject({ client: phone, data: { n: 1, signedIn: true } });

    await redis.store.commit(session.id, change(session, { set: { n: 2 } }));
    expect((await redis.store.get(session.id))?.client).toEqual(phone);

    await redis.store.commit(session.id, change(session, { client: laptop }));
    expect((await redis.store.get(session.id))?.client).toEqual(laptop);

    await redis.store.commit(session.id, change(session, { client: null }));
    expect((await redis.store.get(session.id))?.client ?? null).toBeNull();
    expect(await redis.probe.hexists(sessionKey(session.id), '~k')).toBe(0);
  });

  it('writes no record to a session that is gone', async () => {
    const id = newId();

    await expect(redis.store.commit(id, change(newSession({ id }), { client: laptop }))).resolves.toBe(false);

    expect(await redis.probe.exists(sessionKey(id))).toBe(0);
  });

  it('keeps the record the rotated session carries under the new id, and none under the old', async () => {
    const userId = newUserId();
    const old = newSession({ userId, client: laptop });
    await redis.store.create(old);

    const next = newSession({ userId, client: phone, data: old.data, createdAt: old.createdAt });
    await expect(redis.store.rotate(old.id, next)).resolves.toBe(true);

    expect((await redis.store.get(next.id))?.client).toEqual(phone);
    await expect(redis.store.get(old.id)).resolves.toBeNull();
  });

  it("lists each of a user's sessions with its own record, or null", async () => {
    const userId = newUserId();
    const now = Date.now();
    const onLaptop = newSession({ userId, client: laptop, createdAt: now - 2_000 });
    const onPhone = newSession({ userId, client: phone, createdAt: now - 1_000 });
    const unrecorded = newSession({ userId, createdAt: now });
    for (const session of [onLaptop, onPhone, unrecorded]) await redis.store.create(session);

    const listed = await redis.store.listByUser(userId);

    expect(listed.map(({ id, client }) => ({ id, client: client ?? null }))).toEqual([
      { id: onLaptop.id, client: laptop },
      { id: onPhone.id, client: phone },
      { id: unrecorded.id, client: null },
    ]);
  });

  it('does not list a session whose record is unreadable, as get() does not return it, and still revokes it', async () => {
    const userId = newUserId();
    const session = newSession({ userId, client: laptop });
    await redis.store.create(session);
    await redis.probe.hset(sessionKey(session.id), '~k', '{"ip":');

    await expect(redis.store.get(session.id)).resolves.toBeNull();
    await expect(redis.store.listByUser(userId)).resolves.toEqual([]);
    await expect(redis.store.destroyByUser(userId)).resolves.toEqual([session.id]);
    expect(await redis.probe.exists(sessionKey(session.id))).toBe(0);
  });
});
