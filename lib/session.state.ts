import { Logger } from '@nestjs/common';
import { MAX_SESSION_FIELDS, RESERVED_FIELDS } from './session.constants.js';
import {
  toHttpException,
  SessionFieldNotJsonError,
  SessionLimitReachedError,
  SessionReservedFieldError,
  SessionTooManyFieldsError,
} from './session.errors.js';
import type { SessionEvents } from './session.events.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { generateSessionId } from './crypto/index.js';
import { defineField } from './stores/field-codec.js';
import { StoreBudget } from './stores/bounded-store.js';
import { assertUserIdKeepable } from './stores/session-store.js';
import type { SessionChange, SessionClient, SessionFields, SessionStore, StoredSession } from './stores/session-store.js';

/**
 * The data of a session. Empty here; applications describe their fields by declaration merging:
 *
 * @example
 * ```ts
 * declare module 'nestjs-session-sync' {
 *   interface SessionData {
 *     userId?: string;
 *     visits?: number;
 *   }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {}

/** Node-style callback accepted by every Session method (Passport calls `regenerate(cb)`). */
export type SessionCallback = (err?: unknown) => void;

export interface RegenerateOptions {
  /** Keep the data and move it to the new id (fixation protection on sign-in). @default false */
  keepData?: boolean;
}

/** The members every session has besides its data fields. Their names are reserved. */
export interface SessionMethods {
  /** The session id. Never log it: use `hashSessionId()`. */
  readonly id: string;
  /** True when this request started the session (it was not in the store before). */
  readonly isNew: boolean;
  /** New id and empty data; the old session is destroyed at once, and `req.session` becomes a new object (express-session semantics). */
  regenerate(options?: RegenerateOptions, callback?: SessionCallback): Promise<void>;
  regenerate(callback: SessionCallback): Promise<void>;
  /** New id, same data: call it on sign-in. The old id is dead once the response is sent. */
  rotateId(callback?: SessionCallback): Promise<void>;
  /** Destroys the session in the store now; the response clears the cookie. */
  destroy(callback?: SessionCallback): Promise<void>;
  /** Reads the session again from the store, dropping unsaved changes. */
  reload(callback?: SessionCallback): Promise<void>;
  /** Writes the changes so far now, rather than before the response is sent. */
  save(callback?: SessionCallback): Promise<void>;
  /** Asks for the expiry to be extended even though nothing changed. */
  touch(callback?: SessionCallback): Promise<void>;
  /** The data fields as a plain object (a copy). */
  toJSON(): Record<string, unknown>;
}

/** What `@Session()` and `req.session` give: the data fields and the methods. */
export type SessionObject = SessionMethods & SessionData;

/** What a credential is made for: the committed session's id, user and expiry. */
export interface CredentialSubject {
  id: string;
  userId: string | null;
  expiresAt: number;
}

/** What a request's session knows beyond the store: where to report events, who the client is. */
export interface SessionContext {
  events?: SessionEvents;
  /** The request's store time, part of it perhaps spent on the load. Default: all of `storeTimeout`. */
  budget?: StoreBudget;
  /** The requesting client, recorded on sign-in when `recordClient` is on. */
  client?: SessionClient;
}

/** What the client's credential must become once the session is committed. */
export type CredentialDecision = { action: 'set'; subject: CredentialSubject } | { action: 'clear' } | { action: 'none' };

const logger = new Logger('SessionModule');

/** The names of the Session object's own members (everything else is a data field). */
const MEMBER_NAMES: ReadonlySet<string> = new Set(['id', 'isNew', 'regenerate', 'rotateId', 'destroy', 'reload', 'save', 'touch', 'toJSON']);

/**
 * The value at `userKey` in session data: a field (`'userId'`) or a dotted path into nested
 * objects (`'passport.user'`, where Passport keeps its user). Own properties only.
 */
export function readUserKey(data: object | undefined, userKey: string): unknown {
  let value: unknown = data;
  for (const segment of userKey.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

const serialize = (field: string, value: unknown): string | undefined => {
  try {
    return JSON.stringify(value);
  } catch {
    throw new SessionFieldNotJsonError(field);
  }
};

/** A deep copy through JSON: what `toJSON()` hands out, so nothing returned reaches the session. */
const copyJson = (value: object): Record<string, unknown> => JSON.parse(JSON.stringify(value)) as Record<string, unknown>;

/** Copies JSON-shaped data into a null-prototype object, so no key can reach a prototype. */
const copyFields = (target: SessionFields, source: SessionFields): void => {
  for (const key of Object.keys(source)) defineField(target, key, source[key]);
};

/**
 * One request's view of one session, and the only place that decides what to write.
 *
 * Change tracking: the first time a field is touched through the proxy (read, written or
 * deleted), its JSON is remembered; at commit only those fields are compared again. So a nested
 * mutation (`session.cart.items.push(x)`) is seen, and a request that touches two fields of a
 * fifty-field session serializes two fields, not fifty.
 *
 * Identity: `storedId` is where the session lives in the store now (null: not stored) and `id`
 * is where it will live after commit. They differ only while an id rotation is pending, which
 * the commit turns into one `store.rotate()`.
 */
export class SessionState {
  /** The live data: replaced by a new object when `regenerate()` starts the session over. */
  private data: SessionFields = Object.create(null);
  /** The Session object `req.session` gives now (see {@link proxy}). */
  private current: SessionObject;
  /** Turns the current Session object into a retired one, over the data it showed. */
  private retireCurrent: (snapshot: SessionFields) => void = () => undefined;
  private readonly originals = new Map<string, string | undefined>();
  private currentId: string | null;
  private storedId: string | null;
  /** The user the stored session belongs to: a write that names another one is a sign-in. */
  private storedUser: string | null;
  /** The client recorded with the stored session, carried over by a rotation. */
  private storedClient: SessionClient | null;
  private created: boolean;
  private createdAt: number;
  private lastSeenAt: number;
  private expiresAt: number;
  private saveRequested = false;
  private touchRequested = false;
  /** Store writes that succeeded in this request, counted: credentials that carry state follow them. */
  private writes = 0;
  /** The last commit failed: the response carries no cookie for a write the store refused. */
  private commitFailed = false;
  /** This request destroyed (or regenerated) the session the client held. */
  private destroyedHere = false;
  /** Commits run one after another: a `save()` still in flight when the request ends. */
  private committing: Promise<void> = Promise.resolve();
  /** Commits asked for and not settled yet. */
  private commitsInFlight = 0;
  /** What every store wait of this request draws from. */
  private readonly budget: StoreBudget;

  constructor(
    private readonly store: SessionStore,
    private readonly options: ResolvedSessionOptions,
    loaded: StoredSession | null,
    now: number,
    private readonly context: SessionContext = {},
  ) {
    this.currentId = loaded?.id ?? null;
    this.storedId = loaded?.id ?? null;
    this.storedUser = loaded?.userId ?? null;
    this.storedClient = loaded?.client ?? null;
    this.created = loaded === null;
    this.createdAt = loaded?.createdAt ?? now;
    this.lastSeenAt = loaded?.lastSeenAt ?? now;
    this.expiresAt = loaded?.expiresAt ?? 0;
    if (loaded) copyFields(this.data, loaded.data);
    this.budget = context.budget ?? new StoreBudget(store.kind, options.storeTimeout);
    this.current = this.createProxy();
  }

  /**
   * The Session object handed to application code as `req.session` / `@Session()`. After a
   * `regenerate()` this is a new object, as with express-session; the one held before keeps
   * showing the data it had (what Passport's `keepSessionInfo` copies over), while anything
   * written through it goes to the live session, so `await session.regenerate(); session.userId
   * = id` works through a `@Session()` parameter too.
   */
  get proxy(): SessionObject {
    return this.current;
  }

  /** The id the client holds after this request; a new session's id is made on first need. */
  get id(): string {
    this.currentId ??= generateSessionId();
    return this.currentId;
  }

  get isNew(): boolean {
    return this.created;
  }

  // ---- Session methods -------------------------------------------------------------------

  async regenerate(options: RegenerateOptions = {}): Promise<void> {
    if (options.keepData) return this.rotateId();
    const previous = this.data;
    this.data = Object.create(null);
    this.originals.clear();
    this.retireCurrent(previous);
    this.current = this.createProxy();
    await this.destroy();
  }

  async rotateId(): Promise<void> {
    // The old id stays in storedId until commit moves the data in one store.rotate().
    this.currentId = generateSessionId();
  }

  async destroy(): Promise<void> {
    const live = this.storedId;
    const user = this.storedUser;
    this.destroyedHere = true;
    this.forget();
    this.createdAt = Date.now();
    if (!live) return;
    await this.budget.spend('destroy', () => this.store.destroy(live));
    this.context.events?.emit('destroyed', live, user);
  }

  async reload(): Promise<void> {
    if (this.storedId === null) {
      this.clearData();
      return;
    }
    const storedId = this.storedId;
    const loaded = await this.budget.spend('get', () => this.store.get(storedId));
    this.clearData();
    if (!loaded) {
      // Destroyed elsewhere meanwhile: become a fresh session rather than resurrect it.
      this.forget();
      return;
    }
    copyFields(this.data, loaded.data);
    this.createdAt = loaded.createdAt;
    this.lastSeenAt = loaded.lastSeenAt;
    this.expiresAt = loaded.expiresAt;
  }

  async save(): Promise<void> {
    this.saveRequested = true;
    await this.commit();
  }

  async touch(): Promise<void> {
    this.touchRequested = true;
  }

  toJSON(): Record<string, unknown> {
    return copyJson(this.data);
  }

  // ---- Commit ------------------------------------------------------------------------------

  /**
   * Writes what this request changed, in one store round trip: create, rotate, a delta commit,
   * or a touch when one is due. Safe to call more than once (explicit `save()`, then the end of
   * the request): the second call writes only what changed since.
   */
  commit(now?: number): Promise<void> {
    this.commitsInFlight += 1;
    const run = this.committing.then(() => this.budget.spend('commit', () => this.commitNow(now ?? Date.now())));
    this.committing = run.then(
      () => this.commitSettled(false),
      () => this.commitSettled(true),
    );
    return run;
  }

  /**
   * True when {@link commit} would write to the store now, or a commit is still in flight. When
   * false, the response can leave at once: most reads change nothing and have no touch due.
   */
  hasPendingWrite(now = Date.now()): boolean {
    if (this.commitsInFlight > 0) return true;
    if (this.storedId === null) return this.saveRequested || this.options.saveUninitialized || this.changed();
    if (this.storedId !== this.currentId) return true;
    return this.touchRequested || this.changed() || this.touchDue(now, this.expiryFrom(now));
  }

  private async commitNow(now: number): Promise<void> {
    const { set, unset, current, added } = this.diff();
    // Both refusals come before any store call: nothing is written, the client keeps its session.
    if (this.growsPastFieldLimit(added)) throw new SessionTooManyFieldsError(Object.keys(this.data).length, MAX_SESSION_FIELDS);
    const changed = Object.keys(set).length > 0 || unset.length > 0;
    const expiresAt = this.expiryFrom(now);
    const user = this.userId();
    if (user !== this.storedUser) assertUserIdKeepable(user);
    /** The user this write signs the session in as, if it does. */
    const signingIn = user !== this.storedUser ? user : null;

    if (this.storedId === null) {
      if (!changed && !this.saveRequested && !this.options.saveUninitialized) return;
      const record = this.record(now, expiresAt);
      await this.admitted(signingIn, () => this.store.create(record));
      this.context.events?.emit('created', record.id, record.userId);
    } else if (this.storedId !== this.currentId) {
      const [previousId, record] = [this.storedId, this.record(now, expiresAt)];
      if (!(await this.admitted(signingIn, () => this.store.rotate(previousId, record)))) return this.lost();
      this.context.events?.rotated(previousId, record.id, record.userId);
    } else if (changed) {
      const change: SessionChange = { set, unset, expiresAt, lastSeenAt: now };
      if (this.originals.has(this.options.userKey.split('.')[0]) && user !== this.storedUser) {
        change.userId = user;
        change.client = this.clientFor(user);
      }
      const storedId = this.storedId;
      if (!(await this.admitted(signingIn, () => this.store.commit(storedId, change)))) return this.lost();
    } else if (this.touchRequested || this.touchDue(now, expiresAt)) {
      if (!(await this.store.touch(this.storedId, expiresAt, now))) return this.lost();
    } else {
      return;
    }
    if (user !== this.storedUser) this.storedClient = this.clientFor(user);
    this.storedId = this.id;
    this.storedUser = user;
    this.settle(now, expiresAt, current);
  }

  /**
   * Runs a sign-in's write under `maxSessionsPerUser`: with the user locked on every node, the
   * user's other sessions are counted, and beyond the limit the oldest are evicted (never this
   * one) or the sign-in is refused before anything is written.
   */
  private async admitted<T>(user: string | null, write: () => Promise<T>): Promise<T> {
    const max = this.options.maxSessionsPerUser;
    if (user === null || max === undefined) return write();
    return this.store.withUserLock(user, async () => {
      const mine = [this.storedId, this.currentId];
      const others = (await this.store.listByUser(user)).filter((session) => !mine.includes(session.id));
      const excess = others.length + 1 - max;
      if (excess > 0 && this.options.onMaxSessions === 'reject') throw new SessionLimitReachedError(max);
      // Listed oldest first, by creation.
      for (const session of others.slice(0, Math.max(0, excess))) {
        await this.store.destroy(session.id);
        this.context.events?.emit('revoked', session.id, user, 'evicted');
      }
      return write();
    });
  }

  /**
   * What the client's credential must become, asked once the session is committed: a new one
   * when the id changed (created, rotated), or after any write when the credential carries the
   * session's state (`renewOnWrite`: a sealed session, a JWT's `exp`, a cookie's Max-Age).
   *
   * A credential is cleared only when this request destroyed the session: an id that is merely
   * unknown may come from a request that raced a sign-in, and clearing it could delete the
   * cookie that sign-in just set.
   */
  credentialDecision(presentedId: string | null, renewOnWrite: boolean): CredentialDecision {
    if (this.commitFailed) return { action: 'none' };
    if (this.storedId !== null) {
      if (this.storedId === presentedId && !(renewOnWrite && this.writes > 0)) return { action: 'none' };
      return { action: 'set', subject: { id: this.storedId, userId: this.userId(), expiresAt: this.expiresAt } };
    }
    return this.destroyedHere && presentedId !== null ? { action: 'clear' } : { action: 'none' };
  }

  /** Where the session lives in the store now, and how many writes this request made. */
  get committed(): { id: string | null; writes: number } {
    return { id: this.storedId, writes: this.writes };
  }

  // ---- Internals ---------------------------------------------------------------------------

  private commitSettled(failed: boolean): void {
    this.commitsInFlight -= 1;
    this.commitFailed = failed;
  }

  /** Whether a touched field differs from what is stored; a field that is not JSON counts as changed, so the commit reports it. */
  private changed(): boolean {
    for (const [field, original] of this.originals) {
      const value = this.data[field];
      try {
        if ((value === undefined ? undefined : serialize(field, value)) !== original) return true;
      } catch {
        return true;
      }
    }
    return false;
  }

  /**
   * Changed and removed fields, the JSON of every touched field as it is now, and how many of the
   * set fields are new to the stored session.
   */
  private diff(): { set: SessionFields; unset: string[]; current: Map<string, string | undefined>; added: number } {
    const set: SessionFields = Object.create(null);
    const unset: string[] = [];
    const current = new Map<string, string | undefined>();
    let added = 0;
    for (const [field, original] of this.originals) {
      const value = this.data[field];
      const json = value === undefined ? undefined : serialize(field, value);
      current.set(field, json);
      if (json === original) continue;
      if (json === undefined) unset.push(field);
      else defineField(set, field, value);
      if (original === undefined && json !== undefined) added += 1;
    }
    return { set, unset, current, added };
  }

  /**
   * Whether this write adds fields to a session that would then hold more than
   * MAX_SESSION_FIELDS. Only a write that adds counts, so a session stored over the limit (by a
   * version without it) can still be read, changed, shrunk and rotated, just not grown. The keys
   * are counted only then, which most requests (no new field) never pay for.
   */
  private growsPastFieldLimit(added: number): boolean {
    return added > 0 && Object.keys(this.data).length > MAX_SESSION_FIELDS;
  }

  /** Fields are now as stored: future diffs start from `current`. */
  private settle(now: number, expiresAt: number, current: Map<string, string | undefined>): void {
    for (const [field, json] of current) this.originals.set(field, json);
    this.writes += 1;
    this.lastSeenAt = now;
    this.expiresAt = expiresAt;
    this.saveRequested = false;
    this.touchRequested = false;
  }

  /** The session was destroyed by another request meanwhile: it stays dead. */
  private lost(): void {
    this.forget();
  }

  /** Becomes a session that is not stored: a new one, with no data and no user. */
  private forget(): void {
    this.storedId = null;
    this.storedUser = null;
    this.storedClient = null;
    this.currentId = null;
    this.created = true;
    this.clearData();
  }

  /** The whole session, for a create or a rotation. */
  private record(now: number, expiresAt: number): StoredSession {
    const userId = this.userId();
    const client = userId === this.storedUser ? this.storedClient : this.clientFor(userId);
    return { id: this.id, data: this.data, createdAt: this.createdAt, lastSeenAt: now, expiresAt, userId, client };
  }

  /** The client to record for a session that now belongs to `user`: the requester's, if asked to. */
  private clientFor(user: string | null): SessionClient | null {
    return user !== null && this.options.recordClient ? (this.context.client ?? null) : null;
  }

  /** Sliding idle expiry, capped by the absolute deadline counted from creation. */
  private expiryFrom(now: number): number {
    const idle = now + this.options.idleTimeout;
    const { absoluteTimeout } = this.options;
    return absoluteTimeout === false ? idle : Math.min(idle, this.createdAt + absoluteTimeout);
  }

  private touchDue(now: number, expiresAt: number): boolean {
    return now - this.lastSeenAt >= this.options.touchAfter && expiresAt > this.expiresAt;
  }

  /** The user for the per-user index: a string or number id; anything else indexes nothing. */
  private userId(): string | null {
    const value = readUserKey(this.data, this.options.userKey);
    if (typeof value === 'string') return value === '' ? null : value;
    return typeof value === 'number' && Number.isFinite(value) ? String(value) : null;
  }

  /** Empties the data and makes "empty" the baseline that later changes are measured from. */
  private clearData(): void {
    for (const key of Object.keys(this.data)) delete this.data[key];
    this.originals.clear();
  }

  private remember(field: string): void {
    if (this.originals.has(field)) return;
    const value = this.data[field];
    this.originals.set(field, value === undefined ? undefined : serialize(field, value));
  }

  /**
   * A Session object over the live data. Once retired (by `regenerate()`), it shows its
   * `snapshot` for fields the live session has not written since, and writes go to the live one.
   */
  private createProxy(): SessionObject {
    // The traps below are the Proxy handler's methods: `this` there is the handler, not the state.
    // oxlint-disable-next-line typescript/no-this-alias
    const state = this;
    let snapshot: SessionFields | undefined;
    this.retireCurrent = (data) => {
      snapshot = data;
    };
    // A store failure inside a method the handler awaits surfaces as a 503, like a failed load.
    const method =
      <A>(run: (arg?: A) => Promise<void>, takesOptions = false) =>
      () =>
        withCallback((arg?: A) => run(arg).catch((error: unknown) => Promise.reject(toHttpException(error))), takesOptions);
    // Built on first use: most requests only read and write data fields.
    let members: Record<string, () => unknown> | undefined;
    const buildMembers = (): Record<string, () => unknown> => ({
      id: () => state.id,
      isNew: () => state.isNew,
      regenerate: method((options?: RegenerateOptions) => state.regenerate(options), true),
      rotateId: method(() => state.rotateId()),
      destroy: method(() => state.destroy()),
      reload: method(() => state.reload()),
      save: method(() => state.save()),
      touch: method(() => state.touch()),
      // What this object shows: for a retired one, its snapshot under what was written since.
      toJSON: () => () => (snapshot ? copyJson({ ...Object.fromEntries(Object.entries(snapshot)), ...state.toJSON() }) : state.toJSON()),
    });
    const writable = (key: string | symbol): string => {
      if (typeof key === 'symbol' || RESERVED_FIELDS.has(key)) throw new SessionReservedFieldError(String(key));
      state.remember(key);
      return key;
    };
    /** Where a field is read from: the live data, or a retired object's snapshot of it. */
    const source = (key: string): SessionFields => (snapshot && !Object.hasOwn(state.data, key) ? snapshot : state.data);
    const read = (key: string): unknown => {
      const from = source(key);
      if (from === state.data) state.remember(key);
      return from[key];
    };
    // The target only anchors the proxy: every trap works on `state.data` (or the snapshot),
    // which regenerate() replaces. It stays extensible and empty, so the proxy invariants hold
    // for the configurable fields reported from elsewhere.
    return new Proxy(Object.create(null) as SessionFields, {
      get(_target, key) {
        if (typeof key === 'symbol') return undefined;
        if (MEMBER_NAMES.has(key)) return (members ??= buildMembers())[key]();
        if (RESERVED_FIELDS.has(key)) return undefined;
        return read(key);
      },
      set(_target, key, value) {
        const field = writable(key);
        if (value === undefined) delete state.data[field];
        else defineField(state.data, field, value);
        return true;
      },
      deleteProperty(_target, key) {
        delete state.data[writable(key)];
        return true;
      },
      defineProperty(_target, key, descriptor) {
        const field = writable(key);
        return Reflect.defineProperty(state.data, field, { ...descriptor, enumerable: true, configurable: true });
      },
      getOwnPropertyDescriptor(_target, key) {
        if (typeof key !== 'string') return undefined;
        const value = read(key);
        if (!Object.hasOwn(source(key), key)) return undefined;
        return { value, writable: true, enumerable: true, configurable: true };
      },
      ownKeys() {
        return [...new Set([...Object.keys(snapshot ?? {}), ...Object.keys(state.data)])];
      },
      has(_target, key) {
        if (typeof key !== 'string') return false;
        return MEMBER_NAMES.has(key) || Object.hasOwn(state.data, key) || (snapshot !== undefined && Object.hasOwn(snapshot, key));
      },
      setPrototypeOf() {
        throw new SessionReservedFieldError('__proto__');
      },
    }) as unknown as SessionObject;
  }
}

/**
 * Gives a method both calling styles: it returns a Promise, and if the last argument is a
 * function it is called Node-style (and the Promise then never rejects, so no unhandled
 * rejection follows a callback that already got the error).
 */
function withCallback<A>(method: (arg?: A) => Promise<void>, takesOptions = false) {
  return (...args: unknown[]): Promise<void> => {
    const last = args[args.length - 1];
    const callback = typeof last === 'function' ? (last as SessionCallback) : undefined;
    const arg = takesOptions && typeof args[0] === 'object' && args[0] !== null ? (args[0] as A) : undefined;
    const result = Promise.resolve().then(() => method(arg));
    if (!callback) return result;
    // Callers that pass a callback (Passport) do not await the Promise, so an error thrown by
    // the callback itself is logged here instead of becoming an unhandled rejection.
    return result
      .then(
        () => callback(),
        (err: unknown) => callback(err),
      )
      .catch((err: unknown) => logger.error(`A session method's callback threw: ${String(err)}`));
  };
}
