import { defineConfig } from 'vitest/config';

// The configuration `nest new` writes (`globals: true`), for the spec that passes no test
// functions: the conformance suite takes them from the globals, as it does under jest.
export default defineConfig({
  resolve: { tsconfigPaths: true },
  test: {
    globals: true,
    root: './',
    include: ['**/*.globals-spec.ts'],
  },
});
