import { Inject } from '@nestjs/common';
import { SessionStore } from './stores/session-store.js';

/** Injection token of the options after validation and defaults (a {@link ResolvedSessionOptions}). */
export const SESSION_OPTIONS = 'SESSION:OPTIONS';

/**
 * Injects the validated options with their defaults (`ResolvedSessionOptions`). Beside its token
 * rather than with the other decorators: the classes that inject it (the guard, the middleware,
 * the events) are what `@Session()` depends on, so there it would close an import cycle.
 */
export const InjectSessionOptions = () => Inject(SESSION_OPTIONS);

/** Injects the store in use; the same as injecting `SessionStore` by type. */
export const InjectSessionStore = () => Inject(SessionStore);

/** Injection token of the module's {@link SessionMetrics}, or null when the `metrics` option is off. */
export const SESSION_METRICS = 'SESSION:METRICS';

/** Metadata key set by `@AllowAnonymous()`. */
export const ALLOW_ANONYMOUS_KEY = 'SESSION:ALLOW_ANONYMOUS';

/** The Session object's own members (`SessionMethods`): every other name is a data field. */
export const SESSION_MEMBER_NAMES: ReadonlySet<string> = new Set([
  'id',
  'isNew',
  'regenerate',
  'rotateId',
  'destroy',
  'reload',
  'save',
  'touch',
  'toJSON',
]);

/**
 * Names that data fields may never take: the Session object's own members (so property-style
 * data can never shadow a method Passport or a controller calls), `cookie` (express-session's
 * member, which code ported from it reads), and the prototype keys (so no input can reach an
 * object's prototype).
 */
export const RESERVED_FIELDS: ReadonlySet<string> = new Set([...SESSION_MEMBER_NAMES, 'cookie', '__proto__', 'constructor', 'prototype']);

/**
 * The most top-level data fields one session may hold. A request whose changes would grow a
 * session past it is refused with 413 `SESSION_TOO_MANY_FIELDS` before anything is written
 * (SPEC §3.13: a huge field count is bad input, never a 5xx); the same limit holds on every store.
 *
 * Why 1,000: sessions hold tens of fields, and a thousand is far past any honest use (many values
 * belong under one field, as an object or an array), while a client that can add a field per
 * request could otherwise grow a session without bound: every field costs a hash field on Redis,
 * a jsonb member in PostgreSQL and a line in every rewrite of a session file. It also keeps the
 * largest Redis script call, a whole session written on creation or rotation, at about 2,000
 * arguments, a quarter of the ~8,000 values Lua's `unpack()` can return (the scripts write in
 * chunks anyway, see redis.scripts.ts). Every built-in store holds a session of exactly this many
 * fields, created or committed in one call; the conformance suite checks it.
 */
export const MAX_SESSION_FIELDS = 1000;
