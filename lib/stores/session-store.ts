/**
 * The one contract every store keeps (SPEC §3). The request pipeline talks to stores only through
 * this class, and `SessionStore` is also the injection token of the store in use.
 *
 * Design: the pipeline knows what changed, so a store never reads before it writes. A request
 * that changes fields sends only a {@link SessionChange} (set these fields, drop those, new
 * expiry), which a store applies in one round trip and only if the session still exists: that is
 * what keeps concurrent writers to different fields from losing each other's work, and a write
 * racing a logout from bringing the session back.
 */

import { Logger } from '@nestjs/common';
import type { LoggerService } from '@nestjs/common';
import { SessionStoreUnsupportedError, SessionUserIdInvalidError } from '../session.errors.js';

/** Field values are JSON: every store keeps them as JSON, so all stores round-trip alike. */
export type SessionFieldValue = unknown;

/** A session's data: one entry per top-level field. */
export type SessionFields = Record<string, SessionFieldValue>;

/** A whole session as a store keeps it. Times are milliseconds since the epoch. */
export interface StoredSession {
  id: string;
  data: SessionFields;
  createdAt: number;
  /** When the session was last written or touched. */
  lastSeenAt: number;
  /** When the store must stop returning it: the earlier of the idle and absolute deadlines. */
  expiresAt: number;
  /** The signed-in user (`data[userKey]` as a string), kept in a per-user index; null if none. */
  userId: string | null;
  /**
   * The client that signed the session in, when the application opted in (`recordClient`);
   * null or absent otherwise. Stores keep it beside the data, never in it.
   */
  client?: SessionClient | null;
}

/** What is recorded about the client that signed a session in (opt-in: `recordClient`). */
export interface SessionClient {
  userAgent?: string;
  ip?: string;
}

/** What one request changed: applied atomically, only to a session that still exists. */
export interface SessionChange {
  /** Top-level fields to write, with their new values. */
  set: SessionFields;
  /** Top-level fields to remove. */
  unset: string[];
  expiresAt: number;
  lastSeenAt: number;
  /** New owner for the per-user index: a user id, `null` to clear, `undefined` to keep. */
  userId?: string | null;
  /** New client record: an object to set, `null` to clear, `undefined` to keep. */
  client?: SessionClient | null;
}

/** A live session of a user, as listed from the per-user index. */
export interface SessionSummary {
  id: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  /** The recorded client, when there is one. */
  client?: SessionClient | null;
}

/** A session the store itself found expired (a sweeper, a TTL), as reported to listeners. */
export interface ExpiredSession {
  id: string;
  /** Its signed-in user when it expired, or null. */
  userId: string | null;
}

/** Receives the expiries a store reports. */
export type ExpiryListener = (expired: ExpiredSession) => void;

/**
 * A NUL, or a UTF-16 surrogate without its other half: what no store can keep exactly in every
 * place a user id goes (and what PostgreSQL text cannot hold at all).
 */
// oxlint-disable-next-line no-control-regex -- matching U+0000 is the point
export const UNKEEPABLE_CHARACTER = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Refuses, with {@link SessionUserIdInvalidError} (a 400), a user id that some store could not
 * keep exactly (SPEC §3.12): one holding an unpaired UTF-16 surrogate or a NUL. Other values
 * (well-formed strings of any characters, `{}` and `:` included; non-strings) pass.
 *
 * Why refuse rather than encode: a user id goes into Redis keys, sorted-set members and Lua
 * comparisons, a SHA-256 for the file store's directory and lock names, a PostgreSQL text column
 * and advisory-lock key, and all of them see it as UTF-8. A JS string with an unpaired surrogate
 * has no UTF-8 form, so drivers write U+FFFD in its place and `"q\udfff"` becomes `"q\uFFFD"`: two
 * users, one index. PostgreSQL text cannot hold a NUL either. A lossless encoding would be needed
 * in each of those places alike, and user ids in index keys are due to become a keyed hash
 * anyway, while such a string is never a real user id (only malformed input is). One check, the
 * same for every store, keeps every store exact: UTF-8 is one-to-one on what it lets through.
 *
 * The request pipeline and `SessionService` call it before a user id reaches a store; every
 * built-in store calls it in its user-keyed methods too, and so may a custom store.
 *
 * @example
 * ```ts
 * async listByUser(userId: string): Promise<SessionSummary[]> {
 *   assertUserIdKeepable(userId);
 *   return this.db.sessionsOf(userId);
 * }
 * ```
 */
export function assertUserIdKeepable(userId: unknown): void {
  if (typeof userId !== 'string') return;
  const found = UNKEEPABLE_CHARACTER.exec(userId);
  if (!found) return;
  const problem =
    found[0] === '\u0000' ? 'a NUL character (U+0000)' : `an unpaired UTF-16 surrogate (U+${found[0].charCodeAt(0).toString(16).toUpperCase()})`;
  throw new SessionUserIdInvalidError(problem, found.index);
}

/**
 * Base class of every store, and the DI token of the store in use.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class AuditedService {
 *   constructor(private readonly store: SessionStore) {}
 * }
 * ```
 */
export abstract class SessionStore {
  /** A short name for messages and health reports: `memory`, `redis`… */
  abstract readonly kind: string;

  /** Where the store's warnings go: the module's `logger` option once the module sets it. */
  protected logger: LoggerService = new Logger('SessionModule');

  private readonly expiryListeners = new Set<ExpiryListener>();
  /** Per-user queues of {@link withUserLock} within this process. */
  private readonly userQueues = new Map<string, Promise<unknown>>();

  /** The live session with this id, or null (unknown, destroyed, expired or unreadable). */
  abstract get(id: string): Promise<StoredSession | null>;

  /** Stores a new session under a fresh id. */
  abstract create(session: StoredSession): Promise<void>;

  /**
   * Applies a change in one atomic step, only if the session still exists and has not expired.
   * @returns false, writing nothing, when the session is gone: a destroyed session stays dead.
   */
  abstract commit(id: string, change: SessionChange): Promise<boolean>;

  /**
   * Moves a session to a new id (fixation protection on sign-in): afterwards `oldId` is dead and
   * `next` lives under `next.id`. Stores do this without a cross-slot rename.
   * @returns false, writing nothing, when `oldId` is already gone (destroyed by another request).
   */
  abstract rotate(oldId: string, next: StoredSession): Promise<boolean>;

  /** Removes a session. Idempotent. */
  abstract destroy(id: string): Promise<void>;

  /** The live sessions of one user, from the per-user index. */
  abstract listByUser(userId: string): Promise<SessionSummary[]>;

  /**
   * Destroys every session of one user, except `exceptId` if given.
   * @returns the ids of the live sessions it destroyed (so each can be reported as revoked).
   */
  abstract destroyByUser(userId: string, exceptId?: string): Promise<string[]>;

  /**
   * Extends the expiry of an unmodified session. Stores may override this with something
   * cheaper; the default is an empty commit, which keeps the same "only if it exists" rule.
   */
  touch(id: string, expiresAt: number, lastSeenAt: number): Promise<boolean> {
    return this.commit(id, { set: {}, unset: [], expiresAt, lastSeenAt });
  }

  /** Resolves when the store answers; rejects otherwise. Used by health checks. */
  ping(): Promise<void> {
    return Promise.resolve();
  }

  /** Sends the store's warnings to `logger` (the module's `logger` option). */
  useLogger(logger: LoggerService): void {
    this.logger = logger;
  }

  /**
   * Runs `critical` while no other `withUserLock` for the same user runs: what keeps
   * `maxSessionsPerUser` exact when one user signs in on several nodes at once.
   *
   * The default serializes callers within this process only, which is enough for a store that
   * lives in one process. A store shared by several nodes overrides it with a lock all of them
   * see (a Redis key, a PostgreSQL advisory lock, a lock file), calling this one first: a user
   * id {@link assertUserIdKeepable} refuses rejects here, before any lock is taken.
   */
  async withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    assertUserIdKeepable(userId);
    const previous = this.userQueues.get(userId) ?? Promise.resolve();
    const run = previous.then(critical, critical);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.userQueues.set(userId, settled);
    void settled.then(() => {
      if (this.userQueues.get(userId) === settled) this.userQueues.delete(userId);
    });
    return run;
  }

  /**
   * Whether {@link watchExpiry} listeners hear of expiries from this store as it is configured.
   * False for a store that cannot see them (the cookie store) or is not set up to (the Redis
   * store without `expiryEvents`): its listeners are never called, so an optional listener (the
   * module's metrics) asks first. A custom store that cannot report expiries says false here,
   * and the conformance suite holds it to that.
   */
  get reportsExpiries(): boolean {
    return true;
  }

  /**
   * A view of the store for one request, or undefined (the default) when every request uses the
   * store itself. A store that keeps per-client state for the length of a request (the cookie
   * store holds the sealed session the request presented) returns a new view here; the pipeline
   * asks at the start of every request. Undefined rather than `this`, so that a wrapper around
   * the store (the module's metrics, its store bounds) is not bypassed by a `this` that names
   * the store inside it.
   */
  forRequest(): SessionStore | undefined {
    return undefined;
  }

  /**
   * True for a store whose sessions travel inside the credential itself (the cookie store): the
   * pipeline then hands out what {@link issueCredential} makes, on the request's view, instead of
   * a signed id or a JWT naming a server-side session. Such a store overrides the two methods
   * below as well.
   */
  get sealsSessions(): boolean {
    return false;
  }

  /** The longest credential {@link issueCredential} makes (a store that seals sessions only). */
  get maxCredentialLength(): number {
    return 0;
  }

  /**
   * Opens a credential that carries a session (a store that seals sessions only): its id, and
   * `stale` when a secret other than the first made it; null when it does not open.
   */
  openCredential(_credential: string): Promise<{ id: string; stale: boolean } | null> {
    return Promise.reject(new SessionStoreUnsupportedError(this.kind, 'open a credential: it keeps sessions on the server'));
  }

  /** The credential that carries session `id` as this request left it (a store that seals sessions only). */
  issueCredential(_id: string): Promise<string> {
    return Promise.reject(new SessionStoreUnsupportedError(this.kind, 'issue a credential: it keeps sessions on the server'));
  }

  /**
   * Calls `listener` for every session this store finds expired, once per expiry across all
   * nodes that share the store (the node that reclaims it reports it). Stores that cannot see
   * expiries never call it. The first listener starts the store's watch
   * ({@link startExpiryWatch}); the returned function removes the listener.
   */
  watchExpiry(listener: ExpiryListener): () => void {
    this.expiryListeners.add(listener);
    if (this.expiryListeners.size === 1) {
      Promise.resolve()
        .then(() => this.startExpiryWatch())
        .catch((error: unknown) => this.logger.warn(`Could not watch ${this.kind} session expiry: ${String(error)}`));
    }
    return () => {
      this.expiryListeners.delete(listener);
    };
  }

  /**
   * Starts whatever makes expiries visible (a subscription, say). Sweeper-based stores need
   * nothing: their sweeper reports through {@link reportExpired} anyway.
   */
  protected startExpiryWatch(): void | Promise<void> {
    return undefined;
  }

  /** True while somebody listens: a store may skip work that only feeds listeners. */
  protected get watchingExpiry(): boolean {
    return this.expiryListeners.size > 0;
  }

  /** Hands one expiry to every listener; a listener that throws is logged, never rethrown. */
  protected reportExpired(expired: ExpiredSession): void {
    for (const listener of this.expiryListeners) {
      try {
        listener(expired);
      } catch (error) {
        this.logger.error(`A session expiry listener threw: ${String(error)}`);
      }
    }
  }
}
