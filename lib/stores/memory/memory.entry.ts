import type { encodeFields } from '../toolkit/field-codec.js';

/**
 * One session as the memory store holds it, and what it costs: the bytes each entry counts toward
 * the store's `maxBytes`, kept up to date per write from the lengths of the texts written, so
 * that no request serialises a whole session just to count it.
 */

/**
 * One session as held in memory. Data is kept per field as JSON text, the same model as a Redis
 * hash, so nothing a caller holds can reach into the store and every store round-trips alike.
 */
export interface Entry {
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  /** The client record as JSON text (so no caller's object is kept), or null for none. */
  client: string | null;
  fields: Map<string, string>;
  /** What the entry counts toward the store's bound: {@link entryBytes}. */
  bytes: number;
}

/**
 * Two bytes per UTF-16 code unit, the most V8 spends on a character: it keeps a string at one
 * byte per character only while every character is Latin-1. Counting two keeps the bound true
 * whatever text a client sends, at the price of counting plain ASCII at twice what it takes.
 */
const BYTES_PER_CHAR = 2;

/*
 * The fixed costs below were measured on Node 20.20 (V8 11.3, 64-bit) by creating sessions in a
 * MemoryStore under `node --expose-gc`, collecting garbage before and after, and dividing the
 * growth of `process.memoryUsage().heapUsed` by the count, less the characters the store counts
 * on its own (at one byte each, as those texts were). Each is the worst case seen: a Map costs
 * most per entry just after it doubles (66,000 sessions, 5, 9, 17... fields), rounded up.
 */

/**
 * An entry without fields, user or client: the entry object and its three timestamps, its empty
 * fields Map, its slot in the store's Map and the header of its id string (measured: 389 bytes
 * beside the id's 43 characters).
 */
const ENTRY_OVERHEAD_BYTES = 392;

/**
 * One data field beyond its name and JSON: its slot in the entry's Map (which doubles as it
 * grows) and the headers of its two strings (measured: 39 to 94 bytes per field, rising with the
 * field count; 104 also covers the padding of strings of any length).
 */
const FIELD_OVERHEAD_BYTES = 104;

/**
 * A signed-in session's place in the per-user index: its slot in the user's Set, and that Set
 * with its slot in the index when it is the user's only session (measured: 230 bytes, every
 * session a different user). Counted for every signed-in session, so a user's later sessions
 * count a little more than they cost.
 */
const USER_INDEX_OVERHEAD_BYTES = 232;

const textBytes = (text: string | null | undefined): number => (text === null || text === undefined ? 0 : text.length * BYTES_PER_CHAR);

const fieldBytes = (name: string, json: string | undefined): number =>
  json === undefined ? 0 : FIELD_OVERHEAD_BYTES + textBytes(name) + textBytes(json);

const userBytes = (userId: string | null): number => (userId === null ? 0 : USER_INDEX_OVERHEAD_BYTES + textBytes(userId));

/**
 * What an entry held under `id` counts: the JSON text of its fields, their names, the client
 * record, the user id and the id, at {@link BYTES_PER_CHAR}, plus the fixed costs above.
 */
export function entryBytes(id: string, entry: Entry): number {
  let bytes = ENTRY_OVERHEAD_BYTES + textBytes(id) + userBytes(entry.userId) + textBytes(entry.client);
  for (const [name, json] of entry.fields) bytes += fieldBytes(name, json);
  return bytes;
}

/** A change to an entry, encoded as the store applies it; `undefined` keeps the user or client. */
export interface EncodedChange {
  unset: readonly string[];
  set: ReturnType<typeof encodeFields>;
  userId: string | null | undefined;
  client: string | null | undefined;
}

/**
 * What `entry` will count once `change` is applied, computed without applying it, so that a
 * change too large to keep can be refused with the entry untouched. Follows `applyChange`:
 * removals first, then sets, where an undefined value removes the field.
 */
export function bytesAfterChange(entry: Entry, change: EncodedChange): number {
  let bytes = entry.bytes;
  if (change.unset.length > 0 || change.set.length > 0) {
    const after = new Map<string, string | undefined>();
    for (const name of change.unset) after.set(name, undefined);
    for (const [name, json] of change.set) after.set(name, json);
    for (const [name, json] of after) bytes += fieldBytes(name, json) - fieldBytes(name, entry.fields.get(name));
  }
  if (change.client !== undefined) bytes += textBytes(change.client) - textBytes(entry.client);
  if (change.userId !== undefined) bytes += userBytes(change.userId) - userBytes(entry.userId);
  return bytes;
}
