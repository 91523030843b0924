/** Which user ids a store can keep exactly: the one rule every store applies to them alike. */

import { SessionUserIdInvalidError } from '../session.errors.js';

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
