import { SessionFieldNotJsonError } from '../../session.errors.js';
import { isPlainObject } from '../../session.validation.js';
import type { SessionClient, SessionFields } from '../session-store.js';

/**
 * How every store turns data fields into JSON text and back, so that all stores agree on the
 * edge cases: `undefined` removes a field (as JSON.stringify would drop it), a value JSON cannot
 * carry fails with SessionFieldNotJsonError naming the field before anything is written, and a
 * field named `__proto__` stays plain data.
 */

/** One data field as JSON text, or with undefined for a field whose value removes it. */
export type EncodedField = [name: string, json: string | undefined];

/**
 * JSON the pipeline already made of a fields object's values: the change tracker serializes
 * each changed field to find out that it changed, and hands the delta on with that text, so
 * the store writing it does not serialize the same values again.
 */
const knownJson = new WeakMap<SessionFields, ReadonlyMap<string, string | undefined>>();

/** Marks `fields` as holding values whose JSON is `json` (by name): {@link encodeFields} reuses it. */
export function withKnownJson(fields: SessionFields, json: ReadonlyMap<string, string | undefined>): SessionFields {
  knownJson.set(fields, json);
  return fields;
}

/** Each field's JSON, or undefined for a field whose value removes it. */
export function encodeFields(fields: SessionFields): EncodedField[] {
  const known = knownJson.get(fields);
  return Object.keys(fields).map((name) => {
    if (known?.has(name)) return [name, known.get(name)];
    try {
      return [name, JSON.stringify(fields[name])];
    } catch {
      throw new SessionFieldNotJsonError(name);
    }
  });
}

/** Sets a data field as an own property, whatever its name (`__proto__` included). */
export function defineField(target: SessionFields, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

/** Each field of a session's data as JSON text, for a store that rewrites whole sessions. */
export function fieldsAsJson(data: SessionFields): Map<string, string> {
  return new Map(Object.keys(data).map((name) => [name, JSON.stringify(data[name])]));
}

/** Applies a change (fields removed, then encoded fields set or removed) to fields held as JSON. */
export function applyChange(fields: Map<string, string>, unset: readonly string[], set: ReturnType<typeof encodeFields>): void {
  for (const name of unset) fields.delete(name);
  for (const [name, json] of set) {
    if (json === undefined) fields.delete(name);
    else fields.set(name, json);
  }
}

/** The members of a client record, in the order stores keep them. */
export const CLIENT_MEMBERS = ['userAgent', 'ip'] as const;

/** A client record as stored: only the members a record has. */
export function clientRecord(client: SessionClient): SessionClient {
  return { userAgent: client.userAgent, ip: client.ip };
}

/** {@link clientRecord} as JSON. */
export function encodeClient(client: SessionClient): string {
  return JSON.stringify(clientRecord(client));
}

/**
 * A client record as read back from storage: null when there is none, undefined when the value
 * is not one of ours (a store treats that session as unreadable).
 */
export function readClient(value: unknown): SessionClient | null | undefined {
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) return undefined;
  const client: SessionClient = {};
  for (const field of CLIENT_MEMBERS) {
    const text: unknown = value[field];
    if (text === undefined) continue;
    if (typeof text !== 'string') return undefined;
    client[field] = text;
  }
  return client;
}

/** {@link readClient} of a record kept as JSON text. */
export function parseClient(json: string | null | undefined): SessionClient | null | undefined {
  if (json === undefined || json === null) return null;
  try {
    return readClient(JSON.parse(json));
  } catch {
    return undefined;
  }
}

/** `{ client }`, or nothing when there is none: a session without one reads as it always did. */
export function clientMember(client: SessionClient | null | undefined): { client?: SessionClient } {
  return client ? { client } : {};
}
