/**
 * How a session maps to its Redis hash and back, and to the arguments of the scripts that write
 * it (the hash layout is described in redis.scripts.ts).
 */

import { defineField, encodeClient, encodeFields, parseClient } from '../toolkit/field-codec.js';
import type { SessionChange, SessionFields, StoredSession } from '../session-store.js';

export const META = { created: '~c', lastSeen: '~s', expires: '~e', user: '~u', client: '~k' } as const;
const DATA_PREFIX = 'd:';
const USER_MODE = { keep: 'k', set: 's', clear: 'c' } as const;

/**
 * How much longer a session's expiry marker lives than the session. Redis publishes an expiry
 * when it reclaims the key, which for a key nobody reads is when its expiry cycle gets to it:
 * about 200 keys with a TTL per second at the default `hz 10`, so minutes after the TTL on a large
 * keyspace. The marker must still be there then. It costs little: a reported expiry takes its
 * marker at once, so only unreported ones (nobody watching) keep theirs for the grace period.
 */
const EXPIRY_MARKER_GRACE = 60 * 60_000;

/** The create script's arguments before the fields: expiry, marker expiry, user. */
export function createArgs(session: StoredSession): (string | number)[] {
  return [session.expiresAt, session.expiresAt + EXPIRY_MARKER_GRACE, session.userId ?? ''];
}

/** The hash fields of a whole session: metadata, then one JSON field per data field. */
export function hashFields(session: StoredSession): string[] {
  const fields = [META.created, String(session.createdAt), META.lastSeen, String(session.lastSeenAt), META.expires, String(session.expiresAt)];
  if (session.userId !== null) fields.push(META.user, session.userId);
  if (session.client) fields.push(META.client, encodeClient(session.client));
  for (const [field, json] of encodeFields(session.data)) if (json !== undefined) fields.push(DATA_PREFIX + field, json);
  return fields;
}

/**
 * The commit script's arguments: expiry, last seen, marker expiry, user mode, user, the number
 * of field/value pairs to set, those pairs, then the fields to remove.
 */
export function commitArgs(change: SessionChange): (string | number)[] {
  const set: string[] = [];
  const unset = change.unset.map((field) => DATA_PREFIX + field);
  for (const [field, json] of encodeFields(change.set)) {
    if (json === undefined) unset.push(DATA_PREFIX + field);
    else set.push(DATA_PREFIX + field, json);
  }
  if (change.client === null) unset.push(META.client);
  else if (change.client !== undefined) set.push(META.client, encodeClient(change.client));
  const mode = change.userId === undefined ? USER_MODE.keep : change.userId === null ? USER_MODE.clear : USER_MODE.set;
  return [change.expiresAt, change.lastSeenAt, change.expiresAt + EXPIRY_MARKER_GRACE, mode, change.userId ?? '', set.length / 2, ...set, ...unset];
}

/** A millisecond timestamp as stored, or NaN for anything else ('' included). */
const timestamp = (value: string | undefined): number => (value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : NaN);

/** A stored hash as a session; undefined when it is not one of ours (bad metadata or JSON). */
export function parseSession(id: string, hash: Record<string, string>): StoredSession | undefined {
  const createdAt = timestamp(hash[META.created]);
  const lastSeenAt = timestamp(hash[META.lastSeen]);
  const expiresAt = timestamp(hash[META.expires]);
  if (![createdAt, lastSeenAt, expiresAt].every(Number.isFinite)) return undefined;
  const client = parseClient(hash[META.client]);
  if (client === undefined) return undefined;
  const data: SessionFields = Object.create(null);
  for (const [field, json] of Object.entries(hash)) {
    if (!field.startsWith(DATA_PREFIX)) continue;
    try {
      defineField(data, field.slice(DATA_PREFIX.length), JSON.parse(json));
    } catch {
      return undefined;
    }
  }
  // No record, no field: what stores return for a session that has none.
  return { id, data, createdAt, lastSeenAt, expiresAt, userId: hash[META.user] ?? null, ...(client && { client }) };
}
