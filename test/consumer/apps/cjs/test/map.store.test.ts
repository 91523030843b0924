import { after, before, describe, it as nodeIt } from 'node:test';
import { expect } from 'expect';
import { describeSessionStoreConformance } from 'nestjs-session-sync/testing';
import { MapStore } from '../src/map.store.js';

describeSessionStoreConformance('MapStore', {
  createStore: () => new MapStore(),
  unsupported: ['destroyByUser', 'expiryEvents'],
  framework: {
    describe,
    // node:test takes its options before the body; jest and Vitest take a timeout after it.
    it: (name, body, timeout) => nodeIt(name, { timeout }, body),
    expect,
    beforeAll: before,
    afterAll: after,
  },
});
