/**
 * Import rules, checked by `npm run lint:deps` (in CI). lib/ is the published package: it must
 * have no import cycle (a cycle hides which concept depends on which, and breaks at load time as
 * soon as one side runs code at import) and must not reach into the sample, the tests or the
 * benchmarks, which do not ship. Inside lib/, imports point one way (CONTRIBUTING.md, "Which way
 * imports point"): the module and its services use the pipeline, the pipeline uses the stores,
 * crypto and transports, and those use only the leaves (errors, validation, constants).
 * @type {import('dependency-cruiser').IConfiguration}
 */
/** The files built on the pipeline: the module and what it provides to applications. */
const UPPER = 'module|module-definition|service|guard|decorators|health|metrics';

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
    {
      name: 'stores-below-the-pipeline',
      severity: 'error',
      comment:
        'A store knows the store contract, its toolkit, crypto and the leaves (errors, validation, constants), never the pipeline, the options or the module: what it needs of them belongs in the contract or its own config.',
      from: { path: '^lib/stores/' },
      to: {
        path: ['^lib/(pipeline|transports|testing)/', '^lib/index\\.ts$', `^lib/session\\.(${UPPER}|options|options-classes|options-rules)\\.ts$`],
      },
    },
    {
      name: 'crypto-and-transports-are-leaves',
      severity: 'error',
      comment: 'Crypto and the transports read and write credentials; they know nothing of the pipeline, the stores or the module.',
      from: { path: '^lib/(crypto|transports)/' },
      to: { path: ['^lib/(pipeline|stores|testing)/', '^lib/index\\.ts$', `^lib/session\\.(${UPPER})\\.ts$`] },
    },
    {
      name: 'pipeline-below-the-module',
      severity: 'error',
      comment: 'The pipeline runs one request; the module, the guard, the decorators and the services are built on it, not the other way round.',
      from: { path: '^lib/pipeline/' },
      to: { path: ['^lib/testing/', '^lib/index\\.ts$', `^lib/session\\.(${UPPER})\\.ts$`] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count too: a cycle of types still ties the concepts together.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
