import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { MemoryStore, SessionStore } from '../../lib/index.js';
import { AppModule } from '../../sample/app.module.js';
import { closeAll, cookieHeader, createFixtureApp, createPlatformApp, dataOf, PLATFORMS, requireSid } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * Anonymous clients must not grow the default memory store without limit (unbounded, 1,500
 * `PUT /prefs/big` of 95 KB each took 238 MB). The same flood at small scale, over HTTP: the
 * store's byte bound holds, and no request is answered with a 5xx.
 */

/** Small enough for a few sessions of {@link VALUE}: about six fit. */
const MAX_BYTES = 128 * 1024;
const VALUE = 'x'.repeat(10_000);
/** One value the store could not hold even alone, yet under the platforms' body limits (100 kB on Express). */
const TOO_LARGE = 'x'.repeat(80_000);

function memoryStoreOf(app: FixtureApp): MemoryStore {
  expect(app.store).toBeInstanceOf(MemoryStore);
  return app.store as MemoryStore;
}

describe.each(PLATFORMS)('the memory store under a flood of anonymous writes (%s)', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  const start = async (options: Parameters<typeof createFixtureApp>[0]) => {
    const app = await createFixtureApp(options, { platform });
    apps.push(app);
    return app;
  };

  it('keeps the bytes it holds within maxBytes, answers every write, and keeps the most recent sessions', async () => {
    const app = await start({ store: { type: 'memory', maxBytes: MAX_BYTES } });
    const store = memoryStoreOf(app);
    const cookies: string[] = [];
    const statuses = new Set<number>();

    // Ten at a time, as a client flooding the server would send them.
    for (let batch = 0; batch < 6; batch += 1) {
      const writes = Array.from({ length: 10 }, (_, i) =>
        app
          .http()
          .post('/set')
          .send({ big: VALUE, n: batch * 10 + i }),
      );
      for (const res of await Promise.all(writes)) {
        statuses.add(res.status);
        cookies.push(requireSid(res));
      }
      expect(store.heldBytes).toBeLessThanOrEqual(MAX_BYTES);
    }

    expect([...statuses]).toEqual([200]);
    expect(store.size).toBeGreaterThan(0);
    expect(store.size).toBeLessThan(60);
    await expect(dataOf(app, cookies[0])).resolves.toEqual({});
    const latest = await app.http().post('/set').send({ big: VALUE, n: 'latest' }).expect(200);
    await expect(dataOf(app, requireSid(latest))).resolves.toMatchObject({ n: 'latest' });
  });

  it('answers 413 to a session larger than the whole bound, new or grown, and keeps what it held', async () => {
    const app = await start({ store: { type: 'memory', maxBytes: MAX_BYTES } });
    const store = memoryStoreOf(app);
    const cookie = requireSid(await app.http().post('/set').send({ big: VALUE, n: 1 }).expect(200));
    const held = store.heldBytes;

    const fresh = await app.http().post('/set').send({ big: TOO_LARGE });
    const grown = await app.http().post('/set').set('Cookie', cookieHeader(cookie)).send({ more: TOO_LARGE });

    for (const res of [fresh, grown]) {
      expect(res.body).toMatchObject({ statusCode: 413, code: 'SESSION_TOO_LARGE', message: expect.stringContaining('store.maxBytes') });
    }
    expect(store.heldBytes).toBe(held);
    await expect(dataOf(app, cookie)).resolves.toEqual({ big: VALUE, n: 1 });
  });

  it('warns once, through the module logger, when NODE_ENV is production', async () => {
    const lines: string[] = [];
    const keep = (message: unknown) => void lines.push(String(message));
    const logger: LoggerService = { log: keep, warn: keep, error: keep };
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      const app = await start({ store: { type: 'memory', maxBytes: MAX_BYTES }, logger });
      await app.http().post('/set').send({ n: 1 }).expect(200);
      await app.http().post('/set').send({ n: 2 }).expect(200);
    } finally {
      // Assigning undefined would leave the string 'undefined' behind.
      if (nodeEnv === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = nodeEnv;
    }

    const warnings = lines.filter((line) => line.includes('memory session store'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(String(MAX_BYTES));
  });
});

describe('the sample application on its default store', () => {
  it('runs on a memory store bounded to 64 MiB, and counts what PUT /prefs/:key writes', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forEnv({ SESSION_SECRET: 'memory-bound-e2e-secret-0123456789abcdef' })],
    }).compile();
    const app = await createPlatformApp(moduleRef, 'express');
    try {
      const store = moduleRef.get(SessionStore);
      expect(store).toBeInstanceOf(MemoryStore);
      const memory = store as MemoryStore;

      await request(app.getHttpServer()).put('/prefs/big').send({ value: VALUE }).expect(200);

      expect(memory.maxBytes).toBe(64 * 1024 * 1024);
      expect(memory.heldBytes).toBeGreaterThanOrEqual(2 * VALUE.length);
    } finally {
      await app.close();
    }
  });
});
