import { describeSessionStoreConformance } from 'nestjs-session-sync/testing';
import { MapStore } from '../src/map.store.js';

// Run with vitest.globals.config.ts: no `framework` setting, the suite finds Vitest's globals.
describeSessionStoreConformance('MapStore', {
  createStore: () => new MapStore(),
  unsupported: ['destroyByUser', 'expiryEvents'],
});
