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
}

/** A live session of a user, as listed from the per-user index. */
export interface SessionSummary {
  id: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
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
   * @returns how many sessions were destroyed.
   */
  abstract destroyByUser(userId: string, exceptId?: string): Promise<number>;

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
}
