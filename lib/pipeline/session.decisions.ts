import type { ResolvedSessionOptions } from '../session.options.js';
import type { StoredSession } from '../stores/session-store.js';

/**
 * Every per-request decision of the pipeline, as a named function of plain facts, in one place
 * (as express-session keeps `shouldSave`, `shouldTouch`, `shouldSetCookie`): a reader sees the
 * policy at a glance, and the two places that ask one question (will the commit write? may the
 * response leave without waiting?) cannot drift apart, since both ask here.
 */

type TimeoutOptions = Pick<ResolvedSessionOptions, 'idleTimeout' | 'absoluteTimeout'>;

/**
 * A stored session whose idle or absolute timeout is over at `now`. Checked at load time too, so
 * that shortening a timeout takes effect on sessions already stored.
 */
export function hasTimedOut(session: Pick<StoredSession, 'createdAt' | 'lastSeenAt'>, options: TimeoutOptions, now: number): boolean {
  const idleOver = session.lastSeenAt + options.idleTimeout <= now;
  const absoluteOver = options.absoluteTimeout !== false && session.createdAt + options.absoluteTimeout <= now;
  return idleOver || absoluteOver;
}

/** When a session written at `now` expires: idle expiry slides, capped by the absolute deadline counted from creation. */
export function expiryFrom(now: number, createdAt: number, options: TimeoutOptions): number {
  const idle = now + options.idleTimeout;
  return options.absoluteTimeout === false ? idle : Math.min(idle, createdAt + options.absoluteTimeout);
}

/**
 * Whether an unchanged session's expiry is worth extending: at most once per `touchAfter`, and
 * only when the new expiry is later (an absolute deadline may already cap it).
 */
export function shouldTouch(now: number, lastSeenAt: number, touchAfter: number, newExpiry: number, storedExpiry: number): boolean {
  return now - lastSeenAt >= touchAfter && newExpiry > storedExpiry;
}

/** What one request knows when it asks what its commit would write. */
export interface WriteFacts {
  /** The session is in the store (it was loaded, or this request already created it). */
  stored: boolean;
  /** An id rotation is pending: the session must move to its new id. */
  rotating: boolean;
  /** A data field differs from what is stored (or the user it belongs to does). May be a getter: asked only when the answer depends on it. */
  changed: boolean;
  /** `save()` was called since the last write. */
  saveRequested: boolean;
  /** `touch()` was called since the last write. */
  touchRequested: boolean;
  /** {@link shouldTouch} says the expiry is due to be extended. May be a getter: asked only of a stored, unchanged session. */
  touchDue: boolean;
}

/** The store write a commit makes: one round trip, or none. */
export type PlannedWrite = 'create' | 'rotate' | 'commit' | 'touch' | 'none';

/**
 * The one answer to "what would the commit write now?": a new session is created once it holds
 * something (or `save()` / `saveUninitialized` asks for it), a pending rotation moves the whole
 * session, a change is a delta commit, and an unchanged session is touched when asked or due.
 */
export function plannedWrite(facts: WriteFacts, saveUninitialized: boolean): PlannedWrite {
  if (!facts.stored) return shouldSaveNew(facts, saveUninitialized) ? 'create' : 'none';
  if (facts.rotating) return 'rotate';
  if (facts.changed) return 'commit';
  return facts.touchRequested || facts.touchDue ? 'touch' : 'none';
}

/** A session not in the store yet is saved once it holds data, or when asked to (`save()`, `saveUninitialized`). */
export function shouldSaveNew(facts: Pick<WriteFacts, 'changed' | 'saveRequested'>, saveUninitialized: boolean): boolean {
  // `changed` last: it may be a getter that serializes the touched fields.
  return saveUninitialized || facts.saveRequested || facts.changed;
}

/** What a credential is made for: the committed session's id, user and expiry. */
export interface CredentialSubject {
  id: string;
  userId: string | null;
  expiresAt: number;
}

/** A request's session as its commits left it: what the credential decision needs. */
export interface CommittedSession extends Omit<CredentialSubject, 'id'> {
  /** Where the session lives in the store now; null: not stored. */
  id: string | null;
  /** Store writes that succeeded in this request. */
  writes: number;
  /** The last commit failed. */
  failed: boolean;
  /** This request destroyed (or regenerated) the session the client held. */
  destroyedHere: boolean;
}

/** What the client's credential must become once the session is committed. */
export type CredentialDecision = { action: 'set'; subject: CredentialSubject } | { action: 'clear' } | { action: 'none' };

/**
 * What the credential on one channel must become: a new one when the id changed (created,
 * rotated), or after any write when the credential carries the session's state (`renewOnWrite`:
 * a sealed session, a JWT's `exp`, a cookie's Max-Age, a credential made with a retiring secret).
 * Nothing after a failed commit: the response carries no credential for a write the store refused.
 *
 * A credential is cleared only when this request destroyed the session: an id that is merely
 * unknown may come from a request that raced a sign-in, and clearing it could delete the cookie
 * that sign-in just set.
 */
export function credentialDecision(session: CommittedSession, presentedId: string | null, renewOnWrite: boolean): CredentialDecision {
  if (session.failed) return { action: 'none' };
  if (session.id !== null) {
    if (session.id === presentedId && !(renewOnWrite && session.writes > 0)) return { action: 'none' };
    return { action: 'set', subject: { id: session.id, userId: session.userId, expiresAt: session.expiresAt } };
  }
  return session.destroyedHere && presentedId !== null ? { action: 'clear' } : { action: 'none' };
}

/**
 * Responses to a signed-in session's requests carry `Cache-Control: no-store` (OWASP), reads
 * included; set before the handler runs, so it holds whatever the handler does.
 */
export function shouldForbidCaching(loaded: Pick<StoredSession, 'userId'>, options: Pick<ResolvedSessionOptions, 'noStoreWhenSignedIn'>): boolean {
  return loaded.userId !== null && options.noStoreWhenSignedIn;
}
