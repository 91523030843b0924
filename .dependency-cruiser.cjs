/**
 * Import rules, checked by `npm run lint:deps` (in CI). lib/ is the published package: it must
 * have no import cycle (a cycle hides which concept depends on which, and breaks at load time as
 * soon as one side runs code at import) and must not reach into the sample, the tests or the
 * benchmarks, which do not ship.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle in lib/. Move the shared piece both sides need into a file of its own.',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'lib-stands-alone',
      severity: 'error',
      comment: 'lib/ is the published package: it cannot import the sample, the tests or the benchmarks.',
      from: { path: '^lib/' },
      to: { path: '^(sample|test|benchmarks)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count too: a cycle of types still ties the concepts together.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
