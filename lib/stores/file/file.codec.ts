/** The session file's format: a session written as one JSON object, and read back with every part checked. */

import { isPlainObject } from '../../session.validation.js';
import { defineField, encodeClient, readClient } from '../field-codec.js';
import type { SessionClient, SessionFields, StoredSession } from '../session-store.js';

/** A session file as read: `{ v, c, s, e, u, k?, d }` on disk. */
export interface SessionRecord {
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  client: SessionClient | null;
  data: SessionFields;
}

/** The metadata of a session file. */
type SessionMeta = Pick<StoredSession, 'createdAt' | 'lastSeenAt' | 'expiresAt' | 'userId' | 'client'>;

const FORMAT_VERSION = 1;

/**
 * `{"v":1,"c":…,"s":…,"e":…,"u":…,"k":{…},"d":{…}}`, built from each field's JSON as encodeFields
 * made it. `k`, the client record, is metadata beside the data and only written when there is
 * one, so files without it keep the shape (and version) they always had.
 */
export function serialize(meta: SessionMeta, fields: Iterable<[name: string, json: string | undefined]>): string {
  const data: string[] = [];
  for (const [name, json] of fields) if (json !== undefined) data.push(`${JSON.stringify(name)}:${json}`);
  const { createdAt, lastSeenAt, expiresAt, userId, client } = meta;
  const clientPart = client ? `"k":${encodeClient(client)},` : '';
  return `{"v":${FORMAT_VERSION},"c":${createdAt},"s":${lastSeenAt},"e":${expiresAt},"u":${JSON.stringify(userId)},${clientPart}"d":{${data.join(',')}}}`;
}

/** The file's session, or null when it is not JSON, not this shape or not this version. */
export function parseRecord(text: string): SessionRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(parsed)) return null;
  const { v, c, s, e, u, k = null, d } = parsed;
  if (v !== FORMAT_VERSION || ![c, s, e].every(isTimestamp) || !(u === null || typeof u === 'string') || !isPlainObject(d)) {
    return null;
  }
  const client = readClient(k);
  if (client === undefined) return null;
  // No prototype, and every field an own property: `__proto__` in a file stays plain data.
  const data: SessionFields = Object.create(null);
  for (const name of Object.keys(d)) defineField(data, name, d[name]);
  return { createdAt: c, lastSeenAt: s, expiresAt: e, userId: u, client, data };
}

const isTimestamp = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

export const isLive = (record: SessionRecord): boolean => record.expiresAt > Date.now();
