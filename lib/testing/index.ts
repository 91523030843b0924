export {
  bothInsideAtOnce,
  describeSessionStoreConformance,
  type ConformanceCapability,
  type ConformanceSetup,
} from './store-conformance.js';
