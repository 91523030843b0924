/**
 * NestJS 12 ships as ES modules, so the suite runs as ESM: ts-jest's default-esm preset, with
 * the `.js` suffixes of NodeNext imports mapped back to the TypeScript sources.
 * `npm test` starts jest with `--experimental-vm-modules`, which ESM in jest needs on Node 20.
 *
 * Three projects, one per kind of test, so each can run on its own (`npm run test:unit`,
 * `test:stores`, `test:e2e`) and `npm test` runs them all:
 * - unit: no server, no process; seconds.
 * - stores: each store against a real server (throwaway Redis and PostgreSQL), the conformance
 *   suite included, and the harness that starts those servers.
 * - e2e: applications over HTTP (in process and as processes), the browser, the fuzz test, the
 *   packed package and the consumer applications it is installed into.
 */
const shared = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  // test/consumer/apps/ holds templates of consumer applications, with their own package.json and
  // their own (Vitest, node:test) specs: the consumer e2e spec copies and runs them, jest must not.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/consumer/apps/'],
  modulePathIgnorePatterns: ['<rootDir>/test/consumer/apps/'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
};

/** @type {import('jest').Config} */
export default {
  testTimeout: 30000,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'] },
    { ...shared, displayName: 'stores', roots: ['<rootDir>/test/stores', '<rootDir>/test/support'] },
    {
      ...shared,
      displayName: 'e2e',
      roots: ['<rootDir>/test/e2e', '<rootDir>/test/browser', '<rootDir>/test/fuzz', '<rootDir>/test/package', '<rootDir>/test/consumer'],
    },
  ],
};
