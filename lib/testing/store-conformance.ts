import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_SESSION_FIELDS } from '../session.constants.js';
import { SessionFieldNotJsonError, SessionStoreUnsupportedError, SessionTooLargeError, SessionUserIdInvalidError } from '../session.errors.js';
import type { ExpiredSession, SessionClient, SessionFields, SessionStore, StoredSession } from '../stores/session-store.js';
import { describeAtRestCases } from './at-rest-conformance.js';
import type { StoreDump } from './at-rest-conformance.js';
import { resolveFramework, type ConformanceFramework } from './test-framework.js';

/** A capability a store may declare it cannot honour. */
export type ConformanceCapability = 'listByUser' | 'destroyByUser' | 'concurrentFieldMerge' | 'expiryEvents' | 'maxSessionFields';

/** How {@link describeSessionStoreConformance} obtains and releases the store under test. */
export interface ConformanceSetup {
  /** Creates the store under test (called once in beforeAll). */
  createStore: () => SessionStore | Promise<SessionStore>;
  /** Releases it (afterAll). Default: calls onApplicationShutdown() if the store has it. */
  closeStore?: (store: SessionStore) => void | Promise<void>;
  /**
   * Capabilities this store declares it cannot honour; each such case is asserted to reject with
   * SessionStoreUnsupportedError instead of being skipped.
   */
  unsupported?: ConformanceCapability[];
  /**
   * Everything the store holds, as text: every key and value, row, file name and file content
   * (what a backup, a replica or `MONITOR` would show). Given, the suite also checks what is at
   * rest: no session id a client holds, and with `encryptionKeys` no data, user id or client
   * record in the clear (see at-rest-conformance.ts). Not for a store that seals sessions into
   * their credentials: it keeps nothing at rest.
   */
  dump?: StoreDump;
  /**
   * The test framework's `describe`, `it`, `expect`, `beforeAll` and `afterAll`. Default: the
   * globals jest installs (and Vitest with `globals: true`); pass them when there are none,
   * e.g. `{ describe, it, expect, beforeAll, afterAll }` imported from 'vitest'.
   */
  framework?: ConformanceFramework;
}

/** Long enough to outlive any case, so only the expiry cases ever see a session expire. */
const LIFETIME = 10 * 60_000;
/** Short enough to wait out, long enough for a networked store to finish writing it first. */
const SHORT_LIFETIME = 150;

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(9).toString('base64url')}`;
/** Waits until the clock has passed `deadline` (ms since the epoch): as long as that takes, no guess. */
const past = async (deadline: number): Promise<void> => {
  while (Date.now() <= deadline) await sleep(deadline - Date.now() + 1);
};
/** How long a store may take to notice an expiry: a sweep interval or a TTL, plus delivery. */
const EXPIRY_REPORT_DEADLINE = 8_000;
/** After the first report, how long a second one for the same expiry is waited for. */
const DUPLICATE_WINDOW = 1_000;
const CLIENT: SessionClient = { userAgent: 'Mozilla/5.0 (conformance)', ip: '203.0.113.7' };

/**
 * What a user id may end with that UTF-8 and PostgreSQL text cannot keep, each beside what a
 * lossy store would make of it: a lone surrogate becomes U+FFFD, a NUL is dropped.
 */
const UNKEEPABLE_ENDINGS: ReadonlyArray<readonly [unkeepable: string, lookalike: string]> = [
  ['\udfff', '\ufffd'],
  ['\ud800', '\ufffd'],
  ['\u0000', ''],
];

/** What {@link describeSessionStoreConformance}'s `unlessRefused` gives for a call refused over its user id. */
const REFUSED = Symbol('refused');

/** `count` fields named `f0`, `f1`… (or another prefix), each with its own value, so that no field can take another's. */
const manyFields = (count: number, prefix = 'f'): SessionFields =>
  Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${i}`, `${prefix}-value-${i}`]));

/** "No client recorded" may be null or absent. */
const noClient = (session: { client?: SessionClient | null } | null): boolean => session !== null && (session.client ?? null) === null;

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return {
    id: newId(),
    data: { visits: 1 },
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + LIFETIME,
    userId: null,
    ...overrides,
  };
}

/**
 * The behaviour every session store must keep (SPEC §3), as one test suite. Built-in stores run
 * it, and so should a custom store: call it at the top level of a spec file. It runs on jest and
 * Vitest alike: it takes their functions from `setup.framework`, or from the globals jest
 * installs (see {@link ConformanceFramework}).
 *
 * Every case uses fresh random ids and user ids and cleans up nothing it does not own, so the
 * suite can run against a shared store (one Redis for many suites) without flushing it.
 *
 * Declared gaps are tested, not skipped: with `unsupported: ['listByUser']` or
 * `['destroyByUser']`, the suite asserts that the call rejects with
 * `SessionStoreUnsupportedError`. `'concurrentFieldMerge'` is a property rather than a call, so
 * nothing can reject: for a store that declares it (the cookie store, which rewrites the whole
 * session), the case "keeps both fields when writers change different fields at once" is
 * replaced by one asserting that, of two successive writes to one field, the last one wins.
 * With `'expiryEvents'` declared (a store that cannot see expiries), the suite asserts that
 * watching reports nothing. With `'maxSessionFields'` declared (a store that cannot hold a session
 * of `MAX_SESSION_FIELDS` fields: the cookie store, whose whole session must fit in one cookie),
 * it asserts that such a session is refused with `SessionTooLargeError`, holding nothing.
 *
 * User ids (SPEC §3.12): a store keeps user ids exactly, or refuses one it cannot keep with
 * `SessionUserIdInvalidError` (as every built-in store does, through `assertUserIdKeepable`, for
 * an unpaired surrogate or a NUL); the suite accepts either, per call, and checks that two user
 * ids never share a session, a listing, a revocation or a lock.
 *
 * Expiry reports are awaited for a few seconds: a sweeper-based store must be created with a
 * short sweep interval (a few hundred ms) for those cases to pass.
 *
 * @example
 * ```ts
 * // test/my.store.spec.ts (Vitest; under jest, drop the import and the framework setting)
 * import { afterAll, beforeAll, describe, expect, it } from 'vitest';
 * import { describeSessionStoreConformance } from 'nestjs-session-sync/testing';
 * import { MyStore } from '../src/my.store.js';
 *
 * describeSessionStoreConformance('MyStore', {
 *   createStore: () => new MyStore({ url: process.env.MY_URL }),
 *   closeStore: (store) => (store as MyStore).close(),
 *   framework: { describe, it, expect, beforeAll, afterAll },
 * });
 * ```
 */
export function describeSessionStoreConformance(name: string, setup: ConformanceSetup): void {
  const { describe, it, expect, beforeAll, afterAll } = resolveFramework(setup.framework);
  const unsupported = new Set(setup.unsupported ?? []);
  const supports = (capability: ConformanceCapability): boolean => !unsupported.has(capability);

  describe(`${name} conformance`, () => {
    let store: SessionStore;

    beforeAll(async () => {
      store = await setup.createStore();
    });

    afterAll(async () => {
      if (!store) return;
      if (setup.closeStore) {
        await setup.closeStore(store);
        return;
      }
      const closable = store as SessionStore & { onApplicationShutdown?: () => unknown };
      if (typeof closable.onApplicationShutdown === 'function') await closable.onApplicationShutdown();
    });

    /** Creates a session and hands it back as stored, so each case starts from a known state. */
    async function created(overrides: Partial<StoredSession> = {}): Promise<StoredSession> {
      const session = newSession(overrides);
      await store.create(session);
      return session;
    }

    /**
     * What a call given a user id the store may refuse settled to: its value, or {@link REFUSED}
     * when it rejected, which it may only do with SessionUserIdInvalidError.
     */
    async function unlessRefused<T>(call: Promise<T>): Promise<T | typeof REFUSED> {
      try {
        return await call;
      } catch (error) {
        expect(error).toBeInstanceOf(SessionUserIdInvalidError);
        return REFUSED;
      }
    }

    describe('reading and creating', () => {
      it('returns null for an id it has never seen', async () => {
        await expect(store.get(newId())).resolves.toBeNull();
      });

      it('returns a created session with the same data, times and user', async () => {
        const session = await created({
          data: { userId: 'u1', cart: ['a', 'b'] },
          createdAt: Date.now() - 5_000,
          lastSeenAt: Date.now() - 1_000,
          userId: newUserId(),
        });

        const stored = await store.get(session.id);

        expect(stored).not.toBeNull();
        expect(stored!.id).toBe(session.id);
        expect(stored!.data).toEqual(session.data);
        expect(stored!.createdAt).toBe(session.createdAt);
        expect(stored!.lastSeenAt).toBe(session.lastSeenAt);
        expect(stored!.expiresAt).toBe(session.expiresAt);
        expect(stored!.userId).toBe(session.userId);
      });

      it('returns a session created without a user with userId null', async () => {
        const session = await created({ userId: null });

        await expect(store.get(session.id)).resolves.toMatchObject({ userId: null });
      });

      it('copies data in and out, so mutating what was passed or returned changes nothing stored', async () => {
        const data: SessionFields = { profile: { name: 'Ada', roles: ['admin'] }, visits: 1 };
        const session = await created({ data });

        data.visits = 99;
        (data.profile as { name: string; roles: string[] }).roles.push('root');
        const first = await store.get(session.id);
        expect(first!.data).toEqual({ profile: { name: 'Ada', roles: ['admin'] }, visits: 1 });

        first!.data.visits = 42;
        (first!.data.profile as { name: string }).name = 'Mallory';
        delete first!.data.profile;
        const second = await store.get(session.id);
        expect(second!.data).toEqual({ profile: { name: 'Ada', roles: ['admin'] }, visits: 1 });

        const set: SessionFields = { cart: { items: ['apple'] } };
        await store.commit(session.id, { set, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });
        (set.cart as { items: string[] }).items.push('pear');
        const third = await store.get(session.id);
        expect(third!.data.cart).toEqual({ items: ['apple'] });
      });

      it('round-trips every JSON type: nested objects, arrays, unicode strings, numbers, booleans and null', async () => {
        const data: SessionFields = {
          nested: { a: { b: { c: [1, { d: 'deep' }] } }, empty: {} },
          list: [1, 'two', true, null, { three: 3 }, [], [[4]]],
          unicode: 'héllo — 日本語 — 🎉 — \u2028\u2029 — "quotes" \\ back\nslash',
          emptyString: '',
          zero: 0,
          negative: -17.25,
          large: Number.MAX_SAFE_INTEGER,
          small: 5e-324,
          exponent: 1e21,
          yes: true,
          no: false,
          nothing: null,
        };
        const session = await created({ data });

        const stored = await store.get(session.id);
        expect(stored!.data).toEqual(data);

        const next = { ...data, unicode: '✓ changed', list: [{ x: [null] }] };
        await store.commit(session.id, {
          set: { unicode: next.unicode, list: next.list },
          unset: [],
          expiresAt: session.expiresAt,
          lastSeenAt: Date.now(),
        });
        await expect(store.get(session.id)).resolves.toMatchObject({ data: next });
      });

      it('keeps fields named __proto__, constructor and prototype as plain data, polluting no prototype', async () => {
        const hostile = JSON.parse(
          '{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":2}},"prototype":{"polluted":3},"toString":"plain"}',
        ) as SessionFields;
        const session = await created({ data: hostile });

        const stored = await store.get(session.id);
        expectHostileFieldsAsData(expect, stored!.data);

        await store.commit(session.id, {
          set: JSON.parse('{"__proto__":{"polluted":4},"nested":{"__proto__":{"polluted":5}}}') as SessionFields,
          unset: [],
          expiresAt: session.expiresAt,
          lastSeenAt: Date.now(),
        });
        const after = await store.get(session.id);
        expect(Object.getOwnPropertyDescriptor(after!.data, '__proto__')?.value).toEqual({ polluted: 4 });
        const nested = after!.data.nested as object;
        expect(Object.getOwnPropertyDescriptor(nested, '__proto__')?.value).toEqual({ polluted: 5 });
        expect(Object.getPrototypeOf(nested)).toBe(Object.prototype);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });
    });

    describe('commit', () => {
      it('writes set fields, removes unset fields, leaves other fields untouched and moves the expiry', async () => {
        const session = await created({ data: { keep: 'me', change: 1, drop: true } });
        const expiresAt = session.expiresAt + 60_000;
        const lastSeenAt = session.lastSeenAt + 1_000;

        const committed = await store.commit(session.id, {
          set: { change: 2, added: { x: 1 } },
          unset: ['drop'],
          expiresAt,
          lastSeenAt,
        });

        expect(committed).toBe(true);
        const stored = await store.get(session.id);
        expect(stored!.data).toEqual({ keep: 'me', change: 2, added: { x: 1 } });
        expect(stored!.expiresAt).toBe(expiresAt);
        expect(stored!.lastSeenAt).toBe(lastSeenAt);
        expect(stored!.createdAt).toBe(session.createdAt);
      });

      if (supports('concurrentFieldMerge')) {
        it('keeps every field when twenty writers change different fields at once', async () => {
          const session = await created({ data: { base: true } });
          const writers = Array.from({ length: 20 }, (_, i) => i);

          const results = await Promise.all(
            writers.map((i) =>
              store.commit(session.id, {
                set: { [`field${i}`]: i },
                unset: [],
                expiresAt: session.expiresAt,
                lastSeenAt: Date.now(),
              }),
            ),
          );

          expect(results).toEqual(writers.map(() => true));
          const expected: SessionFields = { base: true };
          for (const i of writers) expected[`field${i}`] = i;
          await expect(store.get(session.id)).resolves.toMatchObject({ data: expected });
        });
      } else {
        it('keeps the last write when one field is written twice in a row (concurrent field merge is declared unsupported)', async () => {
          const session = await created({ data: { theme: 'light' } });
          const change = { unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() };

          await expect(store.commit(session.id, { ...change, set: { theme: 'dark' } })).resolves.toBe(true);
          await expect(store.commit(session.id, { ...change, set: { theme: 'blue' } })).resolves.toBe(true);

          await expect(store.get(session.id)).resolves.toMatchObject({ data: { theme: 'blue' } });
        });
      }

      it('lets one writer win when twenty write the same field at once, and the session stays readable', async () => {
        const session = await created({ data: { other: 'kept' } });
        const writers = Array.from({ length: 20 }, (_, i) => i);

        await Promise.all(
          writers.map((i) =>
            store.commit(session.id, {
              set: { shared: i },
              unset: [],
              expiresAt: session.expiresAt,
              lastSeenAt: Date.now(),
            }),
          ),
        );

        const stored = await store.get(session.id);
        expect(stored).not.toBeNull();
        expect(writers).toContain(stored!.data.shared);
        expect(stored!.data.other).toBe('kept');
      });

      it('returns false and never brings back a destroyed session', async () => {
        const session = await created();
        await store.destroy(session.id);

        const committed = await store.commit(session.id, {
          set: { revived: true },
          unset: [],
          expiresAt: Date.now() + LIFETIME,
          lastSeenAt: Date.now(),
        });

        expect(committed).toBe(false);
        await expect(store.get(session.id)).resolves.toBeNull();
      });

      it('returns false and creates nothing for an id that was never created', async () => {
        const id = newId();

        const committed = await store.commit(id, {
          set: { invented: true },
          unset: [],
          expiresAt: Date.now() + LIFETIME,
          lastSeenAt: Date.now(),
          userId: newUserId(),
        });

        expect(committed).toBe(false);
        await expect(store.get(id)).resolves.toBeNull();
      });

      it('removes a field committed as undefined, as JSON would drop it, and the session stays readable', async () => {
        const session = await created({ data: { keep: 1, drop: 2 } });

        await store.commit(session.id, { set: { drop: undefined }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

        expect((await store.get(session.id))?.data).toEqual({ keep: 1 });
      });

      it('rejects a value JSON cannot carry with SessionFieldNotJsonError naming the field, writing nothing', async () => {
        const session = await created({ data: { keep: 1 } });

        const committing = store.commit(session.id, {
          set: { other: 'x', big: BigInt(1) },
          unset: ['keep'],
          expiresAt: session.expiresAt,
          lastSeenAt: Date.now(),
        });

        await expect(committing).rejects.toBeInstanceOf(SessionFieldNotJsonError);
        await expect(committing).rejects.toMatchObject({ field: 'big' });
        expect((await store.get(session.id))?.data).toEqual({ keep: 1 });
      });
    });

    describe('expiry', () => {
      it('never returns an expired session, and refuses to commit, touch or rotate it', async () => {
        const session = await created({ expiresAt: Date.now() + SHORT_LIFETIME, data: { secret: 'x' } });
        await past(session.expiresAt);

        await expect(store.get(session.id)).resolves.toBeNull();
        const later = Date.now() + LIFETIME;
        await expect(store.commit(session.id, { set: { revived: true }, unset: [], expiresAt: later, lastSeenAt: Date.now() })).resolves.toBe(false);
        await expect(store.touch(session.id, later, Date.now())).resolves.toBe(false);
        const next = newSession({ data: { secret: 'x' } });
        await expect(store.rotate(session.id, next)).resolves.toBe(false);

        await expect(store.get(session.id)).resolves.toBeNull();
        await expect(store.get(next.id)).resolves.toBeNull();
      });

      it('returns a session until its expiry, when the expiry was extended by a commit', async () => {
        const session = await created({ expiresAt: Date.now() + SHORT_LIFETIME });

        await store.commit(session.id, { set: {}, unset: [], expiresAt: Date.now() + LIFETIME, lastSeenAt: Date.now() });
        await past(session.expiresAt);

        await expect(store.get(session.id)).resolves.not.toBeNull();
      });
    });

    describe('touch', () => {
      it('extends expiresAt and lastSeenAt without changing data', async () => {
        const session = await created({ data: { visits: 3, cart: ['a'] } });
        const expiresAt = session.expiresAt + 60_000;
        const lastSeenAt = session.lastSeenAt + 2_000;

        await expect(store.touch(session.id, expiresAt, lastSeenAt)).resolves.toBe(true);

        const stored = await store.get(session.id);
        expect(stored!.data).toEqual({ visits: 3, cart: ['a'] });
        expect(stored!.expiresAt).toBe(expiresAt);
        expect(stored!.lastSeenAt).toBe(lastSeenAt);
        expect(stored!.createdAt).toBe(session.createdAt);
      });

      it('returns false and creates nothing for a missing id', async () => {
        const id = newId();

        await expect(store.touch(id, Date.now() + LIFETIME, Date.now())).resolves.toBe(false);
        await expect(store.get(id)).resolves.toBeNull();
      });
    });

    describe('rotate', () => {
      it('moves data and user to the new id, and the old id is dead', async () => {
        const userId = newUserId();
        const old = await created({ data: { cart: ['a'], userId }, userId });
        const next = newSession({ data: { cart: ['a'], userId }, userId, createdAt: old.createdAt });

        await expect(store.rotate(old.id, next)).resolves.toBe(true);

        await expect(store.get(old.id)).resolves.toBeNull();
        const stored = await store.get(next.id);
        expect(stored!.data).toEqual({ cart: ['a'], userId });
        expect(stored!.userId).toBe(userId);
        expect(stored!.createdAt).toBe(old.createdAt);
        expect(stored!.expiresAt).toBe(next.expiresAt);
        const lateWrite = await store.commit(old.id, {
          set: { stale: true },
          unset: [],
          expiresAt: Date.now() + LIFETIME,
          lastSeenAt: Date.now(),
        });
        expect(lateWrite).toBe(false);
        await expect(store.get(old.id)).resolves.toBeNull();
      });

      it('returns false and creates nothing under the new id when the old id was destroyed', async () => {
        const old = await created();
        await store.destroy(old.id);
        const next = newSession();

        await expect(store.rotate(old.id, next)).resolves.toBe(false);

        await expect(store.get(next.id)).resolves.toBeNull();
        await expect(store.get(old.id)).resolves.toBeNull();
      });
    });

    describe('destroy', () => {
      it('removes the session', async () => {
        const session = await created();

        await store.destroy(session.id);

        await expect(store.get(session.id)).resolves.toBeNull();
      });

      it('is idempotent: destroying twice, or an id it never saw, does not throw', async () => {
        const session = await created();

        await expect(store.destroy(session.id)).resolves.toBeUndefined();
        await expect(store.destroy(session.id)).resolves.toBeUndefined();
        await expect(store.destroy(newId())).resolves.toBeUndefined();
      });
    });

    describe(`field limit: MAX_SESSION_FIELDS (${MAX_SESSION_FIELDS})`, () => {
      if (supports('maxSessionFields')) {
        it('holds a session of exactly that many fields, created in one call, and moves it whole on rotation', async () => {
          const session = await created({ data: manyFields(MAX_SESSION_FIELDS) });

          expect((await store.get(session.id))!.data).toEqual(session.data);

          const next = newSession({ data: manyFields(MAX_SESSION_FIELDS, 'g'), createdAt: session.createdAt });
          await expect(store.rotate(session.id, next)).resolves.toBe(true);
          await expect(store.get(session.id)).resolves.toBeNull();
          expect((await store.get(next.id))!.data).toEqual(next.data);
        });

        it('commits that many fields set at once, then all of them replaced by as many others, then all removed at once', async () => {
          const session = await created({ data: {} });
          const change = { expiresAt: session.expiresAt, lastSeenAt: Date.now() };
          const first = manyFields(MAX_SESSION_FIELDS);
          const second = manyFields(MAX_SESSION_FIELDS, 'g');

          await expect(store.commit(session.id, { ...change, set: first, unset: [] })).resolves.toBe(true);
          expect((await store.get(session.id))!.data).toEqual(first);
          await expect(store.commit(session.id, { ...change, set: second, unset: Object.keys(first) })).resolves.toBe(true);
          expect((await store.get(session.id))!.data).toEqual(second);
          await expect(store.commit(session.id, { ...change, set: {}, unset: Object.keys(second) })).resolves.toBe(true);
          expect((await store.get(session.id))!.data).toEqual({});
        });
      } else {
        it('refuses a session of that many fields with SessionTooLargeError, holding nothing (declared: it cannot hold one)', async () => {
          const session = newSession({ data: manyFields(MAX_SESSION_FIELDS) });

          await expect(store.create(session)).rejects.toBeInstanceOf(SessionTooLargeError);

          await expect(store.get(session.id)).resolves.toBeNull();
        });
      }
    });

    describe('per-user index', () => {
      if (supports('listByUser')) {
        it("lists only that user's live sessions, oldest first, with their times", async () => {
          const userId = newUserId();
          const now = Date.now();
          const newer = await created({ userId, createdAt: now - 1_000, lastSeenAt: now - 500 });
          const older = await created({ userId, createdAt: now - 9_000, lastSeenAt: now - 100 });
          await created({ userId: newUserId() });
          await created({ userId: null });

          const listed = await store.listByUser(userId);

          expect(listed).toEqual([
            { id: older.id, createdAt: older.createdAt, lastSeenAt: older.lastSeenAt, expiresAt: older.expiresAt },
            { id: newer.id, createdAt: newer.createdAt, lastSeenAt: newer.lastSeenAt, expiresAt: newer.expiresAt },
          ]);
        });

        it('lists nothing for a user without sessions', async () => {
          await expect(store.listByUser(newUserId())).resolves.toEqual([]);
        });

        it('moves a session to another user when a commit changes userId, and keeps it when userId is undefined', async () => {
          const first = newUserId();
          const second = newUserId();
          const session = await created({ userId: first });

          await store.commit(session.id, { set: { n: 1 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });
          expect(ids(await store.listByUser(first))).toEqual([session.id]);

          await store.commit(session.id, {
            set: {},
            unset: [],
            expiresAt: session.expiresAt,
            lastSeenAt: Date.now(),
            userId: second,
          });

          expect(await store.listByUser(first)).toEqual([]);
          expect(ids(await store.listByUser(second))).toEqual([session.id]);
          await expect(store.get(session.id)).resolves.toMatchObject({ userId: second });
        });

        it('drops a session from the index when a commit sets userId to null', async () => {
          const userId = newUserId();
          const session = await created({ userId });

          await store.commit(session.id, {
            set: {},
            unset: [],
            expiresAt: session.expiresAt,
            lastSeenAt: Date.now(),
            userId: null,
          });

          expect(await store.listByUser(userId)).toEqual([]);
          await expect(store.get(session.id)).resolves.toMatchObject({ userId: null });
        });

        it('indexes a session when a commit signs it in', async () => {
          const userId = newUserId();
          const session = await created({ userId: null });

          await store.commit(session.id, {
            set: { userId },
            unset: [],
            expiresAt: session.expiresAt,
            lastSeenAt: Date.now(),
            userId,
          });

          expect(ids(await store.listByUser(userId))).toEqual([session.id]);
        });

        it('does not list destroyed or expired sessions', async () => {
          const userId = newUserId();
          const live = await created({ userId });
          const destroyed = await created({ userId });
          const expiring = await created({ userId, expiresAt: Date.now() + SHORT_LIFETIME });
          await store.destroy(destroyed.id);
          await past(expiring.expiresAt);

          expect(ids(await store.listByUser(userId))).toEqual([live.id]);
        });

        it('lists a rotated session under its new id only', async () => {
          const userId = newUserId();
          const old = await created({ userId });
          const next = newSession({ userId, createdAt: old.createdAt });

          await store.rotate(old.id, next);

          expect(ids(await store.listByUser(userId))).toEqual([next.id]);
        });
      } else {
        it('rejects listByUser with SessionStoreUnsupportedError, as it declares', async () => {
          await expect(store.listByUser(newUserId())).rejects.toBeInstanceOf(SessionStoreUnsupportedError);
        });
      }

      if (supports('destroyByUser')) {
        it('destroys the other sessions of a user and returns their ids, sparing the excepted one', async () => {
          const userId = newUserId();
          const current = await created({ userId, data: { here: true } });
          const others = [await created({ userId }), await created({ userId })];
          const stranger = await created({ userId: newUserId() });

          expect((await store.destroyByUser(userId, current.id)).sort()).toEqual(ids(others).sort());

          await expect(store.get(current.id)).resolves.toMatchObject({ data: { here: true }, userId });
          for (const other of others) await expect(store.get(other.id)).resolves.toBeNull();
          await expect(store.get(stranger.id)).resolves.not.toBeNull();
          if (supports('listByUser')) expect(ids(await store.listByUser(userId))).toEqual([current.id]);
        });

        it('destroys every session of a user when no session is excepted', async () => {
          const userId = newUserId();
          const sessions = [await created({ userId }), await created({ userId })];

          expect((await store.destroyByUser(userId)).sort()).toEqual(ids(sessions).sort());

          for (const session of sessions) await expect(store.get(session.id)).resolves.toBeNull();
          await expect(store.destroyByUser(userId)).resolves.toEqual([]);
        });

        it('does not return sessions already destroyed or moved to another user', async () => {
          const userId = newUserId();
          const destroyed = await created({ userId });
          const moved = await created({ userId });
          await store.destroy(destroyed.id);
          await store.commit(moved.id, {
            set: {},
            unset: [],
            expiresAt: moved.expiresAt,
            lastSeenAt: Date.now(),
            userId: newUserId(),
          });

          await expect(store.destroyByUser(userId)).resolves.toEqual([]);
          await expect(store.get(moved.id)).resolves.not.toBeNull();
        });
      } else {
        it('rejects destroyByUser with SessionStoreUnsupportedError, as it declares', async () => {
          await expect(store.destroyByUser(newUserId())).rejects.toBeInstanceOf(SessionStoreUnsupportedError);
        });
      }
    });

    describe('user ids', () => {
      it('keeps apart user ids that differ only in braces, colons or other characters keys are made of', async () => {
        const base = newUserId();
        const userIds = [base, `{${base}}`, `${base}}`, `{${base}`, `${base}:lock`, `${base}}:lock`, `${base}:{}`, `${base} `, `${base}\ufffd`];
        const sessions: StoredSession[] = [];
        for (const userId of userIds) sessions.push(await created({ userId }));

        for (const [i, userId] of userIds.entries()) {
          await expect(store.get(sessions[i].id)).resolves.toMatchObject({ userId });
          if (supports('listByUser')) expect(ids(await store.listByUser(userId))).toEqual([sessions[i].id]);
        }
        if (supports('destroyByUser')) {
          await expect(store.destroyByUser(base)).resolves.toEqual([sessions[0].id]);
          for (const session of sessions.slice(1)) await expect(store.get(session.id)).resolves.not.toBeNull();
        }
        await expect(bothInsideAtOnce(store, store, undefined, [base, `{${base}}`])).resolves.toEqual(['first', 'second']);
      });

      it('keeps a user id holding an unpaired surrogate or a NUL apart from its look-alike, or refuses it with SessionUserIdInvalidError, writing nothing', async () => {
        for (const [ending, lookalikeEnding] of UNKEEPABLE_ENDINGS) {
          const base = newUserId();
          const [unkeepable, lookalike] = [base + ending, base + lookalikeEnding];
          const theirs = [await created({ userId: lookalike }), await created({ userId: lookalike })];
          /** The sessions the store took under the unkeepable id, if it took any. */
          const mine: string[] = [];

          // Each write naming it is refused, leaving everything as it was, or keeps the session under that very id.
          const fresh = newSession({ userId: unkeepable });
          if ((await unlessRefused(store.create(fresh))) === REFUSED) await expect(store.get(fresh.id)).resolves.toBeNull();
          else mine.push(fresh.id);

          const anonymous = await created({ data: { step: 1 } });
          const signIn = { set: { step: 2 }, unset: [], expiresAt: anonymous.expiresAt, lastSeenAt: Date.now(), userId: unkeepable };
          if ((await unlessRefused(store.commit(anonymous.id, signIn))) === REFUSED) {
            await expect(store.get(anonymous.id)).resolves.toMatchObject({ data: { step: 1 }, userId: null });
          } else {
            mine.push(anonymous.id);
          }

          const old = await created();
          const next = newSession({ userId: unkeepable });
          if ((await unlessRefused(store.rotate(old.id, next))) === REFUSED) {
            await expect(store.get(old.id)).resolves.not.toBeNull();
            await expect(store.get(next.id)).resolves.toBeNull();
          } else {
            mine.push(next.id);
          }
          for (const id of mine) await expect(store.get(id)).resolves.toMatchObject({ userId: unkeepable });

          // Listing, revoking and locking by it are refused, or reach its own sessions only.
          if (supports('listByUser')) {
            const listed = await unlessRefused(store.listByUser(unkeepable));
            if (listed !== REFUSED) expect(ids(listed).sort()).toEqual([...mine].sort());
          }
          if (supports('destroyByUser')) {
            const revoked = await unlessRefused(store.destroyByUser(unkeepable));
            if (revoked !== REFUSED) expect([...revoked].sort()).toEqual([...mine].sort());
          }
          let ran = false;
          const locked = await unlessRefused(store.withUserLock(unkeepable, async () => (ran = true)));
          if (locked === REFUSED) expect(ran).toBe(false);
          else await expect(bothInsideAtOnce(store, store, undefined, [unkeepable, lookalike])).resolves.toEqual(['first', 'second']);

          // The look-alike's sessions are untouched, and still listed as its own alone.
          for (const session of theirs) await expect(store.get(session.id)).resolves.toMatchObject({ userId: lookalike });
          if (supports('listByUser')) expect(ids(await store.listByUser(lookalike)).sort()).toEqual(ids(theirs).sort());
        }
      });
    });

    describe('client record', () => {
      it('returns the client a session was created with, and none when created without', async () => {
        const withClient = await created({ client: CLIENT });
        const without = await created();

        expect((await store.get(withClient.id))!.client).toEqual(CLIENT);
        expect(noClient(await store.get(without.id))).toBe(true);
      });

      it('sets a client with a commit, keeps it when the change leaves it undefined, and clears it with null', async () => {
        const session = await created();
        const change = (client?: SessionClient | null) => ({ set: {}, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now(), client });

        await expect(store.commit(session.id, change(CLIENT))).resolves.toBe(true);
        expect((await store.get(session.id))!.client).toEqual(CLIENT);
        await expect(store.commit(session.id, { ...change(), set: { visits: 2 } })).resolves.toBe(true);
        expect((await store.get(session.id))!.client).toEqual(CLIENT);
        await expect(store.commit(session.id, change(null))).resolves.toBe(true);
        expect(noClient(await store.get(session.id))).toBe(true);
      });

      it('moves the client of the rotated session to the new id', async () => {
        const old = await created({ client: CLIENT });
        const next = newSession({ client: { ip: '198.51.100.2' } });

        await expect(store.rotate(old.id, next)).resolves.toBe(true);

        expect((await store.get(next.id))!.client).toEqual({ ip: '198.51.100.2' });
      });

      if (supports('listByUser')) {
        it("lists each of a user's sessions with its client", async () => {
          const userId = newUserId();
          const first = await created({ userId, client: CLIENT, createdAt: Date.now() - 1_000 });
          const second = await created({ userId });

          const listed = await store.listByUser(userId);

          expect(ids(listed)).toEqual([first.id, second.id]);
          expect(listed[0].client).toEqual(CLIENT);
          expect(noClient(listed[1])).toBe(true);
        });
      }
    });

    describe('user lock', () => {
      it('runs the critical sections of one user one at a time, and returns what each returned', async () => {
        const userId = newUserId();
        const trace: string[] = [];
        const section = (n: number) =>
          store.withUserLock(userId, async () => {
            trace.push(`enter ${n}`);
            await sleep(20);
            trace.push(`exit ${n}`);
            return n;
          });

        const results = await Promise.all([1, 2, 3, 4].map(section));

        expect(results).toEqual([1, 2, 3, 4]);
        for (let i = 0; i < trace.length; i += 2) {
          expect(trace[i].replace('enter', 'exit')).toBe(trace[i + 1]);
        }
      });

      it('never makes one user wait for another', async () => {
        await expect(bothInsideAtOnce(store, store)).resolves.toEqual(['first', 'second']);
      });

      it('passes on the error of a section that throws, and frees the lock for the next one', async () => {
        const userId = newUserId();

        await expect(store.withUserLock(userId, () => Promise.reject(new Error('critical failed')))).rejects.toThrow('critical failed');
        await expect(store.withUserLock(userId, async () => 'next')).resolves.toBe('next');
      });
    });

    describe('expiry reports', () => {
      /** Everything reported while `run` runs and for `settle` ms after, about the given ids. */
      async function reportsAbout(run: (seen: ExpiredSession[]) => Promise<void>): Promise<ExpiredSession[]> {
        const seen: ExpiredSession[] = [];
        const stop = store.watchExpiry((expired) => seen.push(expired));
        try {
          await run(seen);
          return seen;
        } finally {
          stop();
        }
      }

      async function until(condition: () => boolean, within = EXPIRY_REPORT_DEADLINE): Promise<boolean> {
        const deadline = Date.now() + within;
        while (!condition() && Date.now() < deadline) await sleep(50);
        return condition();
      }

      /**
       * Waits until the watch that `reports` fills is live (a store may need a moment to
       * subscribe): short-lived probe sessions, one after another, until one is reported.
       */
      async function watchIsLive(reports: ExpiredSession[]): Promise<void> {
        const probes = new Set<string>();
        const deadline = Date.now() + EXPIRY_REPORT_DEADLINE;
        while (Date.now() < deadline) {
          probes.add((await created({ expiresAt: Date.now() + 50 })).id);
          if (await until(() => reports.some((r) => probes.has(r.id)), 500)) return;
        }
        throw new Error(`The expiry watch reported none of ${probes.size} probe sessions within ${EXPIRY_REPORT_DEADLINE} ms.`);
      }

      it(`says whether it reports expiries: reportsExpiries is ${supports('expiryEvents')}`, () => {
        expect(store.reportsExpiries).toBe(supports('expiryEvents'));
      });

      if (supports('expiryEvents')) {
        it('reports a session that expires once, with its id and user; not one destroyed or extended', async () => {
          const userId = newUserId();
          const seen = await reportsAbout(async (reports) => {
            await watchIsLive(reports);
            const expiring = await created({ userId, expiresAt: Date.now() + SHORT_LIFETIME });
            const destroyed = await created({ userId, expiresAt: Date.now() + SHORT_LIFETIME });
            const extended = await created({ userId, expiresAt: Date.now() + 1_000 });
            await store.destroy(destroyed.id);
            await store.commit(extended.id, { set: {}, unset: [], expiresAt: Date.now() + LIFETIME, lastSeenAt: Date.now() });

            expect(await until(() => reports.some((r) => r.id === expiring.id))).toBe(true);
            // Long enough for the destroyed and extended sessions' old expiries to have passed.
            await sleep(DUPLICATE_WINDOW + 1_000);
            const about = reports.filter((r) => [expiring.id, destroyed.id, extended.id].includes(r.id));
            expect(about).toEqual([{ id: expiring.id, userId }]);
            await expect(store.get(extended.id)).resolves.not.toBeNull();
          });
          expect(seen.length).toBeGreaterThan(0);
        }, 20_000);

        it('reports an anonymous session with userId null, and stops reporting once the listener is removed', async () => {
          const anonymous: ExpiredSession[] = [];
          const stop = store.watchExpiry((expired) => anonymous.push(expired));
          const removed: ExpiredSession[] = [];
          store.watchExpiry((expired) => removed.push(expired))();
          await watchIsLive(anonymous);
          const session = await created({ expiresAt: Date.now() + SHORT_LIFETIME });

          const reported = await until(() => anonymous.some((r) => r.id === session.id));
          stop();

          expect(reported).toBe(true);
          expect(anonymous.filter((r) => r.id === session.id)).toEqual([{ id: session.id, userId: null }]);
          expect(removed.filter((r) => r.id === session.id)).toEqual([]);
        }, 20_000);
      } else {
        it('reports nothing, as it declares it cannot see expiries', async () => {
          const seen = await reportsAbout(async () => {
            const session = await created({ expiresAt: Date.now() + SHORT_LIFETIME });
            await sleep(SHORT_LIFETIME + DUPLICATE_WINDOW);
            await expect(store.get(session.id)).resolves.toBeNull();
          });
          expect(seen).toEqual([]);
        });
      }
    });

    describe('health', () => {
      it('answers ping', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });

    describe('what it tells the request pipeline', () => {
      it('gives each request a view of its own, of the same kind, or none when every request uses the store itself', () => {
        const view = store.forRequest();

        expect(view === undefined || (view !== store && view.kind === store.kind)).toBe(true);
      });

      it('opens and issues credentials only if it seals sessions into them', async () => {
        if (store.sealsSessions) {
          expect(store.maxCredentialLength).toBeGreaterThan(0);
          await expect((store.forRequest() ?? store).openCredential('not a sealed session')).resolves.toBeNull();
        } else {
          await expect(store.openCredential('id.signature')).rejects.toBeInstanceOf(SessionStoreUnsupportedError);
          await expect(store.issueCredential(newId())).rejects.toBeInstanceOf(SessionStoreUnsupportedError);
        }
      });
    });

    if (setup.dump)
      describeAtRestCases({
        framework: { describe, it, expect, beforeAll, afterAll },
        store: () => store,
        dump: setup.dump,
        lifetime: LIFETIME,
        expiries: { reported: supports('expiryEvents'), shortLifetime: SHORT_LIFETIME, deadline: EXPIRY_REPORT_DEADLINE },
      });
  });
}

/**
 * Runs a section for one user on store `a` and one for another user on store `b` (the same
 * store, or two nodes of one), each waiting inside until the other has entered too: it settles
 * with `['first', 'second']` only if the two run at the same time, and with 'deadlock' (rather
 * than hanging the test) if one waited for the other's lock. For a custom store's own
 * multi-node tests of `withUserLock`. The two users are fresh random ids unless `userIds` names them.
 */
export async function bothInsideAtOnce(
  a: SessionStore,
  b: SessionStore,
  timeoutMs = 10_000,
  userIds: readonly [string, string] = [newUserId(), newUserId()],
): Promise<string[] | 'deadlock'> {
  let enterFirst!: () => void;
  let enterSecond!: () => void;
  const firstEntered = new Promise<void>((resolve) => (enterFirst = resolve));
  const secondEntered = new Promise<void>((resolve) => (enterSecond = resolve));
  const first = a.withUserLock(userIds[0], async () => {
    enterFirst();
    await secondEntered;
    return 'first';
  });
  const second = b.withUserLock(userIds[1], async () => {
    enterSecond();
    await firstEntered;
    return 'second';
  });
  let timer: NodeJS.Timeout | undefined;
  const deadlock = new Promise<'deadlock'>((resolve) => (timer = setTimeout(() => resolve('deadlock'), timeoutMs)));
  try {
    return await Promise.race([Promise.all([first, second]), deadlock]);
  } finally {
    clearTimeout(timer);
  }
}

function ids(sessions: Array<{ id: string }>): string[] {
  return sessions.map((session) => session.id);
}

function expectHostileFieldsAsData(expect: ConformanceFramework['expect'], data: SessionFields): void {
  expect(Object.keys(data).sort()).toEqual(['__proto__', 'constructor', 'prototype', 'toString']);
  expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ polluted: 1 });
  expect(Object.getOwnPropertyDescriptor(data, 'constructor')?.value).toEqual({ prototype: { polluted: 2 } });
  expect(Object.getOwnPropertyDescriptor(data, 'prototype')?.value).toEqual({ polluted: 3 });
  expect(Object.getOwnPropertyDescriptor(data, 'toString')?.value).toBe('plain');
  // The object's own prototype must not have been swapped for the stored value.
  expect([Object.prototype, null]).toContain(Object.getPrototypeOf(data));
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
}
