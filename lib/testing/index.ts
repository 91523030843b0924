export { bothInsideAtOnce, describeSessionStoreConformance, type ConformanceCapability, type ConformanceSetup } from './store-conformance.js';
export type { ConformanceAssertion, ConformanceFramework, ConformanceMatchers, ConformanceNegatable } from './test-framework.js';
