import { defineConfig } from 'vitest/config';

// As `nest new` writes it, but without `globals: true`: map.store.spec.ts imports its test
// functions from 'vitest' and hands them to the conformance suite, and with no globals around,
// the suite can only pass if it runs on the functions it was given.
// (vitest.globals.config.ts runs the other case, with the template's globals.)
export default defineConfig({
  resolve: { tsconfigPaths: true },
  test: {
    root: './',
    include: ['**/*.spec.ts'],
  },
});
