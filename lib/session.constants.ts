/** Injection token of the options after validation and defaults (a {@link ResolvedSessionOptions}). */
export const SESSION_OPTIONS = 'SESSION:OPTIONS';

/** Injection token of the module's {@link SessionMetrics}, or null when the `metrics` option is off. */
export const SESSION_METRICS = 'SESSION:METRICS';

/** Metadata key set by `@AllowAnonymous()`. */
export const ALLOW_ANONYMOUS_KEY = 'SESSION:ALLOW_ANONYMOUS';

/**
 * Names that data fields may never take: the Session object's own members (so property-style
 * data can never shadow a method Passport or a controller calls) and the prototype keys (so no
 * input can reach an object's prototype).
 */
export const RESERVED_FIELDS: ReadonlySet<string> = new Set([
  'id',
  'isNew',
  'regenerate',
  'rotateId',
  'destroy',
  'reload',
  'save',
  'touch',
  'toJSON',
  'cookie',
  '__proto__',
  'constructor',
  'prototype',
]);
