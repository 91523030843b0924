/**
 * A whole session as one JSON text, for the stores that keep it that way: the file store's
 * session files and the cookie store's seals. Keys are short because a seal travels in every
 * request: `{"v":1,"id":…,"c":created,"s":last seen,"e":expires,"u":user,"k":{client},"d":{fields}}`.
 * Only a seal carries `id` (a file is named by it), and `k` only when there is a client, so a
 * record without one keeps the shape, and the version, records always had. Files and seals
 * outlive a deploy: the exact text is pinned by test/stores/session-record-format.spec.ts.
 */

import { isPlainObject } from '../../session.validation.js';
import type { SessionClient, SessionFields, StoredSession } from '../session-store.js';
import { clientRecord, defineField, readClient } from './field-codec.js';
import type { EncodedField } from './field-codec.js';

const RECORD_VERSION = 1;

/** What a record holds beside the data (any `id` of the object passed is not written). */
export type RecordMeta = Pick<StoredSession, 'createdAt' | 'lastSeenAt' | 'expiresAt' | 'userId' | 'client'>;

/** A record as read back: checked for the shape every record has, and no more. */
export interface SessionRecord {
  /** The `id` member as written, unchecked: only a seal carries one, and its reader checks it. */
  id: unknown;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  /** The client record: null for none, undefined when `k` holds something that is not one. */
  client: SessionClient | null | undefined;
  /** On no prototype, every field an own property: `__proto__` in a record stays plain data. */
  data: SessionFields;
}

/**
 * The record's text, built from each field's JSON as encodeFields made it (a field without JSON
 * is left out), with `id` only when one is given.
 */
export function encodeRecord(meta: RecordMeta, fields: Iterable<EncodedField>, id?: string): string {
  const data: string[] = [];
  for (const [name, json] of fields) if (json !== undefined) data.push(`${JSON.stringify(name)}:${json}`);
  const { createdAt, lastSeenAt, expiresAt, userId, client } = meta;
  // JSON.stringify leaves out the members that are undefined: the id of a file, the client of a session without one.
  const head = JSON.stringify({
    v: RECORD_VERSION,
    id,
    c: createdAt,
    s: lastSeenAt,
    e: expiresAt,
    u: userId,
    k: client ? clientRecord(client) : undefined,
  });
  return `${head.slice(0, -1)},"d":{${data.join(',')}}}`;
}

/** The record in `text`, or null when it is not JSON, not this shape or not this version. */
export function decodeRecord(text: string): SessionRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(parsed)) return null;
  const { v, id, c, s, e, u, k, d } = parsed;
  if (v !== RECORD_VERSION || ![c, s, e].every(isTimestamp) || !(u === null || typeof u === 'string') || !isPlainObject(d)) {
    return null;
  }
  const data: SessionFields = Object.create(null);
  for (const name of Object.keys(d)) defineField(data, name, d[name]);
  return { id, createdAt: c, lastSeenAt: s, expiresAt: e, userId: u, client: readClient(k), data };
}

const isTimestamp = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
