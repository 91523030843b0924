export { bothInsideAtOnce, describeSessionStoreConformance, type ConformanceCapability, type ConformanceSetup } from './store-conformance.js';
export type { StoreDump } from './at-rest-conformance.js';
export type { ConformanceAssertion, ConformanceFramework, ConformanceMatchers, ConformanceNegatable } from './test-framework.js';
