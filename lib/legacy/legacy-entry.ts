import { RESERVED_FIELDS } from '../session.constants.js';
import { isPlainObject } from '../session.validation.js';
import { defineField } from '../stores/index.js';
import type { SessionFields } from '../stores/session-store.js';

/**
 * An express-session session as connect-redis and connect-pg-simple keep it: the JSON of
 * `req.session`, whose `cookie` member is express-session's own (its expiry there is stale, since
 * touches move only the store's TTL or `expire` column) and whose other members are the
 * application's data, Passport's `passport` included.
 */

/** What the JSON of an old session gives: its data fields, or why it cannot be taken over. */
export type LegacyReading = { fields: SessionFields } | { problem: string };

/**
 * The data fields of an old session's JSON, each an own property of a prototype-less object.
 * Not an object, not JSON, or holding a `__proto__` key at any depth: a problem, so its user
 * starts anonymous. A data object copied with plain assignment by application code could
 * otherwise have its prototype replaced, and this data was written by another library.
 * Members this module reserves (`cookie`, Session method names) are left out: no session
 * of this module can hold them as data.
 */
export function readLegacySession(json: string): LegacyReading {
  let prototypeKey = false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json, (key, value: unknown) => {
      if (key === '__proto__') prototypeKey = true;
      return value;
    });
  } catch {
    return { problem: 'its value is not JSON' };
  }
  if (!isPlainObject(parsed)) return { problem: 'its value is not a JSON object' };
  if (prototypeKey) return { problem: 'it holds a "__proto__" key' };
  const fields: SessionFields = Object.create(null);
  for (const name of Object.keys(parsed)) if (!RESERVED_FIELDS.has(name)) defineField(fields, name, parsed[name]);
  return { fields };
}
