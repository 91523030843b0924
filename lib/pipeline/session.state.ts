import { MAX_SESSION_FIELDS } from '../session.constants.js';
import { ChangeTracker } from './session.changes.js';
import { expiryFrom, plannedWrite, shouldTouch } from './session.decisions.js';
import type { CommittedSession, PlannedWrite, WriteFacts } from './session.decisions.js';
import { SessionTooManyFieldsError } from '../session.errors.js';
import type { SessionEvents } from '../session.events.js';
import { copyJson, createSessionObject } from './session.object.js';
import type { RegenerateOptions, SessionObject, SessionObjectHost } from './session.object.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { admitSignIn, userIdOf } from './session.users.js';
import { generateSessionId } from '../crypto/index.js';
import { defineField } from '../stores/index.js';
import { StoreBudget } from '../stores/bounded-store.js';
import { assertUserIdKeepable } from '../stores/session-store.js';
import type { SessionChange, SessionClient, SessionFields, SessionStore, StoredSession } from '../stores/session-store.js';

export type { RegenerateOptions, SessionCallback, SessionData, SessionMethods, SessionObject } from './session.object.js';

/**
 * A session as the request pipeline found it: the id its credential named, and what the store
 * keeps under that id's key (`stored.id` is `store.keyOf(id)`: stores never see the id itself).
 */
export interface LoadedSession {
  id: string;
  stored: StoredSession;
}

/** What a request's session knows beyond the store: where to report events, who the client is. */
export interface SessionContext {
  events?: SessionEvents;
  /** The request's store time, part of it perhaps spent on the load. Default: all of `storeTimeout`. */
  budget?: StoreBudget;
  /** The requesting client, recorded on sign-in when `recordClient` is on. */
  client?: SessionClient;
}

/** Copies JSON-shaped data into a null-prototype object, so no key can reach a prototype. */
const copyFields = (target: SessionFields, source: SessionFields): void => {
  for (const key of Object.keys(source)) defineField(target, key, source[key]);
};

/**
 * One request's view of one session, and the only place that writes it: the Session methods,
 * and the commit, which makes the write that {@link plannedWrite} decides on (the change
 * tracking lives in {@link ChangeTracker}, the Session object in session.object.ts).
 *
 * Identity: `storedId` is the id of the session as stored now (null: not stored) and `id` the
 * id it will have after commit. They differ only while an id rotation is pending, which the
 * commit turns into one `store.rotate()`. The store knows each by its key
 * (`store.keyOf(id)`, the hashed id): `storedKey`, and the key the commit writes.
 */
export class SessionState implements SessionObjectHost {
  /** The live data: replaced by a new object when `regenerate()` starts the session over. */
  private liveData: SessionFields = Object.create(null);
  private readonly changes = new ChangeTracker();
  /** The Session object `req.session` gives now (see {@link proxy}), and how to retire it. */
  private current: ReturnType<typeof createSessionObject>;
  private currentId: string | null;
  private storedId: string | null;
  /** `store.keyOf(storedId)`, worked out once. */
  private storedKey: string | null;
  /** The last key worked out for a new id (a session being created, or rotated to): hashed once. */
  private newKey: { id: string; key: string } | null = null;
  /** The user the stored session belongs to: a write that names another one is a sign-in. */
  private storedUser: string | null;
  /** The client recorded with the stored session, carried over by a rotation. */
  private storedClient: SessionClient | null;
  private created: boolean;
  private createdAt: number;
  private lastSeenAt: number;
  private expiresAt: number;
  private saveRequested = false;
  /** What the store holds was sealed under an older encryption key: the next commit writes it all back. */
  private resealDue: boolean;
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
    found: LoadedSession | null,
    now: number,
    private readonly context: SessionContext = {},
  ) {
    const loaded = found?.stored;
    this.currentId = found?.id ?? null;
    this.storedId = found?.id ?? null;
    this.storedKey = loaded?.id ?? null;
    this.storedUser = loaded?.userId ?? null;
    this.storedClient = loaded?.client ?? null;
    this.created = loaded === undefined;
    this.createdAt = loaded?.createdAt ?? now;
    this.lastSeenAt = loaded?.lastSeenAt ?? now;
    this.expiresAt = loaded?.expiresAt ?? 0;
    this.resealDue = loaded?.reseal === true;
    if (loaded) copyFields(this.liveData, loaded.data);
    this.budget = context.budget ?? new StoreBudget(store.kind, options.storeTimeout);
    this.current = createSessionObject(this);
  }

  /**
   * The Session object handed to application code as `req.session` / `@Session()`. After a
   * `regenerate()` this is a new object, as with express-session; the one held before keeps
   * showing the data it had (what Passport's `keepSessionInfo` copies over), while anything
   * written through it goes to the live session.
   */
  get proxy(): SessionObject {
    return this.current.object;
  }

  get data(): SessionFields {
    return this.liveData;
  }

  /** The id the client holds after this request; a new session's id is made on first need. */
  get id(): string {
    this.currentId ??= generateSessionId();
    return this.currentId;
  }

  /** The key of {@link id} in the store (the one it has after commit): how logs and events name this session. */
  get key(): string {
    const id = this.id;
    if (id === this.storedId && this.storedKey !== null) return this.storedKey;
    if (this.newKey?.id !== id) this.newKey = { id, key: this.store.keyOf(id) };
    return this.newKey.key;
  }

  get isNew(): boolean {
    return this.created;
  }

  remember(field: string): void {
    this.changes.remember(this.liveData, field);
  }

  /**
   * Starts this new session with data it takes over from elsewhere (an express-session session,
   * see the `legacy` option), as its stored baseline-to-be: the next commit creates it with them.
   */
  adopt(fields: SessionFields): void {
    copyFields(this.liveData, fields);
  }

  // ---- Session methods -------------------------------------------------------------------

  async regenerate(options: RegenerateOptions = {}): Promise<void> {
    if (options.keepData) return this.rotateId();
    const previous = this.liveData;
    this.liveData = Object.create(null);
    this.changes.reset();
    this.current.retire(previous);
    this.current = createSessionObject(this);
    await this.destroy();
  }

  async rotateId(): Promise<void> {
    // The old id stays in storedId until commit moves the data in one store.rotate().
    this.currentId = generateSessionId();
  }

  async destroy(): Promise<void> {
    const live = this.storedKey;
    const user = this.storedUser;
    this.destroyedHere = true;
    this.forget();
    this.createdAt = Date.now();
    if (!live) return;
    await this.budget.spend('destroy', () => this.store.destroy(live));
    this.context.events?.emit('destroyed', live, user);
  }

  async reload(): Promise<void> {
    if (this.storedKey === null) {
      this.clearData();
      return;
    }
    const storedKey = this.storedKey;
    const loaded = await this.budget.spend('get', () => this.store.get(storedKey));
    this.clearData();
    if (!loaded) {
      // Destroyed elsewhere meanwhile: become a fresh session rather than resurrect it.
      this.forget();
      return;
    }
    copyFields(this.liveData, loaded.data);
    this.resealDue ||= loaded.reseal === true;
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
    return copyJson(this.liveData);
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
    return this.commitsInFlight > 0 || this.planned(now, () => this.resealDue || this.changes.changed(this.liveData)) !== 'none';
  }

  /** The session as this request's commits left it: what the credential decision reads. */
  get committed(): CommittedSession {
    const { storedId: id, writes, commitFailed: failed, destroyedHere, expiresAt } = this;
    return { id, writes, failed, destroyedHere, userId: this.userId(), expiresAt };
  }

  /** The write {@link plannedWrite} decides on, from this request's facts. */
  private planned(now: number, changed: () => boolean): PlannedWrite {
    const stored = this.storedId !== null;
    const facts = new LazyWriteFacts(stored, stored && this.storedId !== this.currentId, this.saveRequested, this.touchRequested, changed, () =>
      this.touchIsDue(now),
    );
    return plannedWrite(facts, this.options.saveUninitialized);
  }

  private async commitNow(now: number): Promise<void> {
    const { set, unset, current, added } = this.changes.diff(this.liveData);
    // Both refusals come before any store call: nothing is written, the client keeps its session.
    if (added > 0 && this.growsPastFieldLimit()) throw new SessionTooManyFieldsError(Object.keys(this.liveData).length, MAX_SESSION_FIELDS);
    const user = this.userId();
    if (user !== this.storedUser) assertUserIdKeepable(user);
    const write = this.planned(now, () => this.resealDue || Object.keys(set).length > 0 || unset.length > 0);
    if (write === 'none') return;

    const expiresAt = expiryFrom(now, this.createdAt, this.options);
    /** The sign-in this write makes, if it makes one: `maxSessionsPerUser` admits it first. */
    const signIn = <T>(run: () => Promise<T>): Promise<T> =>
      admitSignIn(this.store, this.options, this.context.events, {
        user: user !== this.storedUser ? user : null,
        own: [this.storedKey, this.key],
        write: run,
      });
    const storedKey = this.storedKey as string;
    let key = storedKey;
    if (write === 'create') {
      const record = this.record(now, expiresAt);
      await signIn(() => this.store.create(record));
      key = record.id;
      this.context.events?.emit('created', record.id, record.userId);
    } else if (write === 'rotate') {
      const record = this.record(now, expiresAt);
      if (!(await signIn(() => this.store.rotate(storedKey, record)))) return this.forget();
      key = record.id;
      this.context.events?.moved('rotated', storedKey, record.id, record.userId);
    } else if (write === 'commit') {
      const change: SessionChange = { set, unset, expiresAt, lastSeenAt: now };
      if (this.changes.touched(this.options.userKey.split('.')[0]) && user !== this.storedUser) {
        change.userId = user;
        change.client = this.clientFor(user);
      } else if (this.resealDue) {
        this.resealAll(change, user);
      }
      if (!(await signIn(() => this.store.commit(storedKey, change)))) return this.forget();
    } else if (!(await this.store.touch(storedKey, expiresAt, now))) {
      return this.forget();
    }
    if (user !== this.storedUser) this.storedClient = this.clientFor(user);
    this.storedId = this.id;
    this.storedKey = key;
    this.storedUser = user;
    this.settle(now, expiresAt, current);
  }

  // ---- Internals ---------------------------------------------------------------------------

  /**
   * Makes `change` write back every field, the user and the client record as they are: the
   * store's sealed-at-rest view seals them anew under the first encryption key, and moves the
   * user's index entry to that key's token.
   */
  private resealAll(change: SessionChange, user: string | null): void {
    for (const field of Object.keys(this.liveData)) {
      if (!(field in change.set) && !change.unset.includes(field)) defineField(change.set, field, this.liveData[field]);
    }
    change.userId = user;
    if (this.storedClient) change.client = this.storedClient;
  }

  private commitSettled(failed: boolean): void {
    this.commitsInFlight -= 1;
    this.commitFailed = failed;
  }

  /** Whether the expiry is due to be extended at `now` (see {@link shouldTouch}). */
  private touchIsDue(now: number): boolean {
    return shouldTouch(now, this.lastSeenAt, this.options.touchAfter, expiryFrom(now, this.createdAt, this.options), this.expiresAt);
  }

  /**
   * Whether the session would then hold more than MAX_SESSION_FIELDS. Asked only of a write that
   * adds fields, so a session stored over the limit (by a version without it) can still be read,
   * changed, shrunk and rotated, just not grown; the keys are counted only then, which most
   * requests (no new field) never pay for.
   */
  private growsPastFieldLimit(): boolean {
    return Object.keys(this.liveData).length > MAX_SESSION_FIELDS;
  }

  /** Fields are now as stored: future diffs start from `current`. */
  private settle(now: number, expiresAt: number, current: Map<string, string | undefined>): void {
    this.changes.settle(current);
    this.writes += 1;
    this.lastSeenAt = now;
    this.expiresAt = expiresAt;
    this.saveRequested = false;
    this.touchRequested = false;
    this.resealDue = false;
  }

  /**
   * Becomes a session that is not stored: a new one, with no data and no user. What a request
   * becomes when it destroys its session, and when another request destroyed it meanwhile (a
   * commit, rotation or touch found it gone): it stays dead.
   */
  private forget(): void {
    this.storedId = null;
    this.storedKey = null;
    this.storedUser = null;
    this.storedClient = null;
    this.currentId = null;
    this.resealDue = false;
    this.created = true;
    this.clearData();
  }

  /** The whole session, for a create or a rotation: stored under the key of the id it has after commit. */
  private record(now: number, expiresAt: number): StoredSession {
    const userId = this.userId();
    const client = userId === this.storedUser ? this.storedClient : this.clientFor(userId);
    return { id: this.key, data: this.liveData, createdAt: this.createdAt, lastSeenAt: now, expiresAt, userId, client };
  }

  /** The client to record for a session that now belongs to `user`: the requester's, if asked to. */
  private clientFor(user: string | null): SessionClient | null {
    return user !== null && this.options.recordClient ? (this.context.client ?? null) : null;
  }

  private userId(): string | null {
    return userIdOf(this.liveData, this.options.userKey);
  }

  /** Empties the data and makes "empty" the baseline that later changes are measured from. */
  private clearData(): void {
    for (const key of Object.keys(this.liveData)) delete this.liveData[key];
    this.changes.reset();
  }
}

/**
 * A request's {@link WriteFacts}, the ones that cost work (serializing the touched fields, the new
 * expiry) worked out only when the decision asks for them: hasPendingWrite asks on every
 * response. Getters on a class, not on an object literal, which V8 builds far more slowly.
 */
class LazyWriteFacts implements WriteFacts {
  constructor(
    readonly stored: boolean,
    readonly rotating: boolean,
    readonly saveRequested: boolean,
    readonly touchRequested: boolean,
    private readonly isChanged: () => boolean,
    private readonly isTouchDue: () => boolean,
  ) {}

  get changed(): boolean {
    return this.isChanged();
  }

  get touchDue(): boolean {
    return this.isTouchDue();
  }
}
