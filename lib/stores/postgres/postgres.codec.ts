import { SessionFieldNotStorableError } from '../../session.errors.js';
import { defineField, encodeFields } from '../toolkit/field-codec.js';
import { UNKEEPABLE_CHARACTER } from '../session-store.js';
import type { SessionClient, SessionFields } from '../session-store.js';

/** The columns of a session row, with times as milliseconds since the epoch. */
export const SELECT_TIMES = `floor(extract(epoch from created_at) * 1000)::bigint AS created,
  floor(extract(epoch from last_seen_at) * 1000)::bigint AS last_seen,
  floor(extract(epoch from expires_at) * 1000)::bigint AS expires`;

/**
 * The escapes JSON.stringify writes for what jsonb refuses: U+0000 and unpaired surrogates (an
 * escape counts when an even number of backslashes precedes its own).
 */
const UNSTORABLE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** Every character of a text that PostgreSQL cannot keep, as the user-id rule defines them. */
const UNKEEPABLE_CHARACTERS = new RegExp(UNKEEPABLE_CHARACTER.source, 'g');

/** The times a row selected with {@link SELECT_TIMES} carries (bigints arrive as strings). */
export function rowTimes(row: Record<string, unknown>): { createdAt: number; lastSeenAt: number; expiresAt: number } {
  return { createdAt: Number(row.created), lastSeenAt: Number(row.last_seen), expiresAt: Number(row.expires) };
}

/** A row's data column as session fields, or null when it holds no JSON object (a row the store did not write). */
export function rowFields(value: unknown): SessionFields | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const data: SessionFields = Object.create(null);
  for (const name of Object.keys(value)) defineField(data, name, (value as Record<string, unknown>)[name]);
  return data;
}

/** The client record as jsonb text, or null for none (absent or null). */
export function clientJson(client: SessionClient | null | undefined): string | null {
  if (!client) return null;
  const json = JSON.stringify(client);
  // jsonb refuses NUL and lone surrogates. A client record only informs, so such characters are
  // replaced rather than failing the sign-in that records it.
  return UNSTORABLE.test(json) ? JSON.stringify(client, (_, value: unknown) => (typeof value === 'string' ? storable(value) : value)) : json;
}

function storable(text: string): string {
  return text.replace(UNKEEPABLE_CHARACTERS, '\ufffd');
}

/** Data fields as one JSON object text, and the fields whose value removes them. */
export function jsonObject(fields: SessionFields): { json: string; removed: string[] } {
  const members: string[] = [];
  const removed: string[] = [];
  for (const [name, json] of encodeFields(fields)) {
    // Refused here, before anything is sent, as input the client can correct (a 400), rather
    // than by the server as an error that would read as an outage.
    if (json !== undefined && UNSTORABLE.test(json)) throw new SessionFieldNotStorableError(name, 'postgres');
    if (json === undefined) removed.push(name);
    else members.push(`${JSON.stringify(name)}:${json}`);
  }
  return { json: `{${members.join(',')}}`, removed };
}
