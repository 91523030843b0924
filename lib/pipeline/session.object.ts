import { Logger } from '@nestjs/common';
import { RESERVED_FIELDS, SESSION_MEMBER_NAMES } from '../session.constants.js';
import { SessionReservedFieldError, toHttpException } from '../session.errors.js';
import { defineField } from '../stores/index.js';
import type { SessionFields } from '../stores/session-store.js';

/**
 * The data of a session. Empty here; applications describe their fields by declaration merging:
 *
 * @example
 * ```ts
 * declare module 'nestjs-session-sync' {
 *   interface SessionData {
 *     userId?: string;
 *     visits?: number;
 *   }
 * }
 * ```
 */
export interface SessionData {}

/** Node-style callback accepted by every Session method (Passport calls `regenerate(cb)`). */
export type SessionCallback = (err?: unknown) => void;

export interface RegenerateOptions {
  /** Keep the data and move it to the new id (fixation protection on sign-in). @default false */
  keepData?: boolean;
}

/** The members every session has besides its data fields. Their names are reserved. */
export interface SessionMethods {
  /** The session id. Never log it: use `hashSessionId()`. */
  readonly id: string;
  /** True when this request started the session (it was not in the store before). */
  readonly isNew: boolean;
  /** New id and empty data; the old session is destroyed at once, and `req.session` becomes a new object (express-session semantics). */
  regenerate(options?: RegenerateOptions, callback?: SessionCallback): Promise<void>;
  regenerate(callback: SessionCallback): Promise<void>;
  /** New id, same data: call it on sign-in. The old id is dead once the response is sent. */
  rotateId(callback?: SessionCallback): Promise<void>;
  /** Destroys the session in the store now; the response clears the cookie. */
  destroy(callback?: SessionCallback): Promise<void>;
  /** Reads the session again from the store, dropping unsaved changes. */
  reload(callback?: SessionCallback): Promise<void>;
  /** Writes the changes so far now, rather than before the response is sent. */
  save(callback?: SessionCallback): Promise<void>;
  /** Asks for the expiry to be extended even though nothing changed. */
  touch(callback?: SessionCallback): Promise<void>;
  /** The data fields as a plain object (a copy). */
  toJSON(): Record<string, unknown>;
}

/** What `@Session()` and `req.session` give: the data fields and the methods. */
export type SessionObject = SessionMethods & SessionData;

/** What a Session object works on: the request's session state. */
export interface SessionObjectHost {
  /** The live data; replaced by a new object when `regenerate()` starts the session over. */
  readonly data: SessionFields;
  readonly id: string;
  readonly isNew: boolean;
  /** Called before a field is first read or written, so its change can be seen. */
  remember(field: string): void;
  regenerate(options?: RegenerateOptions): Promise<void>;
  rotateId(): Promise<void>;
  destroy(): Promise<void>;
  reload(): Promise<void>;
  save(): Promise<void>;
  touch(): Promise<void>;
  toJSON(): Record<string, unknown>;
}

/** A Session object, and how to retire it once `regenerate()` hands out a new one. */
export interface SessionObjectHandle {
  object: SessionObject;
  /** From now on the object shows `snapshot` for fields the live session has not written since. */
  retire(snapshot: SessionFields): void;
}

const logger = new Logger('SessionModule');

/** A deep copy through JSON: what `toJSON()` hands out, so nothing returned reaches the session. */
export const copyJson = (value: object): Record<string, unknown> => JSON.parse(JSON.stringify(value)) as Record<string, unknown>;

/**
 * A Session object over the host's live data: property-style fields plus the methods. Reserved
 * names and symbols are refused with a 400, and a prototype can be neither read nor swapped.
 * Once retired (by `regenerate()`), it shows its snapshot for fields the live session has not
 * written since, and writes go to the live one, so `await session.regenerate(); session.userId =
 * id` works through a `@Session()` parameter too.
 */
export function createSessionObject(host: SessionObjectHost): SessionObjectHandle {
  let snapshot: SessionFields | undefined;
  // A store failure inside a method the handler awaits surfaces as a 503, like a failed load.
  const method =
    <A>(run: (arg?: A) => Promise<void>, takesOptions = false) =>
    () =>
      withCallback((arg?: A) => run(arg).catch((error: unknown) => Promise.reject(toHttpException(error))), takesOptions);
  // Built on first use: most requests only read and write data fields.
  let members: Record<string, () => unknown> | undefined;
  const buildMembers = (): Record<string, () => unknown> => ({
    id: () => host.id,
    isNew: () => host.isNew,
    regenerate: method((options?: RegenerateOptions) => host.regenerate(options), true),
    rotateId: method(() => host.rotateId()),
    destroy: method(() => host.destroy()),
    reload: method(() => host.reload()),
    save: method(() => host.save()),
    touch: method(() => host.touch()),
    // What this object shows: for a retired one, its snapshot under what was written since.
    toJSON: () => () => (snapshot ? copyJson({ ...Object.fromEntries(Object.entries(snapshot)), ...host.toJSON() }) : host.toJSON()),
  });
  const writable = (key: string | symbol): string => {
    if (typeof key === 'symbol' || RESERVED_FIELDS.has(key)) throw new SessionReservedFieldError(String(key));
    host.remember(key);
    return key;
  };
  /** Where a field is read from: the live data, or a retired object's snapshot of it. */
  const source = (key: string): SessionFields => (snapshot && !Object.hasOwn(host.data, key) ? snapshot : host.data);
  const read = (key: string): unknown => {
    const from = source(key);
    if (from === host.data) host.remember(key);
    return from[key];
  };
  // The target only anchors the proxy: every trap works on the host's data (or the snapshot),
  // which regenerate() replaces. It stays extensible and empty, so the proxy invariants hold
  // for the configurable fields reported from elsewhere.
  const object = new Proxy(Object.create(null) as SessionFields, {
    get(_target, key) {
      if (typeof key === 'symbol') return undefined;
      if (SESSION_MEMBER_NAMES.has(key)) return (members ??= buildMembers())[key]();
      if (RESERVED_FIELDS.has(key)) return undefined;
      return read(key);
    },
    set(_target, key, value) {
      const field = writable(key);
      if (value === undefined) delete host.data[field];
      else defineField(host.data, field, value);
      return true;
    },
    deleteProperty(_target, key) {
      delete host.data[writable(key)];
      return true;
    },
    defineProperty(_target, key, descriptor) {
      const field = writable(key);
      return Reflect.defineProperty(host.data, field, { ...descriptor, enumerable: true, configurable: true });
    },
    getOwnPropertyDescriptor(_target, key) {
      if (typeof key !== 'string') return undefined;
      const value = read(key);
      if (!Object.hasOwn(source(key), key)) return undefined;
      return { value, writable: true, enumerable: true, configurable: true };
    },
    ownKeys() {
      return [...new Set([...Object.keys(snapshot ?? {}), ...Object.keys(host.data)])];
    },
    has(_target, key) {
      if (typeof key !== 'string') return false;
      return SESSION_MEMBER_NAMES.has(key) || Object.hasOwn(host.data, key) || (snapshot !== undefined && Object.hasOwn(snapshot, key));
    },
    setPrototypeOf() {
      throw new SessionReservedFieldError('__proto__');
    },
  }) as unknown as SessionObject;
  return {
    object,
    retire: (data) => {
      snapshot = data;
    },
  };
}

/**
 * Gives a method both calling styles: it returns a Promise, and if the last argument is a
 * function it is called Node-style (and the Promise then never rejects, so no unhandled
 * rejection follows a callback that already got the error).
 */
function withCallback<A>(method: (arg?: A) => Promise<void>, takesOptions = false) {
  return (...args: unknown[]): Promise<void> => {
    const last = args[args.length - 1];
    const callback = typeof last === 'function' ? (last as SessionCallback) : undefined;
    const arg = takesOptions && typeof args[0] === 'object' && args[0] !== null ? (args[0] as A) : undefined;
    const result = Promise.resolve().then(() => method(arg));
    if (!callback) return result;
    // Callers that pass a callback (Passport) do not await the Promise, so an error thrown by
    // the callback itself is logged here instead of becoming an unhandled rejection.
    return result
      .then(
        () => callback(),
        (err: unknown) => callback(err),
      )
      .catch((err: unknown) => logger.error(`A session method's callback threw: ${String(err)}`));
  };
}
