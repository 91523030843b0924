import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import { generateSessionId, hashSessionId } from '../../lib/crypto/index.js';
import { credentialDecision } from '../../lib/pipeline/session.decisions.js';
import { SessionFieldNotJsonError, SessionReservedFieldError, SessionStoreUnavailableError } from '../../lib/session.errors.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import type { ResolvedSessionOptions } from '../../lib/session.options.js';
import { SessionState } from '../../lib/pipeline/session.state.js';
import type { SessionCallback, SessionMethods } from '../../lib/pipeline/session.state.js';
import { MemoryStore, sealedAtRest } from '../../lib/stores/index.js';
import type { SessionChange, StoredSession } from '../../lib/stores/session-store.js';
import { boundStoreCalls } from '../../lib/stores/bounded-store.js';

const SECRET = 'x'.repeat(32);
const MINUTE = 60_000;

/** Every store call, in order. `touch` is recorded as one call, not as the commit it is built on. */
type StoreCall =
  | { op: 'get'; id: string }
  | { op: 'create'; session: StoredSession }
  | { op: 'commit'; id: string; change: SessionChange }
  | { op: 'touch'; id: string; expiresAt: number }
  | { op: 'rotate'; oldId: string; next: StoredSession }
  | { op: 'destroy'; id: string };

/** The real MemoryStore, counting the calls the session makes. */
class CountingStore extends MemoryStore {
  readonly calls: StoreCall[] = [];
  private inTouch = false;

  override async get(id: string) {
    this.calls.push({ op: 'get', id });
    return super.get(id);
  }

  override async create(session: StoredSession) {
    this.calls.push({ op: 'create', session: structuredClone({ ...session, data: { ...session.data } }) });
    return super.create(session);
  }

  override async commit(id: string, change: SessionChange) {
    if (!this.inTouch) this.calls.push({ op: 'commit', id, change: { ...change, set: { ...change.set }, unset: [...change.unset] } });
    return super.commit(id, change);
  }

  override async touch(id: string, expiresAt: number, lastSeenAt: number) {
    this.calls.push({ op: 'touch', id, expiresAt });
    this.inTouch = true;
    try {
      return await super.touch(id, expiresAt, lastSeenAt);
    } finally {
      this.inTouch = false;
    }
  }

  override async rotate(oldId: string, next: StoredSession) {
    this.calls.push({ op: 'rotate', oldId, next });
    return super.rotate(oldId, next);
  }

  override async destroy(id: string) {
    this.calls.push({ op: 'destroy', id });
    return super.destroy(id);
  }

  /** The calls that write (everything but reads). */
  writes(): StoreCall[] {
    return this.calls.filter((call) => call.op !== 'get');
  }

  ops(): string[] {
    return this.writes().map((call) => call.op);
  }

  commits(): SessionChange[] {
    return this.calls.flatMap((call) => (call.op === 'commit' ? [call.change] : []));
  }

  forget(): void {
    this.calls.length = 0;
  }
}

/** A store whose every write fails, as a store does during an outage. */
class FailingStore extends MemoryStore {
  readonly failure = new Error('store is down');

  override async create(): Promise<void> {
    throw this.failure;
  }

  override async commit(): Promise<boolean> {
    throw this.failure;
  }

  override async rotate(): Promise<boolean> {
    throw this.failure;
  }

  override async destroy(): Promise<void> {
    throw this.failure;
  }
}

/**
 * The proxy as application code uses it: data fields by name, plus the methods. Typed without
 * SessionData, so the sample's declaration merging cannot change what these tests may write.
 */
type AppSession = SessionMethods & Record<string, any>;

const stores: MemoryStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.onApplicationShutdown();
});

function countingStore(): CountingStore {
  const store = new CountingStore();
  stores.push(store);
  return store;
}

function optionsWith(overrides: Record<string, unknown> = {}): ResolvedSessionOptions {
  return resolveSessionOptions({ secret: SECRET, ...overrides });
}

/**
 * Puts a session straight into the store, as an earlier request would have left it: stored under
 * its key, and returned with the id its client holds.
 */
async function seed(store: MemoryStore, data: Record<string, unknown>, overrides: Partial<StoredSession> = {}): Promise<StoredSession> {
  const now = Date.now();
  const id = generateSessionId();
  const session: StoredSession = {
    id,
    data,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + 30 * MINUTE,
    userId: null,
    ...overrides,
  };
  await store.create({ ...session, id: hashSessionId(session.id) });
  return session;
}

/** What the store keeps for the session with this id (under its key). */
function stored(store: MemoryStore, id: string): Promise<StoredSession | null> {
  return store.get(hashSessionId(id));
}

/** A request's view of a stored session: loaded from the store like the middleware does. */
async function load(store: MemoryStore, id: string, options = optionsWith(), now = Date.now()): Promise<SessionState> {
  const loaded = await stored(store, id);
  if (!loaded) throw new Error(`session ${id} is not in the store`);
  return new SessionState(store, options, { id, stored: loaded }, now);
}

function fresh(store: MemoryStore, options = optionsWith()): SessionState {
  return new SessionState(store, options, null, Date.now());
}

const app = (state: SessionState) => state.proxy as unknown as AppSession;

/** Calls a callback-style method and resolves with what the callback got. */
function viaCallback(call: (cb: SessionCallback) => Promise<void>): Promise<{ args: unknown[]; returned: Promise<void> }> {
  return new Promise((resolve) => {
    let returned!: Promise<void>;
    returned = call((...args: unknown[]) => resolve({ args, returned }));
  });
}

describe('SessionState', () => {
  describe('store keys', () => {
    it('hands the store only the hashed ids, never an id a client holds, through create, change, touch, rotation and destroy', async () => {
      const store = countingStore();
      const state = fresh(store);
      app(state).visits = 1;
      await state.commit();
      const first = state.id;
      const later = await load(store, first, optionsWith({ touchAfter: 0 }));
      app(later).userId = 'u1';
      await app(later).rotateId();
      await later.commit();
      const second = later.id;
      const reread = await load(store, second, optionsWith({ touchAfter: 0 }));
      await reread.touch();
      await reread.commit(Date.now() + 1);
      await app(reread).destroy();

      expect(store.ops()).toEqual(['create', 'rotate', 'touch', 'destroy']);
      const seen = JSON.stringify(store.calls);
      for (const id of [first, second]) {
        expect(seen).not.toContain(id);
        expect(seen).toContain(hashSessionId(id));
      }
      expect(
        store.calls.flatMap((call) => ('id' in call ? [call.id] : call.op === 'rotate' ? [call.oldId, call.next.id] : [call.session.id])),
      ).toEqual([
        hashSessionId(first),
        hashSessionId(first),
        hashSessionId(first),
        hashSessionId(second),
        hashSessionId(second),
        hashSessionId(second),
        hashSessionId(second),
      ]);
    });
  });

  describe('a session sealed under an older encryption key', () => {
    it('writes every field, the user and the client back under the first key on the request that reads it, changing nothing else', async () => {
      const store = countingStore();
      const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
      const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };
      const signIn = new SessionState(sealedAtRest(store, [oldKey], quiet), optionsWith({ recordClient: true }), null, Date.now(), {
        client: { userAgent: 'phone' },
      });
      Object.assign(app(signIn), { userId: 'u1', cart: ['a'], theme: 'dark' });
      await signIn.commit();
      const id = signIn.id;

      const rotating = sealedAtRest(store, [newKey, oldKey], quiet);
      const read = await rotating.get(hashSessionId(id));
      expect(read?.reseal).toBe(true);
      const state = new SessionState(rotating, optionsWith(), { id, stored: read! }, Date.now());
      expect(app(state).cart).toEqual(['a']);
      expect(state.hasPendingWrite()).toBe(true);
      store.forget();
      await state.commit();

      expect(store.ops()).toEqual(['commit']);
      expect(Object.keys(store.commits()[0].set).sort()).toEqual(['cart', 'theme', 'userId']);
      expect(state.hasPendingWrite()).toBe(false);
      const after = sealedAtRest(store, [newKey], quiet);
      expect(await after.get(hashSessionId(id))).toMatchObject({
        data: { userId: 'u1', cart: ['a'], theme: 'dark' },
        userId: 'u1',
        client: { userAgent: 'phone' },
      });
      expect((await after.listByUser('u1')).map((session) => session.id)).toEqual([hashSessionId(id)]);
    });
  });

  describe('property-style data', () => {
    it('stores a field assigned like express-session (session.userId = ...)', async () => {
      const store = countingStore();
      const state = fresh(store);

      app(state).userId = 'u1';
      await state.commit();

      expect(store.ops()).toEqual(['create']);
      expect((await stored(store, state.id))?.data).toEqual({ userId: 'u1' });
    });

    it('reads the fields of a loaded session as properties', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1', visits: 3 });
      const session = app(await load(store, id));

      expect(session.userId).toBe('u1');
      expect(session.visits).toBe(3);
      expect(session.missing).toBeUndefined();
      expect('visits' in session).toBe(true);
      expect('missing' in session).toBe(false);
    });

    it('gives only data from Object.keys, spread and JSON.stringify', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1', cart: { items: [1, 2] } });
      const session = app(await load(store, id));

      expect(Object.keys(session).sort()).toEqual(['cart', 'userId']);
      expect({ ...session }).toEqual({ userId: 'u1', cart: { items: [1, 2] } });
      expect(JSON.parse(JSON.stringify(session))).toEqual({ userId: 'u1', cart: { items: [1, 2] } });
      expect(session.toJSON()).toEqual({ userId: 'u1', cart: { items: [1, 2] } });
    });

    it('exposes id, isNew and the methods besides the data', async () => {
      const store = countingStore();
      const seeded = await seed(store, { visits: 1 });
      const loaded = app(await load(store, seeded.id));
      const created = app(fresh(store));

      expect(loaded.id).toBe(seeded.id);
      expect(loaded.isNew).toBe(false);
      expect(created.isNew).toBe(true);
      for (const method of ['regenerate', 'rotateId', 'destroy', 'reload', 'save', 'touch'] as const) {
        expect(typeof loaded[method]).toBe('function');
      }
    });

    it('gives a new session one id that does not change until it is rotated', () => {
      const session = app(fresh(countingStore()));

      expect(session.id).toHaveLength(43);
      expect(session.id).toBe(session.id);
    });
  });

  describe('delta writes', () => {
    it('writes only the fields a request changed', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1, b: 2, c: 3 });
      const state = await load(store, id);
      store.forget();

      app(state).b = 20;
      app(state).d = 4;
      void app(state).a;
      await state.commit();

      expect(store.ops()).toEqual(['commit']);
      expect(store.commits()[0].set).toEqual({ b: 20, d: 4 });
      expect(store.commits()[0].unset).toEqual([]);
      expect((await stored(store, id))?.data).toEqual({ a: 1, b: 20, c: 3, d: 4 });
    });

    it('serializes a changed field once: the store writes the JSON the change was found with', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);
      let serialized = 0;
      const value = {
        toJSON() {
          serialized += 1;
          return 'as JSON';
        },
      };

      app(state).b = value;
      await state.commit();

      expect(serialized).toBe(1);
      expect((await stored(store, id))?.data).toEqual({ a: 1, b: 'as JSON' });
    });

    it('sends a removed field as unset', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1, b: 2 });
      const state = await load(store, id);
      store.forget();

      delete app(state).a;
      await state.commit();

      expect(store.commits()).toHaveLength(1);
      expect(store.commits()[0].set).toEqual({});
      expect(store.commits()[0].unset).toEqual(['a']);
      expect((await stored(store, id))?.data).toEqual({ b: 2 });
    });

    it('treats assigning undefined as removing the field', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1, b: 2 });
      const state = await load(store, id);
      store.forget();

      app(state).a = undefined;
      await state.commit();

      expect(store.commits()[0].unset).toEqual(['a']);
      expect(Object.keys(app(state))).toEqual(['b']);
      expect((await stored(store, id))?.data).toEqual({ b: 2 });
    });

    it('sees a nested mutation (session.cart.items.push(3))', async () => {
      const store = countingStore();
      const { id } = await seed(store, { cart: { items: [1, 2] }, other: 'x' });
      const state = await load(store, id);
      store.forget();

      app(state).cart.items.push(3);
      await state.commit();

      expect(store.commits()).toHaveLength(1);
      expect(store.commits()[0].set).toEqual({ cart: { items: [1, 2, 3] } });
      expect((await stored(store, id))?.data).toEqual({ cart: { items: [1, 2, 3] }, other: 'x' });
    });

    it('writes nothing for a request that only reads, when no touch is due', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1', cart: { items: [1] } });
      const state = await load(store, id);
      store.forget();

      const session = app(state);
      void session.userId;
      void session.cart.items.length;
      void Object.keys(session);
      void JSON.stringify(session);
      void { ...session };
      await state.commit();

      expect(store.writes()).toEqual([]);
    });

    it('writes nothing when a field is assigned the value it already had', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1', prefs: { theme: 'dark' } });
      const state = await load(store, id);
      store.forget();

      app(state).userId = 'u1';
      app(state).prefs = { theme: 'dark' };
      await state.commit();

      expect(store.writes()).toEqual([]);
    });

    it('writes nothing when a field is changed and then changed back', async () => {
      const store = countingStore();
      const { id } = await seed(store, { visits: 1 });
      const state = await load(store, id);
      store.forget();

      app(state).visits = 2;
      app(state).visits = 1;
      await state.commit();

      expect(store.writes()).toEqual([]);
    });

    it('keeps both fields when two requests change different fields of one session', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1, b: 1 });
      const first = await load(store, id);
      const second = await load(store, id);

      app(first).a = 2;
      app(second).b = 2;
      await first.commit();
      await second.commit();

      expect((await stored(store, id))?.data).toEqual({ a: 2, b: 2 });
    });
  });

  describe('new sessions', () => {
    it('creates nothing for a session nobody wrote to, and sends no cookie', async () => {
      const store = countingStore();
      const state = fresh(store);

      void app(state).userId;
      void app(state).id;
      await state.commit();

      expect(store.writes()).toEqual([]);
      expect(credentialDecision(state.committed, null, false)).toEqual({ action: 'none' });
    });

    it('leaves an unusable cookie alone when nothing was written (it may belong to a racing sign-in)', async () => {
      const store = countingStore();
      const state = fresh(store);

      await state.commit();

      expect(store.writes()).toEqual([]);
      expect(credentialDecision(state.committed, null, false)).toEqual({ action: 'none' });
    });

    it('creates the session and sets the cookie once a field is written', async () => {
      const store = countingStore();
      const state = fresh(store);

      app(state).visits = 1;
      await state.commit();

      expect(store.ops()).toEqual(['create']);
      expect(credentialDecision(state.committed, null, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: state.id }) });
      expect((await stored(store, state.id))?.data).toEqual({ visits: 1 });
    });

    it('creates an empty session when saveUninitialized is true', async () => {
      const store = countingStore();
      const state = fresh(store, optionsWith({ saveUninitialized: true }));

      await state.commit();

      expect(store.ops()).toEqual(['create']);
      expect((await stored(store, state.id))?.data).toEqual({});
      expect(credentialDecision(state.committed, null, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: state.id }) });
    });

    it('sends no cookie for a stored session whose cookie the client already holds', async () => {
      const store = countingStore();
      const { id } = await seed(store, { visits: 1 });
      const state = await load(store, id);

      app(state).visits = 2;
      await state.commit();

      expect(credentialDecision(state.committed, id, false)).toEqual({ action: 'none' });
    });
  });

  describe('rotateId()', () => {
    it('moves the data to a new id in one rotate call; the old id is dead', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { cart: [1] });
      const state = await load(store, oldId);
      store.forget();

      await app(state).rotateId();
      app(state).userId = 'u1';
      await state.commit();

      expect(store.ops()).toEqual(['rotate']);
      const newId = app(state).id;
      expect(newId).not.toBe(oldId);
      expect(await stored(store, oldId)).toBeNull();
      expect((await stored(store, newId))?.data).toEqual({ cart: [1], userId: 'u1' });
      expect(credentialDecision(state.committed, oldId, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: newId }) });
    });

    it('indexes the rotated session under its user', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, {});
      const state = await load(store, oldId);

      await app(state).rotateId();
      app(state).userId = 'u1';
      await state.commit();

      expect((await store.listByUser('u1')).map((s) => s.id)).toEqual([hashSessionId(app(state).id)]);
    });

    it('writes only what changed after the rotation on a later commit', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);

      await app(state).rotateId();
      await state.commit();
      store.forget();
      app(state).b = 2;
      await state.commit();

      expect(store.ops()).toEqual(['commit']);
      expect(store.commits()[0].set).toEqual({ b: 2 });
    });
  });

  describe('regenerate()', () => {
    it('destroys the old session at once and starts empty under a new id', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1', cart: [1] });
      const state = await load(store, oldId);
      store.forget();

      await app(state).regenerate();

      expect(store.ops()).toEqual(['destroy']);
      expect(await stored(store, oldId)).toBeNull();
      expect(Object.keys(app(state))).toEqual([]);
      expect(app(state).userId).toBeUndefined();
      expect(app(state).isNew).toBe(true);
      expect(app(state).id).not.toBe(oldId);
    });

    it('stores what is written after it under the new id', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1', cart: [1] });
      const state = await load(store, oldId);

      await app(state).regenerate();
      app(state).userId = 'u2';
      await state.commit();

      const newId = app(state).id;
      expect(newId).not.toBe(oldId);
      expect(await stored(store, oldId)).toBeNull();
      expect((await stored(store, newId))?.data).toEqual({ userId: 'u2' });
      expect(credentialDecision(state.committed, oldId, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: newId }) });
    });

    it('with { keepData: true } keeps the data under a new id', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1', cart: [1] });
      const state = await load(store, oldId);
      store.forget();

      await app(state).regenerate({ keepData: true });
      await state.commit();

      const newId = app(state).id;
      expect(store.ops()).toEqual(['rotate']);
      expect(newId).not.toBe(oldId);
      expect(await stored(store, oldId)).toBeNull();
      expect((await stored(store, newId))?.data).toEqual({ userId: 'u1', cart: [1] });
    });

    it('hands out a new Session object; the one held before still shows the old data, as express-session does', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1', cart: [1] });
      const state = await load(store, oldId);
      const before = app(state);

      await before.regenerate();

      expect(app(state)).not.toBe(before);
      expect(Object.keys(app(state))).toEqual([]);
      expect(before.cart).toEqual([1]);
      expect({ ...before }).toEqual({ userId: 'u1', cart: [1] });
      expect(before.toJSON()).toEqual({ userId: 'u1', cart: [1] });
      expect(before.id).toBe(app(state).id);
    });

    it("lets Passport's keepSessionInfo copy the old object's fields into the new session", async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { cart: [1], returnTo: '/checkout' });
      const state = await load(store, oldId);
      const previous = app(state);

      await previous.regenerate();
      // Passport's merge(req.session, prevSession): a for…in copy.
      const current = app(state) as unknown as Record<string, unknown>;
      for (const key in previous) current[key] = (previous as unknown as Record<string, unknown>)[key];
      app(state).userId = 'u2';
      await state.commit();

      expect((await stored(store, app(state).id))?.data).toEqual({ cart: [1], returnTo: '/checkout', userId: 'u2' });
      expect(await stored(store, oldId)).toBeNull();
    });

    it('sends what is written through the object held before to the new session, which it then shows', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1', cart: [1] });
      const state = await load(store, oldId);
      const held = app(state);

      await held.regenerate();
      held.userId = 'u2';
      await state.commit();

      expect(held.userId).toBe('u2');
      expect((await stored(store, app(state).id))?.data).toEqual({ userId: 'u2' });
      expect(app(state).userId).toBe('u2');
    });
  });

  describe('destroy()', () => {
    it('removes the session from the store at once and clears the cookie', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' }, { userId: 'u1' });
      const state = await load(store, id);

      await app(state).destroy();

      expect(await stored(store, id)).toBeNull();
      expect(await store.listByUser('u1')).toEqual([]);
      expect(Object.keys(app(state))).toEqual([]);
      await state.commit();
      expect(await stored(store, id)).toBeNull();
      expect(credentialDecision(state.committed, id, false)).toEqual({ action: 'clear' });
    });

    it('stores writes made after it as a fresh session under a new id', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { userId: 'u1' });
      const state = await load(store, oldId);

      await app(state).destroy();
      app(state).flash = 'signed out';
      await state.commit();

      const newId = app(state).id;
      expect(newId).not.toBe(oldId);
      expect(await stored(store, oldId)).toBeNull();
      expect((await stored(store, newId))?.data).toEqual({ flash: 'signed out' });
      expect(credentialDecision(state.committed, oldId, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: newId }) });
    });
  });

  describe('reload()', () => {
    it('drops unsaved changes and reads what the store holds now', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1, b: 1 });
      const state = await load(store, id);
      const other = await load(store, id);

      app(state).a = 'unsaved';
      app(other).b = 2;
      await other.commit();
      await app(state).reload();

      expect({ ...app(state) }).toEqual({ a: 1, b: 2 });
      store.forget();
      await state.commit();
      expect(store.writes()).toEqual([]);
      expect((await stored(store, id))?.data).toEqual({ a: 1, b: 2 });
    });

    it('becomes a fresh session when another request destroyed it meanwhile', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' });
      const state = await load(store, id);
      const other = await load(store, id);

      await app(other).destroy();
      await app(state).reload();
      app(state).visits = 1;
      await state.commit();

      expect(await stored(store, id)).toBeNull();
      expect(app(state).id).not.toBe(id);
      expect((await stored(store, app(state).id))?.data).toEqual({ visits: 1 });
    });
  });

  describe('save()', () => {
    it('writes at once, and a later commit writes only what changed after it', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);
      store.forget();

      app(state).a = 2;
      await app(state).save();

      expect(store.ops()).toEqual(['commit']);
      expect((await stored(store, id))?.data).toEqual({ a: 2 });

      app(state).b = 3;
      await state.commit();

      expect(store.ops()).toEqual(['commit', 'commit']);
      expect(store.commits()[1].set).toEqual({ b: 3 });
      expect(store.commits()[1].unset).toEqual([]);
    });

    it('writes nothing more at commit when nothing changed after it', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);
      store.forget();

      app(state).a = 2;
      await app(state).save();
      await state.commit();

      expect(store.ops()).toEqual(['commit']);
    });

    it('stores a new session even when nothing was written to it', async () => {
      const store = countingStore();
      const state = fresh(store);

      await app(state).save();

      expect(store.ops()).toEqual(['create']);
      expect(await stored(store, app(state).id)).not.toBeNull();
    });
  });

  describe('a save() still in flight when the request ends', () => {
    it('does not lose a rotated session (the commits run one after the other)', async () => {
      const store = countingStore();
      const { id: oldId } = await seed(store, { cart: [1] });
      const state = await load(store, oldId);

      await app(state).rotateId();
      app(state).userId = 'u1';
      const saving = app(state).save(); // not awaited by the handler
      await state.commit(); // the end of the request
      await saving;

      const newId = app(state).id;
      expect(await stored(store, oldId)).toBeNull();
      expect((await stored(store, newId))?.data).toEqual({ cart: [1], userId: 'u1' });
      expect(credentialDecision(state.committed, oldId, false)).toEqual({ action: 'set', subject: expect.objectContaining({ id: newId }) });
    });

    it('does not create a new session twice', async () => {
      const store = countingStore();
      const state = fresh(store);

      app(state).visits = 1;
      const saving = app(state).save();
      await state.commit();
      await saving;

      expect(store.ops()).toEqual(['create']);
    });
  });

  describe('touch and expiry', () => {
    const idle = 30 * MINUTE;
    const touchAfter = 3 * MINUTE;

    it('touch() forces a touch of an unmodified session', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);
      store.forget();

      await app(state).touch();
      await state.commit(Date.now() + 1);

      expect(store.ops()).toEqual(['touch']);
    });

    it('touches an unmodified session once when it was last seen longer ago than touchAfter', async () => {
      const store = countingStore();
      const now = Date.now();
      const lastSeenAt = now - touchAfter - 1;
      const { id } = await seed(store, { a: 1 }, { createdAt: lastSeenAt, lastSeenAt, expiresAt: lastSeenAt + idle });
      const state = await load(store, id, optionsWith(), now);
      store.forget();

      await state.commit(now);
      await state.commit(now);

      expect(store.writes()).toEqual([{ op: 'touch', id: hashSessionId(id), expiresAt: now + idle }]);
      expect((await stored(store, id))?.expiresAt).toBe(now + idle);
      expect((await stored(store, id))?.lastSeenAt).toBe(now);
    });

    it('does not touch a session seen more recently than touchAfter', async () => {
      const store = countingStore();
      const now = Date.now();
      const lastSeenAt = now - touchAfter + 1_000;
      const { id } = await seed(store, { a: 1 }, { createdAt: lastSeenAt, lastSeenAt, expiresAt: lastSeenAt + idle });
      const state = await load(store, id, optionsWith(), now);
      store.forget();

      await state.commit(now);

      expect(store.writes()).toEqual([]);
    });

    it('re-issues a credential that carries state (a cookie with Max-Age) after a touch, and not otherwise', async () => {
      const store = countingStore();
      const options = optionsWith({ cookie: { maxAge: '30m' } });
      const now = Date.now();
      const stale = now - touchAfter - 1;
      const { id: staleId } = await seed(store, { a: 1 }, { createdAt: stale, lastSeenAt: stale, expiresAt: stale + idle });
      const { id: recentId } = await seed(store, { a: 1 }, { createdAt: now, lastSeenAt: now, expiresAt: now + idle });
      const touched = await load(store, staleId, options, now);
      const untouched = await load(store, recentId, options, now);

      await touched.commit(now);
      await untouched.commit(now);

      expect(credentialDecision(touched.committed, staleId, true)).toEqual({ action: 'set', subject: expect.objectContaining({ id: staleId }) });
      expect(credentialDecision(untouched.committed, recentId, true)).toEqual({ action: 'none' });
    });

    it('sets expiresAt to now + idleTimeout on a write', async () => {
      const store = countingStore();
      const now = Date.now();
      const state = new SessionState(store, optionsWith(), null, now);

      app(state).a = 1;
      await state.commit(now);

      expect((await stored(store, app(state).id))?.expiresAt).toBe(now + idle);
    });

    it('caps expiresAt at createdAt + absoluteTimeout', async () => {
      const store = countingStore();
      const now = Date.now();
      const createdAt = now - 12 * 60 * MINUTE + 10 * MINUTE;
      const { id } = await seed(store, { a: 1 }, { createdAt, lastSeenAt: now - MINUTE, expiresAt: now + 10 * MINUTE });
      const state = await load(store, id, optionsWith(), now);

      app(state).a = 2;
      await state.commit(now);

      expect((await stored(store, id))?.expiresAt).toBe(createdAt + 12 * 60 * MINUTE);
    });

    it('does not touch when the absolute deadline leaves nothing to extend', async () => {
      const store = countingStore();
      const now = Date.now();
      const createdAt = now - 12 * 60 * MINUTE + 10 * MINUTE;
      const lastSeenAt = now - 5 * MINUTE;
      const { id } = await seed(store, { a: 1 }, { createdAt, lastSeenAt, expiresAt: createdAt + 12 * 60 * MINUTE });
      const state = await load(store, id, optionsWith(), now);
      store.forget();

      await state.commit(now);

      expect(store.writes()).toEqual([]);
    });

    it('slides without limit when absoluteTimeout is false', async () => {
      const store = countingStore();
      const now = Date.now();
      const createdAt = now - 30 * 24 * 60 * MINUTE;
      const { id } = await seed(store, { a: 1 }, { createdAt, lastSeenAt: now - MINUTE, expiresAt: now + MINUTE });
      const state = await load(store, id, optionsWith({ absoluteTimeout: false }), now);

      app(state).a = 2;
      await state.commit(now);

      expect((await stored(store, id))?.expiresAt).toBe(now + idle);
    });
  });

  describe('a session destroyed by another request meanwhile', () => {
    it('is not brought back by a write', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' }, { userId: 'u1' });
      const writer = await load(store, id);
      const logout = await load(store, id);

      await app(logout).destroy();
      app(writer).cart = [1];
      await writer.commit();

      expect(await stored(store, id)).toBeNull();
      expect(await store.listByUser('u1')).toEqual([]);
      expect(credentialDecision(writer.committed, id, false)).toEqual({ action: 'none' });
    });

    it('is not brought back by an id rotation', async () => {
      const store = countingStore();
      const { id } = await seed(store, { cart: [1] });
      const login = await load(store, id);
      const logout = await load(store, id);

      await app(logout).destroy();
      await app(login).rotateId();
      app(login).userId = 'u1';
      await login.commit();

      expect(await stored(store, id)).toBeNull();
      expect(await stored(store, app(login).id)).toBeNull();
      expect(await store.listByUser('u1')).toEqual([]);
      expect(credentialDecision(login.committed, id, false)).toEqual({ action: 'none' });
    });

    it('is not brought back by a touch', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const reader = await load(store, id);
      const logout = await load(store, id);

      await app(logout).destroy();
      await app(reader).touch();
      await reader.commit();

      expect(await stored(store, id)).toBeNull();
      expect(credentialDecision(reader.committed, id, false)).toEqual({ action: 'none' });
    });
  });

  describe('callback style (Passport)', () => {
    it('save(cb) calls back with no error once the write is done', async () => {
      const store = countingStore();
      const state = fresh(store);
      app(state).userId = 'u1';

      const { args, returned } = await viaCallback((cb) => app(state).save(cb));

      expect(args).toEqual([]);
      await expect(returned).resolves.toBeUndefined();
      expect((await stored(store, app(state).id))?.data).toEqual({ userId: 'u1' });
    });

    it('regenerate(cb) calls back with no error after the old session is gone', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' });
      const state = await load(store, id);

      const { args } = await viaCallback((cb) => app(state).regenerate(cb));

      expect(args).toEqual([]);
      expect(await stored(store, id)).toBeNull();
      expect(app(state).id).not.toBe(id);
    });

    it('regenerate({ keepData: true }, cb) keeps the data', async () => {
      const store = countingStore();
      const { id } = await seed(store, { cart: [1] });
      const state = await load(store, id);

      const { args } = await viaCallback((cb) => app(state).regenerate({ keepData: true }, cb));
      await state.commit();

      expect(args).toEqual([]);
      expect((await stored(store, app(state).id))?.data).toEqual({ cart: [1] });
    });

    it('destroy(cb) calls back with no error after the session is gone', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' });
      const state = await load(store, id);

      const { args } = await viaCallback((cb) => app(state).destroy(cb));

      expect(args).toEqual([]);
      expect(await stored(store, id)).toBeNull();
    });

    describe('when the store fails', () => {
      function failingState(): { store: FailingStore; state: SessionState } {
        const store = new FailingStore();
        stores.push(store);
        const now = Date.now();
        // Loaded as if the read had worked; the writes are what fail.
        const id = generateSessionId();
        const loaded: StoredSession = {
          id: hashSessionId(id),
          data: { userId: 'u1' },
          createdAt: now,
          lastSeenAt: now,
          expiresAt: now + MINUTE,
          userId: 'u1',
        };
        // Bounded as the middleware hands it over: the bound is what tells a store failure (503) from a bug (500).
        return { store, state: new SessionState(boundStoreCalls(store, 1_000), optionsWith(), { id, stored: loaded }, now) };
      }

      it.each([
        ['save', (s: AppSession, cb: SessionCallback) => s.save(cb)],
        ['regenerate', (s: AppSession, cb: SessionCallback) => s.regenerate(cb)],
        ['destroy', (s: AppSession, cb: SessionCallback) => s.destroy(cb)],
      ])('%s(cb) passes a 503 error to the callback, and the returned promise does not reject', async (_name, call) => {
        const { state } = failingState();
        app(state).visits = 1;

        const { args, returned } = await viaCallback((cb) => call(app(state), cb));

        expect(args).toHaveLength(1);
        expect(args[0]).toBeInstanceOf(SessionStoreUnavailableError);
        await expect(returned).resolves.toBeUndefined();
      });

      it('save() without a callback rejects with a 503 that names the store', async () => {
        const { state } = failingState();
        app(state).visits = 1;

        const error = await app(state)
          .save()
          .catch((e: unknown) => e);

        expect(error).toBeInstanceOf(SessionStoreUnavailableError);
        expect((error as SessionStoreUnavailableError).getResponse()).toMatchObject({
          code: 'SESSION_STORE_UNAVAILABLE',
          message: expect.stringContaining('memory'),
        });
      });
    });
  });

  describe('reserved names', () => {
    const reserved = [
      'id',
      'isNew',
      'save',
      'regenerate',
      'rotateId',
      'destroy',
      'reload',
      'touch',
      'toJSON',
      '__proto__',
      'constructor',
      'prototype',
    ];

    it.each(reserved)('refuses to write a field named %s', (name) => {
      const session = app(fresh(countingStore()));

      expect(() => {
        session[name] = 'x';
      }).toThrow(SessionReservedFieldError);
    });

    it.each(reserved)('refuses to delete %s', (name) => {
      const session = app(fresh(countingStore()));

      expect(() => {
        delete session[name];
      }).toThrow(SessionReservedFieldError);
    });

    it.each(reserved)('refuses Object.defineProperty of %s', (name) => {
      const session = app(fresh(countingStore()));

      expect(() => Object.defineProperty(session, name, { value: 'x' })).toThrow(SessionReservedFieldError);
    });

    it('names the field and how to fix it in the error', () => {
      const session = app(fresh(countingStore()));

      expect(() => {
        (session as Record<string, unknown>).save = 'x';
      }).toThrow(/"save" is reserved.*another name/);
    });

    it('refuses Object.setPrototypeOf', () => {
      const session = app(fresh(countingStore()));

      expect(() => Object.setPrototypeOf(session, {})).toThrow(SessionReservedFieldError);
    });

    it('refuses Object.assign of JSON input carrying a __proto__ key', () => {
      const session = app(fresh(countingStore()));

      expect(() => Object.assign(session, JSON.parse('{"__proto__":{"polluted":true}}'))).toThrow(SessionReservedFieldError);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('keeps its methods working after a refused write', async () => {
      const store = countingStore();
      const state = fresh(store);
      const session = app(state);

      expect(() => {
        session.save = () => Promise.resolve();
      }).toThrow(SessionReservedFieldError);
      session.visits = 1;
      await session.save();

      expect((await stored(store, session.id))?.data).toEqual({ visits: 1 });
    });
  });

  describe('hostile data from the store', () => {
    it.each([
      ['__proto__', '{"__proto__":{"polluted":true}}'],
      ['constructor', '{"constructor":{"prototype":{"polluted":true}}}'],
    ])('a stored %s key neither pollutes Object.prototype nor changes the session', async (key, json) => {
      const store = countingStore();
      const { id } = await seed(store, { ...JSON.parse(json), visits: 1 } as Record<string, unknown>);
      expect(Object.keys((await stored(store, id))!.data)).toContain(key);
      const state = await load(store, id);
      const session = app(state);

      expect(Object.getPrototypeOf(session)).toBeNull();
      expect(session.polluted).toBeUndefined();
      expect(typeof session.save).toBe('function');
      expect(session.visits).toBe(1);
      session.visits = 2;
      void { ...session };
      void JSON.stringify(session);
      await state.commit();
      await app(state).rotateId();
      await state.commit();
      const reread = await stored(store, app(state).id);

      expect(reread?.data.visits).toBe(2);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  describe('values JSON cannot carry', () => {
    it('makes commit reject with SessionFieldNotJsonError naming a BigInt field, and writes nothing', async () => {
      const store = countingStore();
      const { id } = await seed(store, { a: 1 });
      const state = await load(store, id);
      store.forget();

      app(state).a = 2;
      app(state).big = 10n;

      await expect(state.commit()).rejects.toThrow(SessionFieldNotJsonError);
      await expect(state.commit()).rejects.toThrow(/"big"/);
      expect(store.writes()).toEqual([]);
      expect((await stored(store, id))?.data).toEqual({ a: 1 });
    });

    it('creates nothing for a new session holding a cycle', async () => {
      const store = countingStore();
      const state = fresh(store);
      const cycle: Record<string, unknown> = {};
      cycle.self = cycle;

      app(state).tree = cycle;

      await expect(state.commit()).rejects.toThrow(SessionFieldNotJsonError);
      expect(store.writes()).toEqual([]);
    });
  });

  describe('per-user index', () => {
    it('sends the user id when userKey is set', async () => {
      const store = countingStore();
      const { id } = await seed(store, {});
      const state = await load(store, id);
      store.forget();

      app(state).userId = 'u1';
      await state.commit();

      expect(store.commits()[0].userId).toBe('u1');
      expect((await store.listByUser('u1')).map((s) => s.id)).toEqual([hashSessionId(id)]);
    });

    it('sends null when userKey is cleared', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' }, { userId: 'u1' });
      const state = await load(store, id);
      store.forget();

      delete app(state).userId;
      await state.commit();

      expect(store.commits()[0].userId).toBeNull();
      expect(await store.listByUser('u1')).toEqual([]);
    });

    it('leaves the index alone when another field changes', async () => {
      const store = countingStore();
      const { id } = await seed(store, { userId: 'u1' }, { userId: 'u1' });
      const state = await load(store, id);
      store.forget();

      app(state).visits = 1;
      await state.commit();

      expect(store.commits()[0].userId).toBeUndefined();
      expect((await store.listByUser('u1')).map((s) => s.id)).toEqual([hashSessionId(id)]);
    });

    it('does not file different users under one index entry when userKey holds objects', async () => {
      const store = countingStore();
      const alice = fresh(store);
      const bob = fresh(store);

      app(alice).userId = { id: 'alice' };
      app(bob).userId = { id: 'bob' };
      await alice.commit();
      await bob.commit();

      // String({ id: 'alice' }) === String({ id: 'bob' }) === '[object Object]': revoking "that
      // user's other sessions" would then sign out everyone else filed there too.
      expect((await store.listByUser('[object Object]')).length).toBeLessThan(2);
    });

    it('follows a custom userKey', async () => {
      const store = countingStore();
      const state = fresh(store, optionsWith({ userKey: 'accountId' }));

      app(state).userId = 'not-this';
      app(state).accountId = 42;
      await state.commit();

      expect((await store.listByUser('42')).map((s) => s.id)).toEqual([hashSessionId(app(state).id)]);
      expect(await store.listByUser('not-this')).toEqual([]);
    });
  });
});
