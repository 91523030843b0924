/** The session file's format: the toolkit's session record, which a file holds without an id (its name is the id). */

import type { SessionClient } from '../session-store.js';
import { decodeRecord } from '../toolkit/record-codec.js';
import type { SessionRecord } from '../toolkit/record-codec.js';

/** A session file as read. */
export interface SessionFileRecord extends Omit<SessionRecord, 'id' | 'client'> {
  client: SessionClient | null;
}

/** The file's session, or null when it is not a session record of this version, its client record included. */
export function parseSessionFile(text: string): SessionFileRecord | null {
  const record = decodeRecord(text);
  if (!record || record.client === undefined) return null;
  const { createdAt, lastSeenAt, expiresAt, userId, client, data } = record;
  return { createdAt, lastSeenAt, expiresAt, userId, client, data };
}

export const isLive = (record: SessionFileRecord): boolean => record.expiresAt > Date.now();
