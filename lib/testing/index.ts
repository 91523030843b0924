export {
  describeSessionStoreConformance,
  type ConformanceCapability,
  type ConformanceSetup,
} from './store-conformance.js';
