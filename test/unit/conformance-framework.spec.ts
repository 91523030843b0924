import { describe, expect, it } from '@jest/globals';
import { MemoryStore } from '../../lib/stores/index.js';
import { describeSessionStoreConformance, type ConformanceFramework } from '../../lib/testing/index.js';

/**
 * A framework that only records what the suite declares on it, as Vitest or node:test would
 * collect it, without running anything.
 */
function recordingFramework() {
  const recorded = { suites: [] as string[], cases: [] as string[], hooks: 0 };
  const framework: ConformanceFramework = {
    describe: (name, body) => {
      recorded.suites.push(name);
      body();
    },
    it: (name) => void recorded.cases.push(name),
    beforeAll: () => void recorded.hooks++,
    afterAll: () => void recorded.hooks++,
    expect: () => {
      throw new Error('nothing runs while the suite is declared');
    },
  };
  return { framework, recorded };
}

const FRAMEWORK_GLOBALS = ['describe', 'it', 'expect', 'beforeAll', 'afterAll'] as const;

/** Runs `body` with jest's injected globals taken away, as in a Vitest run without `globals: true`. */
function withoutGlobals(body: () => void): void {
  const scope = globalThis as unknown as Record<string, unknown>;
  const saved = FRAMEWORK_GLOBALS.map((name) => [name, scope[name]] as const);
  for (const name of FRAMEWORK_GLOBALS) delete scope[name];
  try {
    body();
  } finally {
    for (const [name, value] of saved) scope[name] = value;
  }
}

describe('describeSessionStoreConformance test framework', () => {
  it('declares every case on the framework it is given, not on the globals', () => {
    const { framework, recorded } = recordingFramework();
    withoutGlobals(() => describeSessionStoreConformance('Given', { createStore: () => new MemoryStore(), framework }));

    expect(recorded.suites[0]).toBe('Given conformance');
    expect(recorded.suites).toContain('reading and creating');
    expect(recorded.cases).toContain('returns null for an id it has never seen');
    expect(recorded.cases.length).toBeGreaterThan(40);
    expect(recorded.hooks).toBe(2);
  });

  it('without a framework and without globals, fails at once saying what to pass', () => {
    let thrown: unknown;
    withoutGlobals(() => {
      try {
        describeSessionStoreConformance('Bare', { createStore: () => new MemoryStore() });
      } catch (error) {
        thrown = error;
      }
    });

    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as Error).message).toContain('no test framework functions (describe, it, expect, beforeAll, afterAll)');
    expect((thrown as Error).message).toContain(`import { describe, it, expect, beforeAll, afterAll } from 'vitest'`);
  });

  it('names only the functions a given framework lacks', () => {
    const { framework } = recordingFramework();
    const partial = { ...framework, expect: undefined } as unknown as ConformanceFramework;

    expect(() => describeSessionStoreConformance('Partial', { createStore: () => new MemoryStore(), framework: partial })).toThrow(
      'no test framework functions (expect)',
    );
  });
});
