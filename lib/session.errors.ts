import { HttpException } from '@nestjs/common';

/**
 * Every message the library shows lives here, so wording stays consistent and each one says what
 * failed and how to fix it. Error classes are small subclasses of SessionError with a stable
 * `code`; one table gives each code its HTTP answer.
 */

const GENERATE_SECRET = `node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`;

const show = (value: unknown): string => {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};

export const SessionMessages = {
  objectOption: (path: string, example: string, value: unknown) => `option "${path}" must be an object such as ${example} (got ${show(value)}).`,
  optionsNotObject: (value: unknown) => `options must be an object such as { secret: '...' } (got ${show(value)}).`,
  secretMissing: () =>
    `option "secret" is required: a string of at least 32 characters, or an array of them for rotation. Generate one with: ${GENERATE_SECRET}`,
  secretTooShort: (path: string, length: number) =>
    `option "${path}" must be at least 32 characters (got ${length}). Generate one with: ${GENERATE_SECRET}`,
  secretType: (value: unknown) =>
    `option "secret" must be a string or a non-empty array of strings (got ${show(value)}). Generate one with: ${GENERATE_SECRET}`,
  encryptionKeysType: (value: unknown) =>
    `option "encryptionKeys" must be a key or a non-empty array of keys, each 32 random bytes in base64url (got ${show(typeof value === 'string' ? `a string of ${value.length} characters` : value)}). Generate one with: ${GENERATE_SECRET}`,
  encryptionKeyShape: (path: string, length: number) =>
    `option "${path}" must be 32 random bytes in base64url: 43 characters of A-Z, a-z, 0-9, '-' and '_' (got ${length} characters that are not such a key). Generate one with: ${GENERATE_SECRET}`,
  encryptionKeyRepeated: (path: string) => `option "${path}" repeats an earlier key: list each key once, the one that encrypts first.`,
  encryptionKeysCookieStore: () =>
    'option "encryptionKeys" does not apply to the cookie store: it keeps no session on the server, and seals each one with keys derived from "secret". Remove "encryptionKeys", or choose a server-side store.',
  sealedAtRestUnreadable: (key: string, problem: string) => `Session ${key} cannot be read: ${problem}; treating it as absent.`,
  duration: (path: string, value: unknown) =>
    `option "${path}" must be a positive duration: milliseconds as a number (e.g. 1800000) or a string such as '30m', '12h', '7d' (got ${show(value)}).`,
  durationOrFalse: (path: string, value: unknown) =>
    `option "${path}" must be a positive duration (a number of milliseconds or a string such as '12h'), or false to disable it (got ${show(value)}).`,
  oneOf: (path: string, value: unknown, allowed: readonly unknown[]) =>
    `option "${path}" must be one of ${allowed.map(show).join(', ')} (got ${show(value)}).`,
  boolean: (path: string, value: unknown) => `option "${path}" must be true or false (got ${show(value)}).`,
  nonEmptyString: (path: string, value: unknown) => `option "${path}" must be a non-empty string (got ${show(value)}).`,
  cookieName: (path: string, value: unknown) =>
    `option "${path}" must be a valid cookie name: letters, digits and !#$%&'*+-.^_\`|~ only (got ${show(value)}).`,
  userKey: (value: unknown) =>
    `option "userKey" must be a field name such as 'userId', or a dotted path such as 'passport.user', without empty or prototype segments (got ${show(value)}).`,
  cookiePath: (path: string, value: unknown) => `option "${path}" must start with "/" (got ${show(value)}).`,
  cookieDomainInvalid: (value: unknown) =>
    `option "cookie.domain" is not a domain a Set-Cookie header can carry (got ${show(value)}). Give a host name such as 'example.com' or '.example.com', without a scheme, port or path, or drop it to mean the host that set the cookie.`,
  cookiePathInvalid: (value: unknown) =>
    `option "cookie.path" has characters a Set-Cookie header cannot carry (got ${show(value)}). Use a URL path without ";" or control characters, such as '/app'.`,
  cookiePrefixRule: (prefix: string, rule: string, problem: string) =>
    `option "cookie.name" starts with "${prefix}", which browsers accept only on a cookie ${rule}, but ${problem}. Change that option, or choose a name without the prefix.`,
  positiveInteger: (path: string, value: unknown) => `option "${path}" must be a positive whole number (got ${show(value)}).`,
  sameSiteNoneNeedsSecure: (secure: unknown) =>
    `option "cookie.sameSite" is 'none', which browsers accept only on Secure cookies, but "cookie.secure" is ${show(secure)}. Set cookie.secure to true (and serve over HTTPS), or use sameSite 'lax'.`,
  partitionedNeedsSecure: (secure: unknown) =>
    `option "cookie.partitioned" needs a Secure cookie, but "cookie.secure" is ${show(secure)}. Set cookie.secure to true.`,
  touchAfterTooLong: (touchAfter: number, idle: number) =>
    `option "touchAfter" (${touchAfter} ms) must be shorter than "idleTimeout" (${idle} ms), or sessions would expire between touches. Lower touchAfter or raise idleTimeout.`,
  absoluteShorterThanIdle: (absolute: number, idle: number) =>
    `option "absoluteTimeout" (${absolute} ms) is shorter than "idleTimeout" (${idle} ms), so the idle timeout could never apply. Raise absoluteTimeout, lower idleTimeout, or set absoluteTimeout to false.`,
  storeType: (value: unknown, types: readonly string[]) =>
    `option "store.type" must be one of ${types.map(show).join(', ')} (got ${show(value)}). Or pass an instance of a class that extends SessionStore.`,
  storeShape: (value: unknown) =>
    `option "store" must be a store config such as { type: 'memory' } or an instance of a class that extends SessionStore (got ${show(value)}).`,
  driverMissing: (store: string, pkg: string): string => SessionMessages.packageMissing(`The ${store} session store`, pkg),
  packageMissing: (feature: string, pkg: string) =>
    `${feature} needs the "${pkg}" package, which is not installed. Install it with: npm install ${pkg}`,
  cookieStoreSecret: () =>
    `The cookie session store needs the module's secret to seal sessions: create it through SessionModule (store: { type: 'cookie' }), or with CookieStore.create({ secret }).`,
  tokenFormatNeedsHeader: (transport: string) =>
    `option "tokenFormat" is 'jwt', which applies to header tokens, but "transport" is ${show(transport)}. Set transport to 'header' or 'both', or drop tokenFormat.`,
  maxSessionsCookieStore: () =>
    `option "maxSessionsPerUser" needs a store that can list a user's sessions, and the cookie store keeps each session only in its client's cookie. Use a server-side store (memory, file, redis, postgres), or drop maxSessionsPerUser.`,
  onMaxSessionsAlone: (value: unknown) =>
    `option "onMaxSessions" (${show(value)}) does nothing without "maxSessionsPerUser". Set maxSessionsPerUser (e.g. 5), or drop onMaxSessions.`,
  logger: (value: unknown) =>
    `option "logger" must be a Nest LoggerService, an object with log, warn and error methods (got ${show(value)}). Pass e.g. new Logger('Sessions'), or drop the option.`,
  sessionLimitReached: (max: number) =>
    `This account already has ${max} active session${max === 1 ? '' : 's'}, the most allowed. Sign out on another device (or revoke a session there) and sign in again.`,
  tokenFormatCookieStore: () =>
    `option "tokenFormat" is 'jwt', but the cookie store's token is the sealed session itself, not a JWT naming a server-side session. Use a server-side store (memory, file, redis, postgres) with JWT tokens, or drop tokenFormat.`,
  memoryMaxBytes: (path: string, value: unknown) =>
    `option "${path}" must be a whole number of bytes above 0, such as 67108864 (64 MiB, the default): the most session data the memory store holds before it evicts the least recently used sessions (got ${show(value)}). Drop it to keep the default.`,
  memorySessionTooLarge: (bytes: number, limit: number) =>
    `The session is too large for the memory store: it would take ${bytes} bytes, more than the whole store may hold (store.maxBytes, ${limit} bytes). Nothing was saved; the client keeps its previous session. Keep less data in the session, or raise store.maxBytes.`,
  memoryStoreInProduction: (maxBytes: number) =>
    `The memory session store keeps sessions in this one process, bounded to ${maxBytes} bytes (store.maxBytes): they are lost on restart, not shared with other nodes, and the least recently used are evicted when it is full. A production application with more than one node should use the Redis or PostgreSQL store, e.g. store: { type: 'redis', url: process.env.REDIS_URL }.`,
  sessionTooLarge: (bytes: number, limit: number, carrier: string) =>
    `The session is too large to carry: its ${carrier} would be ${bytes} bytes, over the ${limit}-byte limit browsers keep per cookie. Nothing was saved; the client keeps its previous session. Keep large data in a server-side store (memory, file, redis, postgres) rather than the cookie store.`,
  noReplicaAck: (timeout: number) =>
    `no replica acknowledged the write within ${timeout} ms (consistency: 'strong'). Check that the Redis master has a connected replica, or raise store.replicaTimeout.`,
  endpoints: (path: string, value: unknown) =>
    `option "${path}" must be a non-empty array of { host, port } objects, e.g. [{ host: '127.0.0.1', port: 26379 }] (got ${show(value)}).`,
  redisUrl: (value: unknown) => `option "store.url" must be a redis:// or rediss:// URL such as 'redis://127.0.0.1:6379' (got ${show(value)}).`,
  redisClient: (value: unknown) => `option "store.client" must be an ioredis Redis or Cluster instance (got ${show(value)}).`,
  redisPrefix: (value: unknown) =>
    `option "store.prefix" must be a string without "{" or "}" (each session key carries its own Cluster hash tag), e.g. 'sess:' (got ${show(value)}).`,
  redisOneConnection: (given: string[]) =>
    `options "store.${given.join('", "store.')}" each say how to connect to Redis; give only one of url, client, sentinels or cluster.`,
  redisSentinelName: () => `option "store.name" is required with "store.sentinels": the master name the sentinels monitor, e.g. 'mymaster'.`,
  redisReplicaTimeout: (replica: number, command: number) =>
    `option "store.replicaTimeout" (${replica} ms) must be shorter than "store.commandTimeout" (${command} ms), or a write waiting for a replica would time out as a failed command instead. Lower replicaTimeout or raise commandTimeout.`,
  redisExpiryEventsOff: () =>
    `Redis session store: something listens for 'expired' session events, but the store does not record what they need, so none will be reported. Set expiryEvents: true in the Redis store config of every node (each session then keeps a small marker key beside it).`,
  redisClusterDb: () => `option "store.db" cannot be used with "store.cluster": a Redis Cluster has only database 0.`,
  postgresTable: (value: unknown) =>
    `option "store.table" must be a table name, optionally schema-qualified: letters, digits and "_", not starting with a digit, e.g. 'sessions' or 'auth.sessions' (got ${show(value)}).`,
  postgresTableMissing: (table: string, ddl: string) =>
    `The session table ${JSON.stringify(table)} does not exist. Create it with the SQL below, or set store.createTable to true to have it created at start-up:\n${ddl}`,
  postgresOneConnection: () => `options "store.connectionString" and "store.pool" each say how to reach PostgreSQL; give only one.`,
  metricsOption: (value: unknown) =>
    `option "metrics" must be true, false, or an object such as { prefix: 'myapp_session_' } or { registry: new Registry() } from prom-client (got ${show(value)}).`,
  metricsRegistry: (value: unknown) =>
    `option "metrics.registry" must be a prom-client Registry, e.g. new Registry() or prom-client's register (got ${show(value)}). Drop it to use prom-client's default registry.`,
  metricsPrefix: (value: unknown) =>
    `option "metrics.prefix" must start a Prometheus metric name: letters, digits, "_" and ":", not starting with a digit, e.g. 'myapp_session_' (got ${show(value)}).`,
  metricTaken: (name: string) =>
    `option "metrics": the registry already holds a metric named "${name}" of another kind or with other labels, so the session metrics cannot be registered there. Set metrics.prefix to another prefix (e.g. 'myapp_session_'), or give metrics.registry a registry of its own.`,
  internalError: () =>
    `The session layer failed unexpectedly; nothing about it was stored. This is a bug in the application, a custom session store or nestjs-session-sync: the server log has the details.`,
  storePingFailed: (kind: string, detail?: string) => `The session store (${kind}) failed its ping${detail ? `: ${detail}` : ''}.`,
  pingTimeout: (timeout: number) => `no answer within ${timeout} ms (the module's storeTimeout)`,
  legacySecret: (value: unknown) =>
    `option "legacy.secret" must be the express-session secret: a non-empty string, or a non-empty array of them as express-session was given (got ${show(Array.isArray(value) || typeof value !== 'string' ? value : 'an empty string')}).`,
  legacyDriver: (path: string, expected: string, value: unknown) => `option "${path}" must be ${expected} (got ${show(value)}).`,
  legacyForeignOption: (member: string, store: string) =>
    `option "legacy.${member}" does not apply to "legacy.store" ${show(store)}. Remove it, or set legacy.store to the store it belongs to.`,
  legacyOneConnection: (a: string, b: string) => `options "legacy.${a}" and "legacy.${b}" each say how to reach the old sessions; give only one.`,
  legacyNeedsConnection: (store: string, moduleStore: string, own: string) =>
    `option "legacy" reads ${store} sessions, but the module's store is ${moduleStore}, which has no connection to share. Give legacy.${own} so the old sessions can be read.`,
  legacyNeedsCookie: (transport: string) =>
    `option "legacy" takes over express-session's cookie, but "transport" is ${show(transport)}, so no cookie could be handed out in its place. Set transport to 'cookie' or 'both', or remove "legacy".`,
  legacySameCookie: (name: string) =>
    `option "legacy.cookie.name" and "cookie.name" are both ${show(name)}: the old and the new cookie must have different names, or the module could not tell them apart. Give this module's cookie another name (the default is 'sid').`,
  legacyUnreadable: (key: string, problem: string) =>
    `The express-session session ${key} could not be taken over: ${problem}. It was removed; its user starts anonymous.`,
  legacyPutBackFailed: (key: string, detail: string) =>
    `The express-session session ${key} was taken but could not be created here, nor put back: ${detail}. Its user starts anonymous.`,
  unknownOption: (path: string) => `option "${path}" is not a known option. Check its spelling against the SessionModuleOptions documentation.`,
  configInvalid: (problems: string[]) =>
    `SessionModule: ${problems.length === 1 ? problems[0] : `${problems.length} problems with the options:\n  - ${problems.join('\n  - ')}`}`,

  fastifySessionTaken: () =>
    `Fastify requests already have a "session" property (another session plugin, such as @fastify/session?), so SessionModule leaves it alone: read the session with @Session() or from request.raw.session. Register only one session library.`,
  credentialLate: () =>
    `A session changed after its streamed response had sent its headers, so the client could not be given its new credential (a new or rotated id, a resealed cookie or a new JWT). Change the session before the response starts streaming.`,
  notSealed: () => `The cookie store holds no sealed session for the id being handed out.`,
  reservedField: (name: string) =>
    `Session field "${name}" is reserved (it names a Session method or property, or would touch the prototype). Store your value under another name.`,
  storeUnavailable: (kind: string, detail?: string) =>
    `The session store (${kind}) is not answering${detail ? `: ${detail}` : ''}, so this request cannot use its session. Try again shortly.`,
  unsupported: (kind: string, operation: string) =>
    `The ${kind} session store cannot ${operation}. Choose a server-side store (memory, file, redis or postgres) for this.`,
  notSignedIn: () => 'Sign-in required: this route needs a signed-in session.',
  fieldNotStorable: (name: string, store: string) =>
    `Session field "${name}" holds a string the ${store} session store cannot keep (a NUL character or an unpaired UTF-16 surrogate); nothing was written.`,
  userIdInvalid: (problem: string, position: number) =>
    `The user id cannot be kept exactly: it holds ${problem} at position ${position}, which a store would have to drop or replace (so two different users could share one index, lock or revocation). User ids must be well-formed Unicode without NUL characters. Nothing was written; refuse or normalise such a value where it enters the application.`,
  tooManyFields: (count: number, max: number) =>
    `The session would hold ${count} fields, over the limit of ${max} top-level fields per session. Nothing was saved; the client keeps its previous session. Keep many values under one field (an object or an array) rather than one field each.`,
  fieldNotJson: (name: string) =>
    `Session field "${name}" cannot be stored: its value is not JSON-serialisable. Store plain objects, arrays, strings, numbers, booleans or null.`,
  fileDirectory: (directory: string, problem: string) =>
    `option "store.directory" is ${show(directory)}, which the file session store cannot use: ${problem}. Make it a directory that the user running the application can create and write (e.g. mkdir -p '${directory}' && chmod 700 '${directory}'), or choose another path.`,
  fileInvalidId: () =>
    `The file session store refused a session id this library did not generate (ids are 43 base64url characters, made by generateSessionId()); nothing was written.`,
  fileLockTimeout: (maskedId: string, timeout: number) =>
    `session ${maskedId} stayed locked by another process for ${timeout} ms (if the disk is slow or busy, raise store.lockTimeout)`,
  fileSystemFailed: (maskedId: string, detail: string) =>
    `the file system failed on session ${maskedId} (${detail}; check the permissions and free space of the store's directory)`,
  fileLockNotReleased: (maskedId: string, detail: string) =>
    `File session store: could not release the lock of session ${maskedId} (${detail}); it will be taken over once stale.`,
  fileUnreadable: (maskedId: string, problem: string) => `Session ${maskedId} in the file store ${problem}; treating it as absent.`,
  fileSweepFailed: (detail: string) => `File session store: sweeping expired sessions failed (${detail}); the next sweep will try again.`,
  userLockTimeout: (holder: string, timeout: number) =>
    `the sign-in lock of one user stayed held by ${holder} for ${timeout} ms (if sign-ins are slow, raise store.lockTimeout)`,
  fileUserLockFailed: (detail: string) =>
    `the file system failed on the sign-in lock of one user (${detail}; check the permissions and free space of the store's directory)`,
  fileUserLockNotReleased: (detail: string) =>
    `File session store: could not release the sign-in lock of one user (${detail}); it will be taken over once stale.`,
  postgresUserLockFailed: (detail: string) => `the connection that holds the sign-in locks of users failed (${detail})`,
  postgresUserLockNotReleased: (detail: string) =>
    `PostgreSQL session store: could not release the sign-in lock of one user (${detail}); its connection was closed, which frees it.`,
  postgresColumnMissing: (table: string, column: string, alter: string) =>
    `The session table ${JSON.stringify(table)} has no column "${column}" (it was created by an earlier version). Add it with the SQL below, or set store.createTable to true to have it added at start-up:\n${alter}`,
} as const;

/** What a client gets for an error: the status and its reason phrase, as Nest's own exceptions write them. */
interface HttpAnswer {
  readonly status: number;
  readonly error: string;
}

const INTERNAL_ERROR: HttpAnswer = { status: 500, error: 'Internal Server Error' };

/**
 * The HTTP answer to every code the library throws, in one place (the README's table of codes
 * follows it). Bad input is a 4xx, never a 5xx; a 503 means only that the store failed or was too
 * slow, so a client may retry; a code not listed here (a custom store's own) is a 500.
 */
const HTTP_ANSWERS: Readonly<Record<string, HttpAnswer>> = {
  // Thrown at start-up, before the application serves anything.
  SESSION_CONFIG: INTERNAL_ERROR,
  SESSION_RESERVED_FIELD: { status: 400, error: 'Bad Request' },
  SESSION_FIELD_NOT_JSON: { status: 400, error: 'Bad Request' },
  SESSION_FIELD_NOT_STORABLE: { status: 400, error: 'Bad Request' },
  SESSION_USER_ID_INVALID: { status: 400, error: 'Bad Request' },
  SESSION_TOO_MANY_FIELDS: { status: 413, error: 'Payload Too Large' },
  SESSION_TOO_LARGE: { status: 413, error: 'Payload Too Large' },
  SESSION_NOT_SIGNED_IN: { status: 401, error: 'Unauthorized' },
  SESSION_LIMIT_REACHED: { status: 409, error: 'Conflict' },
  SESSION_STORE_UNAVAILABLE: { status: 503, error: 'Service Unavailable' },
  SESSION_STORE_UNSUPPORTED: { status: 501, error: 'Not Implemented' },
  // A store refusing what only a bug would hand it: an id the library did not generate (file
  // store), a credential for a session it did not seal (cookie store).
  SESSION_INVALID_ID: INTERNAL_ERROR,
  SESSION_NOT_SEALED: INTERNAL_ERROR,
  SESSION_INTERNAL_ERROR: INTERNAL_ERROR,
};

function httpAnswerOf(code: string): HttpAnswer {
  return Object.hasOwn(HTTP_ANSWERS, code) ? HTTP_ANSWERS[code] : INTERNAL_ERROR;
}

/**
 * Base class of the library's errors; `code` is stable, the message may change. Each is an
 * HttpException with the status its code has in HTTP_ANSWERS, so Nest's exception filter renders
 * it as it is, with the body `{ statusCode, error, code, message }`.
 *
 * @example
 * ```ts
 * try {
 *   return await this.sessions.list(userId);
 * } catch (error) {
 *   // The cookie store keeps no index of a user's sessions: show none rather than answer 501.
 *   if (error instanceof SessionError && error.code === 'SESSION_STORE_UNSUPPORTED') return [];
 *   throw error; // any SessionError is its own HTTP answer
 * }
 * ```
 */
export class SessionError extends HttpException {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    const { status, error } = httpAnswerOf(code);
    super({ statusCode: status, error, code, message }, status, options);
  }
}

/** A bad option: thrown at start-up, before the application serves anything. */
export class SessionConfigError extends SessionError {
  declare readonly code: 'SESSION_CONFIG';

  constructor(readonly problems: string[]) {
    super('SESSION_CONFIG', SessionMessages.configInvalid(problems));
  }
}

/**
 * Writing a field whose name is reserved (`id`, `save`, `__proto__`…). An HTTP 400, because the
 * name often comes from input (a JSON body copied into the session): the client gets a clear
 * answer, never a 500.
 */
export class SessionReservedFieldError extends SessionError {
  declare readonly code: 'SESSION_RESERVED_FIELD';

  constructor(readonly field: string) {
    super('SESSION_RESERVED_FIELD', SessionMessages.reservedField(field));
  }
}

/** A field whose value JSON cannot carry (a BigInt, a cycle): a 400, since the value is input. */
export class SessionFieldNotJsonError extends SessionError {
  declare readonly code: 'SESSION_FIELD_NOT_JSON';

  constructor(readonly field: string) {
    super('SESSION_FIELD_NOT_JSON', SessionMessages.fieldNotJson(field));
  }
}

/** A value JSON carries but the store cannot hold (jsonb: U+0000, lone surrogates). A 400: it is input. */
export class SessionFieldNotStorableError extends SessionError {
  declare readonly code: 'SESSION_FIELD_NOT_STORABLE';

  constructor(
    readonly field: string,
    storeKind: string,
  ) {
    super('SESSION_FIELD_NOT_STORABLE', SessionMessages.fieldNotStorable(field, storeKind));
  }
}

/**
 * A user id a store could not keep exactly (an unpaired UTF-16 surrogate, a NUL): a 400, whether
 * it came from a session's `userKey` field or from a `SessionService` or store call. Nothing is
 * written.
 */
export class SessionUserIdInvalidError extends SessionError {
  declare readonly code: 'SESSION_USER_ID_INVALID';

  constructor(problem: string, position: number) {
    super('SESSION_USER_ID_INVALID', SessionMessages.userIdInvalid(problem, position));
  }
}

/**
 * A write that would grow a session past `MAX_SESSION_FIELDS` top-level fields: a 413, like any
 * input too large to take. Nothing is written, so the client keeps its previous session.
 */
export class SessionTooManyFieldsError extends SessionError {
  declare readonly code: 'SESSION_TOO_MANY_FIELDS';

  constructor(count: number, max: number) {
    super('SESSION_TOO_MANY_FIELDS', SessionMessages.tooManyFields(count, max));
  }
}

/**
 * The store failed or did not answer in time: a 503, which a client may retry. `cause` keeps the
 * driver's error for the log; the body never shows it, since it can name hosts and ports.
 */
export class SessionStoreUnavailableError extends SessionError {
  declare readonly code: 'SESSION_STORE_UNAVAILABLE';

  constructor(
    readonly storeKind: string,
    cause?: unknown,
    detail?: string,
  ) {
    super('SESSION_STORE_UNAVAILABLE', SessionMessages.storeUnavailable(storeKind, detail), { cause });
  }
}

/** An operation a store declares it cannot honour (listing users' sessions on a cookie store…). A 501. */
export class SessionStoreUnsupportedError extends SessionError {
  declare readonly code: 'SESSION_STORE_UNSUPPORTED';

  constructor(storeKind: string, operation: string) {
    super('SESSION_STORE_UNSUPPORTED', SessionMessages.unsupported(storeKind, operation));
  }
}

/** A guarded route reached without a signed-in session: what `SessionGuard` answers with, a 401. */
export class SessionNotSignedInError extends SessionError {
  declare readonly code: 'SESSION_NOT_SIGNED_IN';

  constructor() {
    super('SESSION_NOT_SIGNED_IN', SessionMessages.notSignedIn());
  }
}

/**
 * A session too large for the client to carry (the cookie store, a sealed token) or for the
 * memory store to hold (larger than its whole `maxBytes`): a 413, like any input too large to
 * take. Nothing is written, so the client keeps its previous session.
 */
export class SessionTooLargeError extends SessionError {
  declare readonly code: 'SESSION_TOO_LARGE';

  constructor(bytes: number, limit: number, carrier = 'sealed session', message = SessionMessages.sessionTooLarge(bytes, limit, carrier)) {
    super('SESSION_TOO_LARGE', message);
  }
}

/**
 * A sign-in refused by `maxSessionsPerUser` with `onMaxSessions: 'reject'`: a 409, since the
 * request is fine but conflicts with the sessions the user already has. Nothing is written.
 */
export class SessionLimitReachedError extends SessionError {
  declare readonly code: 'SESSION_LIMIT_REACHED';

  constructor(max: number) {
    super('SESSION_LIMIT_REACHED', SessionMessages.sessionLimitReached(max));
  }
}

/**
 * A session operation failed with something that is neither bad input nor a store failure: a
 * bug, in the application, a custom store or this library. A 500 whose body shows none of the
 * failure's text, which can name hosts, paths or data; `cause` keeps the failure for the log.
 */
export class SessionInternalError extends SessionError {
  declare readonly code: 'SESSION_INTERNAL_ERROR';

  constructor(cause?: unknown) {
    super('SESSION_INTERNAL_ERROR', SessionMessages.internalError(), { cause });
  }
}

/**
 * What any error from a session operation becomes for the HTTP layer (the load, the commit
 * before the response, Session methods, SessionService). A SessionError or any other
 * HttpException is its own answer; anything else is a bug, a SessionInternalError. A driver's
 * error never gets here as it is: the store bound turns it into SessionStoreUnavailableError
 * (stores/bounded-store.ts).
 */
export function toHttpException(error: unknown): HttpException {
  return error instanceof HttpException ? error : new SessionInternalError(error);
}
