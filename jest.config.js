/**
 * NestJS 12 ships as ES modules, so the suite runs as ESM: ts-jest's default-esm preset, with
 * the `.js` suffixes of NodeNext imports mapped back to the TypeScript sources.
 * `npm test` starts jest with `--experimental-vm-modules`, which ESM in jest needs on Node 20.
 * @type {import('jest').Config}
 */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
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
  testTimeout: 30000,
};
