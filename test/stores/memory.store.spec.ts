import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { SessionConfigError, SessionFieldNotJsonError } from '../../lib/session.errors.js';
import { MemoryStore, type MemoryStoreOptions } from '../../lib/stores/memory.store.js';
import type { StoredSession } from '../../lib/stores/session-store.js';
import { describeSessionStoreConformance } from '../../lib/testing/index.js';

describeSessionStoreConformance('MemoryStore', {
  createStore: () => new MemoryStore(),
});

const HOUR = 60 * 60_000;

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return {
    id: randomBytes(32).toString('base64url'),
    data: { visits: 1 },
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + HOUR,
    userId: null,
    ...overrides,
  };
}

describe('MemoryStore', () => {
  const opened: MemoryStore[] = [];
  const open = (options?: MemoryStoreOptions): MemoryStore => {
    const store = new MemoryStore(options);
    opened.push(store);
    return store;
  };

  afterEach(() => {
    jest.useRealTimers();
    for (const store of opened.splice(0)) store.onApplicationShutdown();
  });

  it('names itself "memory"', () => {
    expect(open().kind).toBe('memory');
  });

  describe('sweeper', () => {
    it('sweep() reclaims expired sessions, keeps live ones and returns how many it removed', async () => {
      const store = open();
      const live = newSession({ userId: 'u1' });
      await store.create(live);
      await store.create(newSession({ userId: 'u1', expiresAt: Date.now() - 1 }));
      await store.create(newSession({ expiresAt: Date.now() - 1_000 }));
      expect(store.size).toBe(3);

      expect(store.sweep()).toBe(2);

      expect(store.size).toBe(1);
      await expect(store.get(live.id)).resolves.not.toBeNull();
      expect((await store.listByUser('u1')).map((s) => s.id)).toEqual([live.id]);
      expect(store.sweep()).toBe(0);
    });

    it('sweeps expired sessions by itself every sweepInterval', async () => {
      jest.useFakeTimers();
      const store = open({ sweepInterval: 1_000 });
      await store.create(newSession({ expiresAt: Date.now() + 500 }));
      await store.create(newSession());

      jest.advanceTimersByTime(999);
      expect(store.size).toBe(2);
      jest.advanceTimersByTime(1);
      expect(store.size).toBe(1);
    });

    it('never keeps the process alive: its timer is unref\'d', () => {
      const store = open();

      expect(store['timer']?.hasRef()).toBe(false);
    });

    it('stops on application shutdown, and shutting down twice is harmless', async () => {
      jest.useFakeTimers();
      const store = open({ sweepInterval: 1_000 });
      await store.create(newSession({ expiresAt: Date.now() + 500 }));

      store.onApplicationShutdown();
      store.onApplicationShutdown();
      jest.advanceTimersByTime(5_000);

      expect(store['timer']).toBeUndefined();
      expect(jest.getTimerCount()).toBe(0);
      expect(store.size).toBe(1);
    });

    it('still refuses to return an expired session after shutdown', async () => {
      const store = open();
      const session = newSession({ expiresAt: Date.now() - 1 });
      await store.create(session);
      store.onApplicationShutdown();

      await expect(store.get(session.id)).resolves.toBeNull();
      expect(store.size).toBe(0);
    });
  });

  describe('maxSessions', () => {
    it('evicts the least recently used session: reading the first makes the second the oldest', async () => {
      const store = open({ maxSessions: 2 });
      const [first, second, third] = [newSession(), newSession(), newSession()];
      await store.create(first);
      await store.create(second);
      await store.get(first.id);

      await store.create(third);

      expect(store.size).toBe(2);
      await expect(store.get(second.id)).resolves.toBeNull();
      await expect(store.get(first.id)).resolves.not.toBeNull();
      await expect(store.get(third.id)).resolves.not.toBeNull();
    });

    it('counts a commit or a touch as a use', async () => {
      const store = open({ maxSessions: 2 });
      const [first, second, third, fourth] = [newSession(), newSession(), newSession(), newSession()];
      await store.create(first);
      await store.create(second);
      await store.commit(first.id, { set: { n: 1 }, unset: [], expiresAt: first.expiresAt, lastSeenAt: Date.now() });
      await store.create(third);
      await store.touch(first.id, first.expiresAt, Date.now());
      await store.create(fourth);

      await expect(store.get(second.id)).resolves.toBeNull();
      await expect(store.get(third.id)).resolves.toBeNull();
      await expect(store.get(first.id)).resolves.not.toBeNull();
      await expect(store.get(fourth.id)).resolves.not.toBeNull();
    });

    it('drops an evicted session from the user index, and a rotation stays within the limit', async () => {
      const store = open({ maxSessions: 2 });
      const evicted = newSession({ userId: 'u-evicted' });
      const rotating = newSession({ userId: 'u-rotating' });
      await store.create(evicted);
      await store.create(rotating);
      await store.create(newSession());
      const rotated = newSession({ userId: 'u-rotating' });

      expect(await store.listByUser('u-evicted')).toEqual([]);
      await store.rotate(rotating.id, rotated);

      expect(store.size).toBe(2);
      expect((await store.listByUser('u-rotating')).map((s) => s.id)).toEqual([rotated.id]);
      await expect(store.destroyByUser('u-evicted')).resolves.toBe(0);
    });
  });

  describe('data isolation', () => {
    it('returns a fresh copy on every read', async () => {
      const store = open();
      const session = newSession({ data: { profile: { name: 'Ada' } } });
      await store.create(session);

      const first = await store.get(session.id);
      const second = await store.get(session.id);

      expect(first!.data).not.toBe(second!.data);
      expect(first!.data.profile).not.toBe(second!.data.profile);
      expect(first!.data.profile).not.toBe(session.data.profile);
    });

    it('keeps the data of a rotated session apart from the object passed in', async () => {
      const store = open();
      const old = newSession();
      await store.create(old);
      const next = newSession({ data: { cart: ['a'] } });
      await store.rotate(old.id, next);

      (next.data.cart as string[]).push('b');

      await expect(store.get(next.id)).resolves.toMatchObject({ data: { cart: ['a'] } });
    });

    it('rejects a value JSON cannot carry, naming the field, and leaves the session as it was', async () => {
      const store = open();
      const session = newSession({ data: { visits: 1 } });
      await store.create(session);

      const commit = store.commit(session.id, {
        set: { visits: 2, big: 10n },
        unset: ['visits'],
        expiresAt: session.expiresAt + 1,
        lastSeenAt: Date.now(),
      });

      await expect(commit).rejects.toBeInstanceOf(SessionFieldNotJsonError);
      await expect(commit).rejects.toMatchObject({ field: 'big' });
      await expect(store.get(session.id)).resolves.toMatchObject({ data: { visits: 1 }, expiresAt: session.expiresAt });
    });

    it('treats a field set to undefined as removed, as JSON would', async () => {
      const store = open();
      const session = newSession({ data: { a: 1, gone: undefined } });
      await store.create(session);
      await store.commit(session.id, { set: { a: undefined }, unset: [], expiresAt: session.expiresAt, lastSeenAt: 1 });

      const stored = await store.get(session.id);

      expect(Object.keys(stored!.data)).toEqual([]);
    });
  });

  describe('options', () => {
    it.each([0, -1, 1.5, Number.NaN])('rejects maxSessions %p, naming the option', (maxSessions) => {
      expect(() => new MemoryStore({ maxSessions })).toThrow(SessionConfigError);
      expect(() => new MemoryStore({ maxSessions })).toThrow(/"store\.maxSessions" must be a positive whole number/);
    });

    it.each([0, -5, 2 ** 31])('rejects sweepInterval %p, naming the option', (sweepInterval) => {
      expect(() => new MemoryStore({ sweepInterval })).toThrow(/"store\.sweepInterval" must be a positive whole number/);
    });
  });
});
