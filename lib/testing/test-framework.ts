/**
 * The few functions of a test framework the conformance suite calls. jest, Vitest and (with a
 * small adapter) node:test all provide them, so the suite imports none of them: a caller passes
 * its own, or the suite takes the globals a framework injected. Importing `@jest/globals` here
 * would tie every user to jest, and Vitest cannot load it.
 */

/** The matchers the suite uses: jest's and Vitest's `expect` both have them, with these meanings. */
export interface ConformanceMatchers {
  toBe(expected: unknown): unknown;
  toEqual(expected: unknown): unknown;
  toMatchObject(expected: object): unknown;
  toBeNull(): unknown;
  toBeUndefined(): unknown;
  toBeGreaterThan(expected: number): unknown;
  toContain(expected: unknown): unknown;
  toBeInstanceOf(expected: unknown): unknown;
  toThrow(expected?: unknown): unknown;
}

/** The matchers, and their negation (`not`). */
export interface ConformanceNegatable extends ConformanceMatchers {
  readonly not: ConformanceMatchers;
}

/** What `expect(value)` returns: the matchers, negated with `not`, and on promises. */
export interface ConformanceAssertion extends ConformanceNegatable {
  readonly resolves: ConformanceNegatable;
  readonly rejects: ConformanceNegatable;
}

/**
 * The test functions the suite runs on. Declared as methods, so a framework's own (wider)
 * signatures fit without casts.
 *
 * @example
 * ```ts
 * import { afterAll, beforeAll, describe, expect, it } from 'vitest';
 * const framework = { describe, it, expect, beforeAll, afterAll };
 * ```
 */
export interface ConformanceFramework {
  describe(name: string, body: () => void): unknown;
  /** `timeout` in milliseconds, as jest and Vitest take it; node:test needs an adapter (see the README). */
  it(name: string, body: () => Promise<void> | void, timeout?: number): unknown;
  beforeAll(body: () => Promise<void>): unknown;
  afterAll(body: () => Promise<void>): unknown;
  expect(actual: unknown): ConformanceAssertion;
}

const FRAMEWORK_FUNCTIONS = ['describe', 'it', 'expect', 'beforeAll', 'afterAll'] as const;

/** Message of the error thrown when neither an argument nor the globals give the suite its functions. */
export const frameworkMissing = (missing: readonly string[]): string =>
  `describeSessionStoreConformance: no test framework functions (${missing.join(', ')}). ` +
  `Pass them as the "framework" setting, e.g. with Vitest: ` +
  `import { describe, it, expect, beforeAll, afterAll } from 'vitest'; ` +
  `describeSessionStoreConformance('MyStore', { createStore, framework: { describe, it, expect, beforeAll, afterAll } }). ` +
  `Under jest (or Vitest with globals: true) they can be omitted.`;

/**
 * The framework to run on: the one given, or else the globals jest (and Vitest with
 * `globals: true`) install. Resolved when the suite is declared, so a missing function fails
 * at collection with a message that says what to pass, not halfway through a run.
 */
export function resolveFramework(given: ConformanceFramework | undefined): ConformanceFramework {
  const source = (given ?? globalThis) as unknown as Record<string, unknown>;
  const missing = FRAMEWORK_FUNCTIONS.filter((name) => typeof source[name] !== 'function');
  if (missing.length > 0) throw new TypeError(frameworkMissing(missing));
  return given ?? (source as unknown as ConformanceFramework);
}
