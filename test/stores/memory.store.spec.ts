import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import { SessionConfigError, SessionFieldNotJsonError, SessionTooLargeError } from '../../lib/session.errors.js';
import { createSessionStore } from '../../lib/stores/index.js';
import { MemoryStore, type MemoryStoreOptions } from '../../lib/stores/index.js';
import type { ExpiredSession, SessionClient, StoredSession } from '../../lib/stores/session-store.js';
import { describeSessionStoreConformance } from '../../lib/testing/index.js';
import { dumpMemoryStore } from '../fixtures/store-dumps.js';

/** Short enough that the conformance expiry reports (150 ms lifetimes) arrive within their deadline. */
const CONFORMANCE_SWEEP_INTERVAL = 100;

// The test functions passed in, as a Vitest user passes Vitest's; the other built-in stores'
// suites take jest's globals, so both ways run.
describeSessionStoreConformance('MemoryStore', {
  createStore: () => new MemoryStore({ sweepInterval: CONFORMANCE_SWEEP_INTERVAL }),
  framework: { describe, it, expect, beforeAll, afterAll },
  dump: async (store) => dumpMemoryStore(store),
});

const HOUR = 60 * 60_000;

const MiB = 1024 * 1024;

/** A session whose one field holds `chars` characters: every one made this way has the same size. */
const sessionOf = (chars: number, overrides: Partial<StoredSession> = {}) => newSession({ data: { blob: 'x'.repeat(chars) }, ...overrides });

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

    it("never keeps the process alive: its timer is unref'd", () => {
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

  describe('per-user index', () => {
    const idsOf = async (store: MemoryStore, userId: string) => (await store.listByUser(userId)).map((s) => s.id).sort();

    it('follows a user from one session to several and back to one, and forgets the user after the last', async () => {
      const store = open();
      const [first, second, third] = [newSession({ userId: 'u1' }), newSession({ userId: 'u1' }), newSession({ userId: 'u1' })];

      await store.create(first);
      await store.create(first);
      expect(await idsOf(store, 'u1')).toEqual([first.id]);
      await store.create(second);
      expect(await idsOf(store, 'u1')).toEqual([first.id, second.id].sort());
      await store.destroy(first.id);
      expect(await idsOf(store, 'u1')).toEqual([second.id]);
      await store.create(third);
      expect(await idsOf(store, 'u1')).toEqual([second.id, third.id].sort());

      await expect(store.destroyByUser('u1', third.id)).resolves.toEqual([second.id]);
      expect(await idsOf(store, 'u1')).toEqual([third.id]);
      await store.commit(third.id, { set: {}, unset: [], expiresAt: third.expiresAt, lastSeenAt: Date.now(), userId: 'u2' });
      expect(await idsOf(store, 'u1')).toEqual([]);
      expect(await idsOf(store, 'u2')).toEqual([third.id]);
      await store.destroy(third.id);

      expect(await idsOf(store, 'u2')).toEqual([]);
      expect(store.heldBytes).toBe(0);
    });

    it('keeps apart two users who share a session id in turn, and moves a session between users by rotation', async () => {
      const store = open();
      const shared = newSession({ userId: 'u1' });
      const other = newSession({ userId: 'u1' });
      await store.create(shared);
      await store.create(other);

      await store.create({ ...shared, userId: 'u2' });
      const rotated = newSession({ userId: 'u2' });
      await store.rotate(other.id, rotated);

      expect(await idsOf(store, 'u1')).toEqual([]);
      expect(await idsOf(store, 'u2')).toEqual([shared.id, rotated.id].sort());
      await expect(store.destroyByUser('u2')).resolves.toEqual(expect.arrayContaining([shared.id, rotated.id]));
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
      await expect(store.destroyByUser('u-evicted')).resolves.toEqual([]);
    });
  });

  describe('maxBytes', () => {
    /** What the store counts for one session made by {@link sessionOf}. */
    async function bytesOfSession(chars: number): Promise<number> {
      const store = open();
      await store.create(sessionOf(chars));
      return store.heldBytes;
    }

    /** A store with room for `fit` sessions of `chars` characters, and half of one more. */
    async function storeFitting(fit: number, chars: number): Promise<{ store: MemoryStore; perSession: number }> {
      const perSession = await bytesOfSession(chars);
      return { store: open({ maxBytes: fit * perSession + Math.floor(perSession / 2) }), perSession };
    }

    it('is bounded by default, to 64 MiB', async () => {
      const store = open();

      expect(store.maxBytes).toBe(64 * MiB);
      for (let i = 0; i < 80; i += 1) await store.create(sessionOf(MiB / 2));

      expect(store.heldBytes).toBeLessThanOrEqual(64 * MiB);
      expect(store.size).toBeLessThan(80);
    });

    it('counts at least two bytes per character of a field, and nothing once the session is gone', async () => {
      const store = open();
      const session = sessionOf(10_000);
      await store.create(session);

      expect(store.heldBytes).toBeGreaterThanOrEqual(2 * 10_000);
      await store.destroy(session.id);
      expect(store.heldBytes).toBe(0);
    });

    it('evicts the least recently used sessions once a new one would not fit, and keeps the total within the bound', async () => {
      const { store } = await storeFitting(3, 1_000);
      const [first, second, third, fourth, fifth] = [1, 2, 3, 4, 5].map(() => sessionOf(1_000));
      for (const session of [first, second, third]) await store.create(session);

      await store.create(fourth);
      await store.create(fifth);

      expect(store.size).toBe(3);
      expect(store.heldBytes).toBeLessThanOrEqual(store.maxBytes);
      await expect(store.get(first.id)).resolves.toBeNull();
      await expect(store.get(second.id)).resolves.toBeNull();
      for (const kept of [third, fourth, fifth]) await expect(store.get(kept.id)).resolves.not.toBeNull();
    });

    it('counts a read as a use: reading the oldest session makes the next one the first evicted', async () => {
      const { store } = await storeFitting(3, 1_000);
      const [first, second, third, fourth] = [1, 2, 3, 4].map(() => sessionOf(1_000));
      for (const session of [first, second, third]) await store.create(session);
      await store.get(first.id);

      await store.create(fourth);

      await expect(store.get(second.id)).resolves.toBeNull();
      await expect(store.get(first.id)).resolves.not.toBeNull();
    });

    it('evicts for a commit that grows a session, never the session being written', async () => {
      const { store, perSession } = await storeFitting(3, 1_000);
      const [first, second, third] = [1, 2, 3].map(() => sessionOf(1_000));
      for (const session of [first, second, third]) await store.create(session);

      const grown = await store.commit(first.id, { set: { more: 'y'.repeat(1_000) }, unset: [], expiresAt: first.expiresAt, lastSeenAt: Date.now() });

      expect(grown).toBe(true);
      expect(store.heldBytes).toBeLessThanOrEqual(store.maxBytes);
      expect(store.heldBytes).toBeGreaterThan(2 * perSession);
      await expect(store.get(second.id)).resolves.toBeNull();
      await expect(store.get(first.id)).resolves.toMatchObject({ data: { more: 'y'.repeat(1_000) } });
      await expect(store.get(third.id)).resolves.not.toBeNull();
    });

    it('counts a session by what it holds, however it got there: commits, removals, a user and a client', async () => {
      const store = open();
      const built = newSession({ data: { a: 'x'.repeat(300) } });
      await store.create(built);
      await store.commit(built.id, {
        set: { b: [1, 2, 3], a: 'short' },
        unset: [],
        expiresAt: built.expiresAt,
        lastSeenAt: 1,
        userId: 'u1',
        client: { ip: '203.0.113.7' },
      });
      await store.commit(built.id, { set: { c: undefined }, unset: ['b', 'b', 'missing'], expiresAt: built.expiresAt, lastSeenAt: 1 });
      await store.commit(built.id, { set: { b: [4, 5, 6] }, unset: ['b'], expiresAt: built.expiresAt, lastSeenAt: 1 });
      const afterCommits = store.heldBytes;

      const direct = open();
      await direct.create(newSession({ data: { a: 'short', b: [4, 5, 6] }, userId: 'u1', client: { ip: '203.0.113.7' } }));

      expect(afterCommits).toBe(direct.heldBytes);
      const rotated = newSession({ data: { a: 'short' } });
      await store.rotate(built.id, rotated);
      await store.destroy(rotated.id);
      expect(store.heldBytes).toBe(0);
    });

    it('counts the same session again after its id is reused, not twice', async () => {
      const store = open();
      const session = sessionOf(500);
      await store.create(session);
      const once = store.heldBytes;

      await store.create(session);

      expect(once).toBeGreaterThan(2 * 500);
      expect(store.heldBytes).toBe(once);
    });

    describe('a single session larger than the whole bound', () => {
      it('is refused with a 413 naming maxBytes, and evicts nothing', async () => {
        const { store } = await storeFitting(2, 1_000);
        const kept = [sessionOf(1_000), sessionOf(1_000)];
        for (const session of kept) await store.create(session);
        const held = store.heldBytes;

        const create = store.create(sessionOf(10_000));

        await expect(create).rejects.toBeInstanceOf(SessionTooLargeError);
        await expect(create).rejects.toMatchObject({
          status: 413,
          response: { code: 'SESSION_TOO_LARGE', message: expect.stringContaining('store.maxBytes') },
        });
        expect(store.heldBytes).toBe(held);
        for (const session of kept) await expect(store.get(session.id)).resolves.not.toBeNull();
      });

      it('refuses a commit that would grow a session past it, leaving the session as it was', async () => {
        const { store } = await storeFitting(2, 1_000);
        const session = sessionOf(1_000);
        const other = sessionOf(1_000);
        await store.create(session);
        await store.create(other);
        const held = store.heldBytes;

        const commit = store.commit(session.id, {
          set: { huge: 'z'.repeat(10_000) },
          unset: ['blob'],
          expiresAt: session.expiresAt + 1,
          lastSeenAt: Date.now(),
        });

        await expect(commit).rejects.toBeInstanceOf(SessionTooLargeError);
        expect(store.heldBytes).toBe(held);
        await expect(store.get(session.id)).resolves.toMatchObject({ data: { blob: 'x'.repeat(1_000) }, expiresAt: session.expiresAt });
        await expect(store.get(other.id)).resolves.not.toBeNull();
      });

      it('refuses a rotation to it, and the old id stays alive', async () => {
        const { store } = await storeFitting(2, 1_000);
        const old = sessionOf(1_000);
        await store.create(old);

        await expect(store.rotate(old.id, sessionOf(10_000))).rejects.toBeInstanceOf(SessionTooLargeError);

        await expect(store.get(old.id)).resolves.not.toBeNull();
      });
    });
  });

  describe('the production warning', () => {
    const nodeEnv = process.env.NODE_ENV;
    afterEach(() => {
      if (nodeEnv === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = nodeEnv;
    });

    function logged(store: MemoryStore): string[] {
      const lines: string[] = [];
      const keep = (message: unknown) => void lines.push(String(message));
      const logger: LoggerService = { log: keep, warn: keep, error: keep };
      store.useLogger(logger);
      return lines;
    }

    it('warns once per store in production that it holds sessions in one process, with its bound, and names Redis and PostgreSQL', async () => {
      process.env.NODE_ENV = 'production';
      const store = open({ maxBytes: 8 * MiB });
      const lines = logged(store);

      const session = newSession();
      store.onApplicationBootstrap();
      store.onApplicationBootstrap();
      await store.create(session);
      await store.get(session.id);

      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('one process');
      expect(lines[0]).toContain(String(8 * MiB));
      expect(lines[0]).toMatch(/Redis.*PostgreSQL/);
      const another = open();
      const anotherLines = logged(another);
      another.onApplicationBootstrap();
      expect(anotherLines).toHaveLength(1);
    });

    it.each(['development', 'test', undefined])('says nothing when NODE_ENV is %p', (env) => {
      if (env === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = env;
      const store = open();
      const lines = logged(store);

      store.onApplicationBootstrap();

      expect(lines).toEqual([]);
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

    it('keeps what it holds when a caller changes a session it read, at the top or deeper down', async () => {
      const store = open();
      const session = newSession({ data: { profile: { name: 'Ada', roles: ['admin'] }, visits: 1 }, client: { ip: '203.0.113.7' } });
      await store.create(session);

      const read = (await store.get(session.id))!;
      (read.data.profile as { roles: string[] }).roles.push('root');
      (read.data.profile as { name: string }).name = 'Eve';
      read.data.visits = 99;
      read.data.added = true;
      read.client!.ip = '0.0.0.0';

      await expect(store.get(session.id)).resolves.toMatchObject({
        data: { profile: { name: 'Ada', roles: ['admin'] }, visits: 1 },
        client: { ip: '203.0.113.7' },
      });
      expect(Object.keys((await store.get(session.id))!.data)).toEqual(['profile', 'visits']);
    });

    it('keeps every field whole through commits, whatever characters its name and value hold', async () => {
      const store = open();
      const awkward = {
        'colon:\ttab': 'a:\tb',
        'comma,\nline': ',\n",\n"x":\t1',
        '"quoted"': { '}': '{', ']': ['[', '\u2028', 'é😀'] },
        '': '',
      };
      Object.defineProperty(awkward, '__proto__', { value: { polluted: true }, enumerable: true, writable: true, configurable: true });
      const session = newSession({ data: JSON.parse(JSON.stringify({ first: 1, ...awkward, last: 2 })) as StoredSession['data'] });
      await store.create(session);

      await store.commit(session.id, { set: { first: 'one', added: 'x' }, unset: ['last'], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      const { data } = (await store.get(session.id))!;
      expect(Object.getPrototypeOf(data)).toBeNull();
      expect(Object.keys(data)).toEqual(['first', 'colon:\ttab', 'comma,\nline', '"quoted"', '', '__proto__', 'added']);
      expect(data).toEqual({ __proto__: null, first: 'one', ...JSON.parse(JSON.stringify(awkward)), added: 'x' });
      expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ polluted: true });
    });

    it('gives every time back exactly as written, however far from now or fractional', async () => {
      const store = open();
      const later = Date.now() + 40 * 24 * HOUR + 0.25;
      const session = newSession({ createdAt: -0, lastSeenAt: 0.1, expiresAt: later });
      await store.create(session);

      const read = (await store.get(session.id))!;
      expect(Object.is(read.createdAt, -0)).toBe(true);
      expect([read.lastSeenAt, read.expiresAt]).toEqual([0.1, later]);

      await store.commit(session.id, { set: {}, unset: [], lastSeenAt: 1e300, expiresAt: later + 1e-9 });
      await expect(store.get(session.id)).resolves.toMatchObject({ createdAt: -0, lastSeenAt: 1e300, expiresAt: later + 1e-9 });
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

    it.each([
      [0, '0'],
      ['big', '"big"'],
      [-1, '-1'],
      [1.5, '1.5'],
    ])('rejects maxBytes %p, naming the option, the value and the fix', (maxBytes, shown) => {
      const build = () => new MemoryStore({ maxBytes: maxBytes as number });

      expect(build).toThrow(SessionConfigError);
      expect(build).toThrow(/option "store\.maxBytes" must be a whole number of bytes above 0/);
      expect(build).toThrow(`(got ${shown})`);
      expect(build).toThrow(/67108864/);
    });

    it('takes maxBytes from a store config object', async () => {
      const store = (await createSessionStore({ type: 'memory', maxBytes: 4 * MiB, maxSessions: 10 })) as MemoryStore;
      opened.push(store);

      expect(store).toBeInstanceOf(MemoryStore);
      expect(store.maxBytes).toBe(4 * MiB);
    });
  });
});

describe('MemoryStore expiry events', () => {
  const opened: MemoryStore[] = [];
  const open = (options?: MemoryStoreOptions): MemoryStore => {
    const store = new MemoryStore(options);
    opened.push(store);
    return store;
  };

  /** A store and everything it reports. */
  function watched(options?: MemoryStoreOptions): { store: MemoryStore; reports: ExpiredSession[] } {
    const store = open(options);
    const reports: ExpiredSession[] = [];
    store.watchExpiry((expired) => reports.push(expired));
    return { store, reports };
  }

  afterEach(() => {
    jest.useRealTimers();
    for (const store of opened.splice(0)) store.onApplicationShutdown();
  });

  it('reports a session its sweeper reclaims once, with its id and user', async () => {
    jest.useFakeTimers();
    const { store, reports } = watched({ sweepInterval: 1_000 });
    const session = newSession({ userId: 'u-expiring', expiresAt: Date.now() + 500 });
    await store.create(session);

    jest.advanceTimersByTime(5_000);

    expect(reports).toEqual([{ id: session.id, userId: 'u-expiring' }]);
    expect(store.size).toBe(0);
  });

  it('reports a session dropped by the read that found it expired, once, and the sweeper does not report it again', async () => {
    const { store, reports } = watched();
    const session = newSession({ expiresAt: Date.now() - 1 });
    await store.create(session);

    await expect(store.get(session.id)).resolves.toBeNull();
    await expect(store.get(session.id)).resolves.toBeNull();
    await expect(store.commit(session.id, { set: { a: 1 }, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() })).resolves.toBe(false);
    expect(store.sweep()).toBe(0);

    expect(reports).toEqual([{ id: session.id, userId: null }]);
  });

  it('does not report a destroyed session, nor one extended before its expiry', async () => {
    jest.useFakeTimers();
    const { store, reports } = watched({ sweepInterval: 1_000 });
    const expiring = newSession({ userId: 'u1', expiresAt: Date.now() + 500 });
    const destroyed = newSession({ userId: 'u1', expiresAt: Date.now() + 500 });
    const extended = newSession({ userId: 'u1', expiresAt: Date.now() + 500 });
    for (const session of [expiring, destroyed, extended]) await store.create(session);
    await store.destroy(destroyed.id);
    await store.commit(extended.id, { set: {}, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() });

    jest.advanceTimersByTime(5_000);

    expect(reports).toEqual([{ id: expiring.id, userId: 'u1' }]);
    await expect(store.get(extended.id)).resolves.not.toBeNull();
  });

  it('reports an expired session evicted by maxSessions as expired, but not a live one evicted', async () => {
    const { store, reports } = watched({ maxSessions: 2 });
    const expired = newSession({ userId: 'u-old', expiresAt: Date.now() - 1 });
    const live = newSession();
    await store.create(expired);
    await store.create(live);

    await store.create(newSession());
    await store.create(newSession());

    expect(reports).toEqual([{ id: expired.id, userId: 'u-old' }]);
    await expect(store.get(live.id)).resolves.toBeNull();
  });

  it('reports an expired session evicted by maxBytes as expired, but not a live one evicted', async () => {
    const probe = open();
    await probe.create(sessionOf(1_000, { userId: 'u-old' }));
    const { store, reports } = watched({ maxBytes: 2 * probe.heldBytes + 100 });
    const expired = sessionOf(1_000, { userId: 'u-old', expiresAt: Date.now() - 1 });
    const live = sessionOf(1_000, { userId: 'u-new' });
    await store.create(expired);
    await store.create(live);

    await store.create(sessionOf(1_000, { userId: 'u-new' }));
    await store.create(sessionOf(1_000, { userId: 'u-new' }));

    expect(reports).toEqual([{ id: expired.id, userId: 'u-old' }]);
    await expect(store.get(live.id)).resolves.toBeNull();
  });

  it('reports the expired sessions destroyByUser removes, without returning them', async () => {
    const { store, reports } = watched();
    const expired = newSession({ userId: 'u2', expiresAt: Date.now() - 1 });
    const live = newSession({ userId: 'u2' });
    await store.create(expired);
    await store.create(live);

    await expect(store.destroyByUser('u2')).resolves.toEqual([live.id]);

    expect(reports).toEqual([{ id: expired.id, userId: 'u2' }]);
  });
});

describe('MemoryStore user lock', () => {
  const store = new MemoryStore();
  afterAll(() => store.onApplicationShutdown());

  it('never lets the critical sections of one user overlap', async () => {
    const trace: string[] = [];
    const section = (n: number) =>
      store.withUserLock('u-lock', async () => {
        trace.push(`enter ${n}`);
        await new Promise((resolve) => setImmediate(resolve));
        trace.push(`exit ${n}`);
        return n;
      });

    await expect(Promise.all([1, 2, 3, 4, 5].map(section))).resolves.toEqual([1, 2, 3, 4, 5]);

    expect(trace).toEqual([1, 2, 3, 4, 5].flatMap((n) => [`enter ${n}`, `exit ${n}`]));
  });

  it('runs the critical sections of different users at the same time', async () => {
    let enterFirst!: () => void;
    let enterSecond!: () => void;
    const firstEntered = new Promise<void>((resolve) => (enterFirst = resolve));
    const secondEntered = new Promise<void>((resolve) => (enterSecond = resolve));
    // Each waits inside for the other to enter: if one user waited for the other, neither would end.
    const first = store.withUserLock('u-a', async () => {
      enterFirst();
      await secondEntered;
      return 'first';
    });
    const second = store.withUserLock('u-b', async () => {
      enterSecond();
      await firstEntered;
      return 'second';
    });

    await expect(Promise.all([first, second])).resolves.toEqual(['first', 'second']);
  });

  it('releases the lock when a critical section throws, passing the error on', async () => {
    await expect(store.withUserLock('u-throw', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');

    await expect(store.withUserLock('u-throw', async () => 'after')).resolves.toBe('after');
  });
});

describe('MemoryStore client record', () => {
  const store = new MemoryStore();
  afterAll(() => store.onApplicationShutdown());
  const CLIENT = { userAgent: 'Mozilla/5.0 (test)', ip: '203.0.113.7' };
  const touch = (client?: SessionClient | null) => ({ set: {}, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now(), client });

  it('keeps the client beside the data through create, commit (set, keep, clear), rotate and listByUser', async () => {
    const session = newSession({ userId: 'u-client', client: CLIENT });
    await store.create(session);
    await expect(store.get(session.id)).resolves.toMatchObject({ client: CLIENT, data: { visits: 1 } });
    expect(Object.keys((await store.get(session.id))!.data)).toEqual(['visits']);

    await store.commit(session.id, { ...touch(), set: { visits: 2 } });
    expect((await store.get(session.id))!.client).toEqual(CLIENT);
    await store.commit(session.id, touch({ ip: '198.51.100.9' }));
    expect((await store.get(session.id))!.client).toEqual({ ip: '198.51.100.9' });
    expect((await store.listByUser('u-client')).map((s) => s.client)).toEqual([{ ip: '198.51.100.9' }]);
    await store.commit(session.id, touch(null));
    expect((await store.get(session.id))!.client ?? null).toBeNull();

    const next = newSession({ userId: 'u-client', client: CLIENT });
    await expect(store.rotate(session.id, next)).resolves.toBe(true);
    expect((await store.get(next.id))!.client).toEqual(CLIENT);
    expect((await store.listByUser('u-client')).map((s) => s.client)).toEqual([CLIENT]);
  });

  it('keeps a copy: changing the object passed in, or one read back, changes nothing stored', async () => {
    const client = { ...CLIENT };
    const session = newSession({ client });
    await store.create(session);

    client.ip = '0.0.0.0';
    (await store.get(session.id))!.client!.userAgent = 'changed';

    expect((await store.get(session.id))!.client).toEqual(CLIENT);
  });
});
