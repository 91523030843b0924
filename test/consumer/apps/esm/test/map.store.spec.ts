import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSessionStoreConformance } from 'nestjs-session-sync/testing';
import { MapStore } from '../src/map.store.js';

describeSessionStoreConformance('MapStore', {
  createStore: () => new MapStore(),
  unsupported: ['destroyByUser', 'expiryEvents'],
  framework: { describe, it, expect, beforeAll, afterAll },
});
