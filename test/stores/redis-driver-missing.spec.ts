import { describe, expect, it, jest } from '@jest/globals';

/**
 * ioredis is an optional peer dependency: an application that never picks the Redis store does
 * not need it, and one that does without having installed it gets an error saying what to install.
 */

// Stands for an installation without ioredis: importing it fails as a missing package would.
jest.unstable_mockModule('ioredis', () => {
  throw Object.assign(new Error("Cannot find package 'ioredis'"), { code: 'ERR_MODULE_NOT_FOUND' });
});

describe('RedisStore without ioredis installed', () => {
  it('fails with an error that says to install ioredis', async () => {
    const { createSessionStore } = await import('../../lib/stores/index.js');

    await expect(createSessionStore({ type: 'redis', url: 'redis://127.0.0.1:1' })).rejects.toThrow(/npm install ioredis/);
  });

  it('still builds the memory store', async () => {
    const { createSessionStore, MemoryStore } = await import('../../lib/stores/index.js');

    const store = await createSessionStore({ type: 'memory' });

    expect(store).toBeInstanceOf(MemoryStore);
    (store as InstanceType<typeof MemoryStore>).onApplicationShutdown();
  });
});
