import { SessionLimitReachedError } from '../session.errors.js';
import type { SessionEvents } from '../session.events.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import type { SessionStore } from '../stores/session-store.js';

/**
 * Who a session belongs to, and how many sessions one user may hold: the user is read from the
 * data at `userKey`; a write that changes it is a sign-in, which `maxSessionsPerUser` admits.
 */

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

/** The user a session's data names, for the per-user index: a string or number id; anything else (and '') indexes nothing. */
export function userIdOf(data: object, userKey: string): string | null {
  const value = readUserKey(data, userKey);
  if (typeof value === 'string') return value === '' ? null : value;
  return typeof value === 'number' && Number.isFinite(value) ? String(value) : null;
}

/** A sign-in's write, and what the `maxSessionsPerUser` policy needs to admit it. */
export interface SignIn<T> {
  /** The user the write signs the session in as; null: the write signs nobody in. */
  user: string | null;
  /** The ids this session has or is moving to: never counted against the user, never evicted. */
  own: ReadonlyArray<string | null>;
  write: () => Promise<T>;
}

/**
 * Runs a sign-in's write under `maxSessionsPerUser`: with the user locked on every node, the
 * user's other sessions are counted, and beyond the limit the oldest are evicted (never this
 * one) or the sign-in is refused before anything is written (`onMaxSessions: 'reject'`, a 409).
 */
export async function admitSignIn<T>(
  store: SessionStore,
  options: Pick<ResolvedSessionOptions, 'maxSessionsPerUser' | 'onMaxSessions'>,
  events: SessionEvents | undefined,
  { user, own, write }: SignIn<T>,
): Promise<T> {
  const max = options.maxSessionsPerUser;
  if (user === null || max === undefined) return write();
  return store.withUserLock(user, async () => {
    const others = (await store.listByUser(user)).filter((session) => !own.includes(session.id));
    const excess = others.length + 1 - max;
    if (excess > 0 && options.onMaxSessions === 'reject') throw new SessionLimitReachedError(max);
    // Listed oldest first, by creation.
    for (const session of others.slice(0, Math.max(0, excess))) {
      await store.destroy(session.id);
      events?.emit('revoked', session.id, user, 'evicted');
    }
    return write();
  });
}
