import type { SessionFields, StoredSession } from '../session-store.js';
import { applyChange } from '../toolkit/field-codec.js';
import type { EncodedField } from '../toolkit/field-codec.js';

/**
 * One session as the memory store holds it, and what it costs: the bytes each entry counts toward
 * the store's `maxBytes`, worked out from the lengths of the texts it holds, so that no request
 * serialises a whole session just to count it.
 *
 * An entry is one object and the strings it points to, as few as a session allows: heap per
 * session is what bounds how many sessions one process keeps, and every object V8 allocates
 * carries a header and a pointer to it beside its content.
 */

/** The times an entry is built from. */
export type EntryTimes = Pick<StoredSession, 'createdAt' | 'lastSeenAt' | 'expiresAt'>;

/** A change to an entry, encoded as the store applies it; `undefined` keeps the user or client. */
export interface EncodedChange {
  unset: readonly string[];
  set: EncodedField[];
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null | undefined;
  client: string | null | undefined;
}

/** Where entries count their creation time from: the time this module was loaded. */
const EPOCH = Date.now();

/**
 * A time as an entry keeps it: its distance from an earlier time of the session. Near now that is
 * an integer small enough for V8 to keep in the entry's own slot (within 24 days of the time it
 * counts from, on 64-bit Node), where a timestamp takes a 16-byte box of its own. The time
 * itself, in an array, when the distance would not give it back exactly (a fraction far from the
 * time it counts from, -0, a time counted from NaN): every time reads back as it was written.
 */
type Offset = number | readonly [time: number];

function offsetOf(time: number, from: number): Offset {
  const offset = time - from;
  return Object.is(from + offset, time) ? offset : [time];
}

const timeAt = (offset: Offset, from: number): number => (typeof offset === 'number' ? from + offset : offset[0]);

/**
 * One session as held in memory. Its data is one JSON object text, so nothing a caller holds can
 * reach into the store, every read parses a fresh copy, and every store round-trips alike.
 * Entries never change: a commit replaces its entry with a new one, counted before it is kept.
 */
export class Entry {
  // Class fields, so V8 defines each slot (as undefined) before the constructor writes it: it then
  // keeps a time's slot tagged, a small integer held in the slot itself and any other number in a
  // box. Set first by the constructor, a time's slot would hold every entry's time in a box.
  private readonly created: Offset;
  private readonly lastSeen: Offset;
  /** Counted from `lastSeen`: a session's idle timeout, however old the session. */
  private readonly expires: Offset;
  readonly userId: string | null;
  /** The client record as JSON text (so no caller's object is kept), or null for none. */
  readonly client: string | null;
  /** The data fields as one JSON object text: {@link dataText}. */
  readonly data: string;

  constructor(times: EntryTimes, userId: string | null, client: string | null, data: string) {
    this.created = offsetOf(times.createdAt, EPOCH);
    this.lastSeen = offsetOf(times.lastSeenAt, times.createdAt);
    this.expires = offsetOf(times.expiresAt, times.lastSeenAt);
    this.userId = userId;
    this.client = client;
    this.data = data;
  }

  get createdAt(): number {
    return timeAt(this.created, EPOCH);
  }

  get lastSeenAt(): number {
    return timeAt(this.lastSeen, this.createdAt);
  }

  get expiresAt(): number {
    return timeAt(this.expires, this.lastSeenAt);
  }

  /** This entry with `change` applied, as a new entry: this one stays as it was. */
  withChange(change: EncodedChange): Entry {
    return new Entry(
      { createdAt: this.createdAt, lastSeenAt: change.lastSeenAt, expiresAt: change.expiresAt },
      change.userId === undefined ? this.userId : change.userId,
      change.client === undefined ? this.client : change.client,
      changedDataText(this.data, change.unset, change.set),
    );
  }

  /** The data as a new object: {@link readDataText}. */
  readData(): SessionFields {
    return readDataText(this.data);
  }

  /**
   * What the entry held under `id` counts: the characters of the id, its data text, client record
   * and user id at {@link BYTES_PER_CHAR}, the fixed costs below, and what its times take.
   */
  bytes(id: string): number {
    return (
      ENTRY_OVERHEAD_BYTES +
      textBytes(id) +
      textBytes(this.data) +
      textBytes(this.client) +
      userBytes(this.userId) +
      offsetBytes(this.created) +
      offsetBytes(this.lastSeen) +
      offsetBytes(this.expires)
    );
  }
}

/*
 * The data text is one JSON object with each field's boundaries marked by whitespace JSON allows
 * and JSON.stringify never writes (it escapes every control character in a string): a tab after
 * each name's colon, a line feed after each comma. One JSON.parse reads it whole, and a commit
 * finds each field's JSON by those marks alone, without parsing the values or writing them again.
 */
const NAME_END = ':\t';
const FIELD_END = ',\n';

/**
 * The data fields as one JSON object text, `{"name":<tab>json,<line feed>…}`, from each field's
 * JSON as encodeFields made it (a field without JSON is left out).
 */
export function dataText(fields: EncodedField[]): string {
  return joinFields(fields.map(nameAsJson));
}

/** A field with its name as JSON text: the key a data text knows it by, so a commit parses no name. */
const nameAsJson = ([name, json]: EncodedField): EncodedField => [JSON.stringify(name), json];

/**
 * {@link dataText} from fields already named by their names' JSON. Joined in one go: a string
 * built by `+` stays a tree of its pieces, each an object of its own, until something reads it whole.
 */
function joinFields(fields: Iterable<EncodedField>): string {
  const parts = ['{'];
  for (const [name, json] of fields) {
    if (json === undefined) continue;
    if (parts.length > 1) parts.push(FIELD_END);
    parts.push(name, NAME_END, json);
  }
  parts.push('}');
  return parts.join('');
}

/** Each field's JSON in a data text, by its name's JSON, in the text's order. */
function splitFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  if (text.length === 2) return fields;
  for (const field of text.slice(1, -1).split(FIELD_END)) {
    const at = field.indexOf(NAME_END);
    fields.set(field.slice(0, at), field.slice(at + NAME_END.length));
  }
  return fields;
}

/** The data text with fields removed, then encoded fields set or removed, in the order applyChange keeps. */
function changedDataText(text: string, unset: readonly string[], set: EncodedField[]): string {
  if (unset.length === 0 && set.length === 0) return text;
  const fields = splitFields(text);
  applyChange(
    fields,
    unset.map((name) => JSON.stringify(name)),
    set.map(nameAsJson),
  );
  return joinFields(fields);
}

/**
 * A fresh object per read, without a prototype, so that a field named `constructor` or `toString`
 * is plain data or absent, never an inherited member. JSON.parse already makes every member an
 * own property, a member named `__proto__` included, at every depth.
 */
function readDataText(text: string): SessionFields {
  return Object.setPrototypeOf(JSON.parse(text) as SessionFields, null) as SessionFields;
}

/**
 * Two bytes per UTF-16 code unit, the most V8 spends on a character: it keeps a string at one
 * byte per character only while every character is Latin-1. Counting two keeps the bound true
 * whatever text a client sends, at the price of counting plain ASCII at twice what it takes.
 */
const BYTES_PER_CHAR = 2;

/*
 * The fixed costs below are those of V8 on 64-bit Node (20.20, V8 11.3), checked by creating
 * sessions in a MemoryStore under `node --expose-gc`, collecting garbage before and after, and
 * comparing the growth of `process.memoryUsage().heapUsed` with what the store counts. Each is the
 * worst case: a Map costs most per entry just after it doubles (at 65,537 sessions, say).
 */

/** The entry object (72 bytes) and its slot in the store's Map (28 bytes, 56 just after the Map doubles). */
const ENTRY_OVERHEAD_BYTES = 128;

/** A string's header (16 bytes) and padding (up to 7), for each text an entry holds. */
const STRING_OVERHEAD_BYTES = 24;

/**
 * A signed-in session's place in the per-user index: a slot in its Map (56 bytes at most) for a
 * user's only session; with a second, that and a Set of two (about 150 bytes) for both, the most
 * per session. Counted for every signed-in session, so a user's later sessions count more than
 * they cost.
 */
const USER_INDEX_OVERHEAD_BYTES = 104;

/** A time's box: a number that is not a small integer (counted for every number, small or not). */
const BOXED_NUMBER_BYTES = 16;

/** A time kept whole, in an array of one number. */
const WHOLE_TIME_BYTES = 56;

const textBytes = (text: string | null): number => (text === null ? 0 : STRING_OVERHEAD_BYTES + text.length * BYTES_PER_CHAR);

const userBytes = (userId: string | null): number => (userId === null ? 0 : USER_INDEX_OVERHEAD_BYTES + textBytes(userId));

const offsetBytes = (offset: Offset): number => (typeof offset === 'number' ? BOXED_NUMBER_BYTES : WHOLE_TIME_BYTES);
