/**
 * The one contract every store keeps (SPEC §3). The request pipeline talks to stores only through
 * this class, and `SessionStore` is also the injection token of the store in use.
 *
 * Keys: a store never sees a session id, the credential itself. It sees the session's key,
 * {@link SessionStore.keyOf} the id (a SHA-256 of it, `hashSessionId()`), in every argument and
 * result named `id` here: whoever reads a store (a backup, a replica, `MONITOR`, a read-only SQL
 * role) finds nothing to sign in with (SPEC §3.11; Rack's fix for CVE-2019-16782). A key has the
 * shape of an id (43 base64url characters), so a store checks both alike.
 *
 * Design: the pipeline knows what changed, so a store never reads before it writes. A request
 * that changes fields sends only a {@link SessionChange} (set these fields, drop those, new
 * expiry), which a store applies in one round trip and only if the session still exists: that is
 * what keeps concurrent writers to different fields from losing each other's work, and a write
 * racing a logout from bringing the session back.
 */

import { Logger } from '@nestjs/common';
import type { LoggerService } from '@nestjs/common';
import { hashSessionId } from '../crypto/session-id.js';
import { SessionStoreUnsupportedError } from '../session.errors.js';
import type { PostgresPool, RedisClient } from './driver-types.js';
import { assertUserIdKeepable } from './user-id.js';

// The rule every store keeps for user ids, with the contract it belongs to.
export { assertUserIdKeepable, UNKEEPABLE_CHARACTER } from './user-id.js';

/** Field values are JSON: every store keeps them as JSON, so all stores round-trip alike. */
export type SessionFieldValue = unknown;

/** A session's data: one entry per top-level field. */
export type SessionFields = Record<string, SessionFieldValue>;

/** A whole session as a store keeps it. Times are milliseconds since the epoch. */
export interface StoredSession {
  /** The session's key: {@link SessionStore.keyOf} its id. */
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
  /**
   * Set on a session read back when what it holds was sealed under an encryption key other than
   * the first (`encryptionKeys`): the request that read it writes it all back, under the first.
   * Stores never set it.
   */
  reseal?: boolean;
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

/** A store's driver connection, as {@link SessionStore.connection} shares it. */
export type StoreConnection = { type: 'redis'; client: RedisClient } | { type: 'postgres'; pool: PostgresPool };

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

  /**
   * The key a session with this id is kept under, and known by in listings, events and logs: the
   * hashed id (`hashSessionId()`). One way, so the key opens nothing.
   *
   * Only a store whose sessions never rest on a server overrides it (the cookie store, whose ids
   * exist only inside their seals, keys them by the id itself).
   */
  keyOf(id: string): string {
    return hashSessionId(id);
  }

  /** The live session with this key, or null (unknown, destroyed, expired or unreadable). */
  abstract get(id: string): Promise<StoredSession | null>;

  /** Stores a new session under a fresh key. */
  abstract create(session: StoredSession): Promise<void>;

  /**
   * Applies a change in one atomic step, only if the session still exists and has not expired.
   * @returns false, writing nothing, when the session is gone: a destroyed session stays dead.
   */
  abstract commit(id: string, change: SessionChange): Promise<boolean>;

  /**
   * Moves a session to a new key (fixation protection on sign-in: its id changed): afterwards
   * `oldId` is dead and `next` lives under `next.id`. Stores do this without a cross-slot rename.
   * @returns false, writing nothing, when `oldId` is already gone (destroyed by another request).
   */
  abstract rotate(oldId: string, next: StoredSession): Promise<boolean>;

  /** Removes a session. Idempotent. */
  abstract destroy(id: string): Promise<void>;

  /** The live sessions of one user, from the per-user index. */
  abstract listByUser(userId: string): Promise<SessionSummary[]>;

  /**
   * Destroys every session of one user, except the one with key `exceptId` if given.
   * @returns the keys of the live sessions it destroyed (so each can be reported as revoked).
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
   * Callers in this process queue per user, and the one at the head runs `critical` through
   * {@link lockUserAcrossNodes}, the lock other nodes see: so one caller per process at a time
   * asks for it, and a user id {@link assertUserIdKeepable} refuses rejects before any lock is
   * taken. A store shared by several nodes overrides that hook rather than this method.
   */
  async withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    assertUserIdKeepable(userId);
    const locked = (): Promise<T> => this.lockUserAcrossNodes(userId, critical);
    const previous = this.userQueues.get(userId) ?? Promise.resolve();
    const run = previous.then(locked, locked);
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
   * The part of {@link withUserLock} that other nodes see: runs `critical` holding a lock on
   * `userId` that every node sharing the store respects (the built-in stores use a Redis key, a
   * PostgreSQL advisory lock, a lock file), released once `critical` settles. `withUserLock`
   * calls it for one caller of this process at a time, so it never waits on this process itself.
   *
   * The default runs `critical` as it is: enough for a store that lives in one process. A custom
   * store shared by several nodes overrides this hook. One that overrides `withUserLock` instead
   * keeps working as before: its override runs, and this hook runs only if it calls
   * `super.withUserLock`.
   *
   * @example
   * ```ts
   * protected override lockUserAcrossNodes<T>(userId: string, critical: () => Promise<T>): Promise<T> {
   *   return this.db.withAdvisoryLock(`sign-in:${userId}`, critical);
   * }
   * ```
   */
  protected lockUserAcrossNodes<T>(_userId: string, critical: () => Promise<T>): Promise<T> {
    return critical();
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
   * The driver connection the store works on, shared with the parts of the module that read
   * another library's data on the same server (the `legacy` option reads express-session's
   * sessions through it): the Redis store's ioredis client, the PostgreSQL store's pool.
   * Undefined (the default) for a store with nothing to share; the store keeps it open and closes it.
   */
  get connection(): StoreConnection | undefined {
    return undefined;
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
