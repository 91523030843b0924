import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import { afterEach, describe, expect, it } from '@jest/globals';
import { hashSessionId, MemoryStore, SessionStoreUnavailableError } from '../../lib/index.js';
import type { StoredSession } from '../../lib/index.js';
import { closeAll, cookieHeader, createFixtureApp, idOf, PLATFORMS, requireSid } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * The `logger` option: the module's warnings (the pipeline's and the store's) go to the logger
 * the application gives, and no log line ever carries a raw session id, only its hash.
 */

/** A memory store whose reads can be made to fail, as a store in an outage would. */
class FlakyStore extends MemoryStore {
  failing = false;

  override async get(id: string): Promise<StoredSession | null> {
    if (this.failing) throw new SessionStoreUnavailableError('memory', new Error('connection reset'));
    return super.get(id);
  }
}

function capturingLogger(): LoggerService & { lines: string[] } {
  const lines: string[] = [];
  const keep = (message: unknown) => void lines.push(String(message));
  return { lines, log: keep, warn: keep, error: keep };
}

describe.each(PLATFORMS)('the logger option (%s)', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  it("receives the pipeline's warning about a session that could not be loaded, naming the session by its hash only", async () => {
    const logger = capturingLogger();
    const store = new FlakyStore();
    const app = await createFixtureApp({ store, logger }, { platform });
    apps.push(app);
    const cookie = requireSid(await app.http().post('/set').send({ theme: 'dark' }).expect(200));
    store.failing = true;

    await app.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(503);

    const id = idOf(cookie);
    expect(logger.lines.some((line) => line.includes('Could not load session') && line.includes(hashSessionId(id)))).toBe(true);
    expect(logger.lines.join('\n')).not.toContain(id);
  });

  it("is handed to the store, so the store's own warnings reach it too (a file store finding a corrupt session file)", async () => {
    const logger = capturingLogger();
    const directory = await mkdtemp(join(tmpdir(), 'nss-logging-'));
    try {
      const app = await createFixtureApp({ store: { type: 'file', directory }, logger }, { platform });
      apps.push(app);
      const cookie = requireSid(await app.http().post('/set').send({ theme: 'dark' }).expect(200));
      const id = idOf(cookie);
      // The file store names the file after the session's key, and shards it by a hash of that.
      const key = hashSessionId(id);
      const hash = createHash('sha256').update(key).digest('hex');
      await writeFile(join(directory, 'sessions', hash.slice(0, 2), hash.slice(2, 4), `${key}.json`), '{ not json');

      await app.http().get('/read').set('Cookie', cookieHeader(cookie)).expect(200, { data: {}, isNew: true });

      expect(logger.lines.some((line) => line.includes(hashSessionId(id)))).toBe(true);
      expect(logger.lines.join('\n')).not.toContain(id);
    } finally {
      await closeAll(apps);
      await rm(directory, { recursive: true, force: true });
    }
  });
});
