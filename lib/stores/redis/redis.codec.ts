/**
 * How a session maps to its Redis hash and back, and to the arguments of the scripts that write
 * it (the hash layout is described in redis.scripts.ts).
 */

import { defineField, encodeClient, encodeFields, parseClient } from '../toolkit/field-codec.js';
import type { SessionChange, SessionFields, StoredSession } from '../session-store.js';

/**
 * The metadata fields: the times (the empty name, the cheapest one: see redis.scripts.ts), the
 * user and the client record. A data field is stored under its own name, but for names that
 * could be mistaken for metadata (see {@link dataField}).
 */
export const META = { times: '', user: '~u', client: '~k' } as const;
/**
 * What a data field holding the session's user id (as JSON) stores instead: that JSON is in
 * `~u` already, as the user itself. Never valid JSON, so it stands for nothing else.
 */
export const USER_REFERENCE = '';
const USER_MODE = { keep: 'k', set: 's', clear: 'c' } as const;

/**
 * How much longer a session's expiry marker lives than the session. Redis publishes an expiry
 * when it reclaims the key, which for a key nobody reads is when its expiry cycle gets to it:
 * about 200 keys with a TTL per second at the default `hz 10`, so minutes after the TTL on a large
 * keyspace. The marker must still be there then. It costs little: a reported expiry takes its
 * marker at once, so only unreported ones (nobody watching) keep theirs for the grace period.
 */
const EXPIRY_MARKER_GRACE = 60 * 60_000;

/**
 * The hash field of a data field: its name, with a `~` in front of a name that is empty or
 * starts with `~`. Every other name starting with `~`, and the empty name, are left to metadata.
 */
export function dataField(name: string): string {
  return name === '' || name.startsWith('~') ? `~${name}` : name;
}

/** The data field a hash field holds, or undefined for metadata. */
function dataNameOf(field: string): string | undefined {
  if (field === '~' || field.startsWith('~~')) return field.slice(1);
  return field === '' || field.startsWith('~') ? undefined : field;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(n: number): string {
  let text = '';
  do {
    text = BASE62[n % 62] + text;
    n = Math.floor(n / 62);
  } while (n > 0);
  return text;
}

const signed = (n: number): string => (n < 0 ? '-' : '+') + base62(Math.abs(n));

/**
 * The times field: creation time, then last seen minus created, then expiry minus last seen, in
 * base 62, each after the first led by its sign (`COMMIT_SCRIPT` writes it the same way).
 */
export function timesField(createdAt: number, lastSeenAt: number, expiresAt: number): string {
  return (createdAt < 0 ? '-' : '') + base62(Math.abs(createdAt)) + signed(lastSeenAt - createdAt) + signed(expiresAt - lastSeenAt);
}

const TIMES = /^(-?[0-9A-Za-z]{1,9})([+-][0-9A-Za-z]{1,9})([+-][0-9A-Za-z]{1,9})$/;

function fromBase62(text: string): number {
  const digits = text.replace(/^[+-]/, '');
  let n = 0;
  for (const digit of digits) n = n * 62 + BASE62.indexOf(digit);
  return text.startsWith('-') ? -n : n;
}

/** The times a times field holds, or undefined when it is not one (absent, or not ours). */
function parseTimes(value: string | undefined): { createdAt: number; lastSeenAt: number; expiresAt: number } | undefined {
  const parts = value === undefined ? null : TIMES.exec(value);
  if (!parts) return undefined;
  const createdAt = fromBase62(parts[1]);
  const lastSeenAt = createdAt + fromBase62(parts[2]);
  const expiresAt = lastSeenAt + fromBase62(parts[3]);
  return [createdAt, lastSeenAt, expiresAt].every(Number.isSafeInteger) ? { createdAt, lastSeenAt, expiresAt } : undefined;
}

/** The create script's arguments before the fields: expiry, marker expiry, user. */
export function createArgs(session: StoredSession): (string | number)[] {
  return [session.expiresAt, session.expiresAt + EXPIRY_MARKER_GRACE, session.userId ?? ''];
}

/** Each data field's hash field and value, a field holding the user's JSON as a reference to it. */
function dataPairs(fields: SessionFields, userId: string | null | undefined, set: string[], unset: string[]): void {
  const userJson = typeof userId === 'string' ? JSON.stringify(userId) : undefined;
  for (const [name, json] of encodeFields(fields)) {
    if (json === undefined) unset.push(dataField(name));
    else set.push(dataField(name), json === userJson ? USER_REFERENCE : json);
  }
}

/** The hash fields of a whole session: metadata, then one field per data field. */
export function hashFields(session: StoredSession): string[] {
  const fields: string[] = [META.times, timesField(session.createdAt, session.lastSeenAt, session.expiresAt)];
  if (session.userId !== null) fields.push(META.user, session.userId);
  if (session.client) fields.push(META.client, encodeClient(session.client));
  dataPairs(session.data, session.userId, fields, []);
  return fields;
}

/**
 * The commit script's arguments: expiry, last seen, marker expiry, user mode, user, the number
 * of field/value pairs to set, those pairs, then the fields to remove.
 */
export function commitArgs(change: SessionChange): (string | number)[] {
  const set: string[] = [];
  const unset = change.unset.map(dataField);
  // Only a change that names the user can refer to it: the script does not send the stored one back.
  dataPairs(change.set, change.userId, set, unset);
  if (change.client === null) unset.push(META.client);
  else if (change.client !== undefined) set.push(META.client, encodeClient(change.client));
  const mode = change.userId === undefined ? USER_MODE.keep : change.userId === null ? USER_MODE.clear : USER_MODE.set;
  return [change.expiresAt, change.lastSeenAt, change.expiresAt + EXPIRY_MARKER_GRACE, mode, change.userId ?? '', set.length / 2, ...set, ...unset];
}

/** The fields listByUser reads of each session, in the order {@link parseSummary} takes them. */
export const SUMMARY_FIELDS = [META.times, META.user, META.client] as const;

/** What a listing needs of a session: its times, user and client JSON; undefined when its times are not ours. */
export function parseSummary([times, user, client]: (string | null)[]):
  { createdAt: number; lastSeenAt: number; expiresAt: number; userId: string | null; clientJson: string | null } | undefined {
  const parsed = parseTimes(times ?? undefined);
  return parsed && { ...parsed, userId: user, clientJson: client };
}

/** A stored hash as a session; undefined when it is not one of ours (bad metadata or JSON). */
export function parseSession(id: string, hash: Record<string, string>): StoredSession | undefined {
  const times = parseTimes(hash[META.times]);
  if (times === undefined) return undefined;
  const client = parseClient(hash[META.client]);
  if (client === undefined) return undefined;
  const userId = hash[META.user] ?? null;
  const data: SessionFields = Object.create(null);
  for (const [field, json] of Object.entries(hash)) {
    const name = dataNameOf(field);
    if (name === undefined) continue;
    if (json === USER_REFERENCE) {
      if (userId === null) return undefined;
      defineField(data, name, userId);
      continue;
    }
    try {
      defineField(data, name, JSON.parse(json));
    } catch {
      return undefined;
    }
  }
  // No record, no field: what stores return for a session that has none.
  return { id, data, ...times, userId, ...(client && { client }) };
}
