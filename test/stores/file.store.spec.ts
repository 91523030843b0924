import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionConfigError, SessionError, SessionStoreUnavailableError } from '../../lib/session.errors.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { acquireFileLock } from '../../lib/stores/file/file.locks.js';
import { FileStore, type FileStoreOptions } from '../../lib/stores/file/index.js';
import { createSessionStore } from '../../lib/stores/index.js';
import type { ExpiredSession, SessionChange, StoredSession } from '../../lib/stores/session-store.js';
import { bothInsideAtOnce, describeSessionStoreConformance } from '../../lib/testing/index.js';
import { dumpDirectory } from '../fixtures/store-dumps.js';

const HOUR = 60 * 60_000;
const SECRET = 's'.repeat(32);

// ---- Helpers --------------------------------------------------------------------------------------

const temporaryDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nss-file-'));
  temporaryDirs.push(dir);
  return dir;
}

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(6).toString('hex')}`;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { visits: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

function change(set: Record<string, unknown>, overrides: Partial<SessionChange> = {}): SessionChange {
  return { set, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now(), ...overrides };
}

/** Where the store must keep a session: `sessions/<aa>/<bb>/<id>.json`, aabb from SHA-256 of the id. */
function shardOf(directory: string, id: string): string {
  const hash = sha256(id);
  return join(directory, 'sessions', hash.slice(0, 2), hash.slice(2, 4));
}
const sessionFile = (directory: string, id: string): string => join(shardOf(directory, id), `${id}.json`);
const lockFile = (directory: string, id: string): string => join(shardOf(directory, id), `${id}.lock`);
const userDir = (directory: string, userId: string): string => join(directory, 'users', sha256(userId));

const exists = (path: string): Promise<boolean> =>
  lstat(path).then(
    () => true,
    () => false,
  );
const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

/** Every path under `root` (relative) with what it is, its size, mtime, mode and content digest. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  async function walk(dir: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      const info = await lstat(path);
      const content = info.isFile() ? sha256((await readFile(path)).toString('latin1')) : '';
      entries[path.slice(root.length)] = `${info.isDirectory() ? 'dir' : 'file'}:${info.size}:${info.mtimeMs}:${info.mode}:${content}`;
      if (info.isDirectory()) await walk(path);
    }
  }
  await walk(root);
  return entries;
}

/** File names under `root` that are leftovers of writes and locks. */
async function leftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
      else if (/\.(tmp|lock|break|stale)$/.test(entry.name)) found.push(entry.name);
    }
  }
  await walk(root);
  return found;
}

/** A file written by the store's format, for ids a test plants by hand. */
function sessionText(overrides: Record<string, unknown> = {}): string {
  const now = Date.now();
  return JSON.stringify({ v: 1, c: now, s: now, e: now + HOUR, u: null, d: { planted: true }, ...overrides });
}

async function plant(directory: string, id: string, content: string): Promise<string> {
  const path = sessionFile(directory, id);
  await mkdir(shardOf(directory, id), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** Polls until `check` holds or `timeout` passes; returns whether it held. */
async function eventually(check: () => Promise<boolean>, timeout = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

/** A pid that belonged to a process which has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid!;
}

// Warnings go to a list, both to keep the output quiet and to check what they say.
const warnings: string[] = [];
beforeAll(() => {
  const collect = (message: unknown): void => void warnings.push(String(message));
  Logger.overrideLogger({ log: () => undefined, error: collect, warn: collect, debug: () => undefined, verbose: () => undefined });
});

afterAll(async () => {
  Logger.overrideLogger(new ConsoleLogger());
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

// ---- The contract -------------------------------------------------------------------------------

describeSessionStoreConformance('FileStore', {
  // A short sweep interval: the conformance expiry reports (150 ms lifetimes) come from the sweeper.
  createStore: async () => FileStore.open({ directory: await tempDir(), sweepInterval: 100 }),
  dump: (store) => dumpDirectory((store as FileStore).directory),
});

describe('FileStore', () => {
  const opened: FileStore[] = [];

  async function open(options: Partial<FileStoreOptions> = {}): Promise<FileStore> {
    const store = await FileStore.open({ directory: options.directory ?? (await tempDir()), ...options });
    opened.push(store);
    return store;
  }

  afterAll(async () => {
    await Promise.all(opened.map((store) => store.onApplicationShutdown()));
  });

  it('names itself "file" and is what createSessionStore builds from { type: "file", directory }', async () => {
    const directory = join(await tempDir(), 'created', 'here');

    const store = await createSessionStore({ type: 'file', directory });
    opened.push(store as FileStore);

    expect(store).toBeInstanceOf(FileStore);
    expect(store.kind).toBe('file');
    expect((store as FileStore).directory).toBe(directory);
    expect(await modeOf(directory)).toBe(0o700);
  });

  describe('file layout', () => {
    it('keeps a session in sessions/<aa>/<bb>/<id>.json (aabb from the SHA-256 of the id) as { v, c, s, e, u, d }', async () => {
      const store = await open();
      const userId = newUserId();
      const session = newSession({ data: { cart: ['a'], n: 2 }, userId });

      await store.create(session);

      const text = await readFile(sessionFile(store.directory, session.id), 'utf8');
      expect(JSON.parse(text)).toEqual({
        v: 1,
        c: session.createdAt,
        s: session.lastSeenAt,
        e: session.expiresAt,
        u: userId,
        d: { cart: ['a'], n: 2 },
      });
    });

    it('writes files with mode 0600 and directories with mode 0700', async () => {
      const directory = join(await tempDir(), 'store');
      const store = await open({ directory });
      const userId = newUserId();
      const session = newSession({ userId });
      await store.create(session);

      const shard = shardOf(directory, session.id);
      for (const dir of [directory, join(directory, 'sessions'), join(shard, '..'), shard, join(directory, 'users'), userDir(directory, userId)]) {
        expect({ dir, mode: await modeOf(dir) }).toEqual({ dir, mode: 0o700 });
      }
      expect(await modeOf(sessionFile(directory, session.id))).toBe(0o600);
      expect(await modeOf(join(userDir(directory, userId), session.id))).toBe(0o600);

      await store.commit(session.id, change({ more: true }));
      expect(await modeOf(sessionFile(directory, session.id))).toBe(0o600);
    });

    it("indexes a user's sessions as empty markers in users/<sha256 of the user id>/, moved and removed with the session", async () => {
      const store = await open();
      const [first, second] = [newUserId(), newUserId()];
      const session = newSession({ userId: first });
      await store.create(session);
      expect(await readdir(userDir(store.directory, first))).toEqual([session.id]);
      expect(await readFile(join(userDir(store.directory, first), session.id), 'utf8')).toBe('');

      await store.commit(session.id, change({}, { userId: second }));
      expect(await exists(userDir(store.directory, first))).toBe(false);
      expect(await readdir(userDir(store.directory, second))).toEqual([session.id]);

      const next = newSession({ userId: second });
      await store.rotate(session.id, next);
      expect(await readdir(userDir(store.directory, second))).toEqual([next.id]);
      expect(await exists(sessionFile(store.directory, session.id))).toBe(false);
      expect(await exists(sessionFile(store.directory, next.id))).toBe(true);

      await store.destroy(next.id);
      expect(await exists(sessionFile(store.directory, next.id))).toBe(false);
      expect(await readdir(join(store.directory, 'users'))).toEqual([]);
    });

    it('never lets a reader see a half-written file while large commits replace it', async () => {
      const store = await open();
      const session = newSession();
      await store.create(session);
      const path = sessionFile(store.directory, session.id);
      let writing = true;
      const invalid: string[] = [];
      let reads = 0;

      const reader = (async () => {
        while (writing) {
          const text = await readFile(path, 'utf8');
          reads += 1;
          try {
            JSON.parse(text);
          } catch {
            invalid.push(`${text.length} bytes: ${text.slice(-20)}`);
          }
          if ((await store.get(session.id)) === null) invalid.push('get returned null');
        }
      })();
      for (let i = 0; i < 12; i++) {
        await store.commit(session.id, change({ big: `${i}:${String(i).repeat(1_000_000)}` }));
      }
      writing = false;
      await reader;

      expect(invalid).toEqual([]);
      expect(reads).toBeGreaterThan(0);
      expect(((await store.get(session.id))!.data.big as string).startsWith('11:')).toBe(true);
    });

    it('leaves no temp or lock files behind after concurrent writes, rotations and destroys', async () => {
      const store = await open();
      const userId = newUserId();
      const sessions = Array.from({ length: 10 }, () => newSession({ userId }));
      await Promise.all(sessions.map((session) => store.create(session)));

      await Promise.all(
        sessions.flatMap((session, i) => [
          store.commit(session.id, change({ [`a${i}`]: i })),
          store.commit(session.id, change({ [`b${i}`]: i })),
          i % 3 === 0 ? store.rotate(session.id, newSession({ userId })) : store.touch(session.id, Date.now() + HOUR, Date.now()),
          i % 3 === 1 ? store.destroy(session.id) : store.get(session.id),
        ]),
      );
      await store.destroyByUser(userId);

      expect(await leftovers(store.directory)).toEqual([]);
    });
  });

  describe('ids it did not generate', () => {
    const HOSTILE_IDS = [
      '../../../../decoy',
      '..%2F..%2F..%2F..%2Fdecoy',
      '..\\..\\..\\..\\decoy',
      'a/../../b',
      '/tmp/x',
      `decoy\0`,
      `${'a'.repeat(21)}\0${'a'.repeat(21)}`,
      '.'.repeat(43),
      `../${'a'.repeat(40)}`,
      `${'a'.repeat(40)}/..`,
      `${'A'.repeat(42)}.`,
      '',
      'x'.repeat(10_000),
    ];

    /** A store in `<base>/store`, and next to it a decoy that a naive path join would read as a live session. */
    async function storeWithDecoy(): Promise<{ base: string; store: FileStore }> {
      const base = await tempDir();
      await writeFile(join(base, 'decoy.json'), sessionText({ d: { stolen: true } }));
      await writeFile(join(base, 'decoy'), sessionText({ d: { stolen: true } }));
      return { base, store: await open({ directory: join(base, 'store') }) };
    }

    it.each(HOSTILE_IDS.map((id) => [JSON.stringify(id).slice(0, 60), id]))(
      'treats %s as absent: get, commit, touch, rotate and destroy read and write nothing, inside the directory or out',
      async (_name, id) => {
        const { base, store } = await storeWithDecoy();
        const before = await snapshot(base);

        await expect(store.get(id)).resolves.toBeNull();
        await expect(store.commit(id, change({ injected: true }, { userId: newUserId() }))).resolves.toBe(false);
        await expect(store.touch(id, Date.now() + HOUR, Date.now())).resolves.toBe(false);
        const next = newSession();
        await expect(store.rotate(id, next)).resolves.toBe(false);
        await expect(store.destroy(id)).resolves.toBeUndefined();

        await expect(store.get(next.id)).resolves.toBeNull();
        expect(await snapshot(base)).toEqual(before);
      },
    );

    it.each(HOSTILE_IDS.map((id) => [JSON.stringify(id).slice(0, 60), id]))(
      'refuses to create or rotate to %s with a clear error, writing nothing',
      async (_name, id) => {
        const { base, store } = await storeWithDecoy();
        const live = newSession({ data: { still: 'here' } });
        await store.create(live);
        const before = await snapshot(base);

        const creating = store.create(newSession({ id, userId: newUserId() }));
        await expect(creating).rejects.toBeInstanceOf(SessionError);
        await expect(creating).rejects.toMatchObject({ code: 'SESSION_INVALID_ID', message: expect.stringContaining('generateSessionId') });
        await expect(store.rotate(live.id, newSession({ id, userId: newUserId() }))).rejects.toMatchObject({ code: 'SESSION_INVALID_ID' });

        expect(await snapshot(base)).toEqual(before);
        await expect(store.get(live.id)).resolves.toMatchObject({ data: { still: 'here' } });
      },
    );

    it('keeps traversal-shaped user ids inside users/, as a hash', async () => {
      const { base, store } = await storeWithDecoy();
      const userId = '../../../../decoy';
      const session = newSession({ userId });

      await store.create(session);

      expect(await readdir(join(store.directory, 'users'))).toEqual([sha256(userId)]);
      expect((await store.listByUser(userId)).map((s) => s.id)).toEqual([session.id]);
      await expect(store.destroyByUser(userId)).resolves.toEqual([session.id]);
      expect(await readFile(join(base, 'decoy'), 'utf8')).toContain('stolen');
    });
  });

  describe('files that are not sessions', () => {
    const future = Date.now() + 10 * HOUR;
    const GARBAGE: Array<[string, string]> = [
      ['text that is not JSON', 'not json'],
      ['an empty file', ''],
      ['truncated JSON', sessionText().slice(0, 40)],
      ['a JSON array', '[]'],
      ['JSON null', 'null'],
      ['a version and nothing else', '{"v":1}'],
      ['a timestamp that is a string', JSON.stringify({ v: 1, c: 'x', s: 1, e: future, u: null, d: {} })],
      ['a missing expiry', JSON.stringify({ v: 1, c: 1, s: 1, u: null, d: {} })],
      ['another format version', JSON.stringify({ v: 2, c: 1, s: 1, e: future, u: null, d: {} })],
      ['a user id that is a number', JSON.stringify({ v: 1, c: 1, s: 1, e: future, u: 5, d: {} })],
      ['data that is an array', JSON.stringify({ v: 1, c: 1, s: 1, e: future, u: null, d: ['x'] })],
    ];

    it.each(GARBAGE)('reads %s as no session, without throwing, and leaves the file as it was', async (_name, content) => {
      const store = await open();
      const id = newId();
      const path = await plant(store.directory, id, content);
      warnings.length = 0;

      await expect(store.get(id)).resolves.toBeNull();
      await expect(store.commit(id, change({ revived: true }))).resolves.toBe(false);
      await expect(store.touch(id, Date.now() + HOUR, Date.now())).resolves.toBe(false);
      await expect(store.rotate(id, newSession())).resolves.toBe(false);
      await expect(store.sweep()).resolves.toBe(0);

      expect(await readFile(path, 'utf8')).toBe(content);
      // The store knows the session by its key (the hashed id) and names it by that.
      expect(warnings.some((warning) => warning.includes(id))).toBe(true);
    });

    it('reads a directory where a session file should be as no session, and destroy leaves it alone', async () => {
      const store = await open();
      const id = newId();
      const path = sessionFile(store.directory, id);
      await mkdir(path, { recursive: true });

      await expect(store.get(id)).resolves.toBeNull();
      await expect(store.commit(id, change({ revived: true }))).resolves.toBe(false);
      await expect(store.destroy(id)).resolves.toBeUndefined();
      await expect(store.sweep()).resolves.toBe(0);

      expect((await stat(path)).isDirectory()).toBe(true);
    });

    it('turns a file system failure into a 503-class error that names the session by its key', async () => {
      const store = await open();
      const session = newSession();
      // A file where the session's shard directory should be: every open under it fails.
      await writeFile(join(shardOf(store.directory, session.id), '..'), 'in the way');

      const creating = store.create(session);
      await expect(creating).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      const message = await creating.catch((error: Error) => String(error));
      expect(message).toContain(session.id);
      expect(message).toContain('ENOTDIR');
      await expect(store.commit(session.id, change({ x: 1 }))).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      await expect(store.get(session.id)).resolves.toBeNull();
    });

    it('keeps __proto__ written into a file by hand as plain data', async () => {
      const store = await open();
      const id = newId();
      await plant(store.directory, id, sessionText({ d: JSON.parse('{"__proto__":{"polluted":true},"ok":1}') }));

      const session = await store.get(id);

      expect(Object.getOwnPropertyDescriptor(session!.data, '__proto__')?.value).toEqual({ polluted: true });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  describe('sweeper', () => {
    it('deletes expired session files and their index markers, keeps live ones, and returns how many it deleted', async () => {
      const store = await open();
      const userId = newUserId();
      const live = newSession({ userId });
      const expired = [
        newSession({ userId, expiresAt: Date.now() - 1 }),
        newSession({ userId, expiresAt: Date.now() - HOUR }),
        newSession({ expiresAt: Date.now() - 1 }),
      ];
      for (const session of [live, ...expired]) await store.create(session);

      await expect(store.sweep()).resolves.toBe(3);

      for (const session of expired) expect(await exists(sessionFile(store.directory, session.id))).toBe(false);
      await expect(store.get(live.id)).resolves.not.toBeNull();
      expect(await readdir(userDir(store.directory, userId))).toEqual([live.id]);
      await expect(store.sweep()).resolves.toBe(0);
    });

    it('deletes temp files, lock-breaking leftovers and stale locks left by a crash, but not fresh ones', async () => {
      const store = await open({ lockTimeout: 1_000 });
      const session = newSession();
      const busy = newSession();
      await store.create(session);
      await store.create(busy);
      const shard = shardOf(store.directory, session.id);
      const old = new Date(Date.now() - 10 * 60_000);
      const stale = [
        join(shard, `${session.id}.json.0a1b2c3d4e5f.tmp`),
        join(shard, `${session.id}.lock.abcdefgh12345678.break`),
        join(shard, `${session.id}.lock.0a1b2c3d4e5f.stale`),
        lockFile(store.directory, session.id),
      ];
      for (const path of stale) {
        await writeFile(path, 'left by a crashed process');
        await utimes(path, old, old);
      }
      const fresh = [join(shard, `${session.id}.json.ffeeddccbbaa.tmp`), lockFile(store.directory, busy.id)];
      for (const path of fresh) await writeFile(path, JSON.stringify({ pid: process.pid, token: 'held-by-a-live-one' }));
      const foreign = join(shard, 'README.txt');
      await writeFile(foreign, 'not ours');
      await utimes(foreign, old, old);

      await expect(store.sweep()).resolves.toBe(0);

      for (const path of stale) expect({ path, exists: await exists(path) }).toEqual({ path, exists: false });
      for (const path of [...fresh, foreign]) expect({ path, exists: await exists(path) }).toEqual({ path, exists: true });
      await expect(store.get(session.id)).resolves.not.toBeNull();
    });

    it('keeps sweeping past an entry it cannot handle, and reports it', async () => {
      const store = await open();
      const expired = Array.from({ length: 20 }, () => newSession({ expiresAt: Date.now() - 1 }));
      for (const session of expired) await store.create(session);
      const blocked = newId();
      await mkdir(lockFile(store.directory, blocked), { recursive: true });
      warnings.length = 0;

      await expect(store.sweep()).resolves.toBe(20);

      for (const session of expired) expect(await exists(sessionFile(store.directory, session.id))).toBe(false);
      expect(warnings.some((warning) => warning.includes('sweeping expired sessions failed'))).toBe(true);
    });

    it('lets two stores on one directory sweep at once: both finish, and each expired session is deleted and counted once', async () => {
      const directory = await tempDir();
      const [first, second] = [await open({ directory }), await open({ directory })];
      const userId = newUserId();
      const expired = Array.from({ length: 40 }, (_, i) => newSession({ userId: i % 2 ? userId : null, expiresAt: Date.now() - 1 }));
      const live = newSession({ userId });
      for (const session of [...expired, live]) await first.create(session);

      const counts = await Promise.all([first.sweep(), second.sweep(), first.sweep(), second.sweep()]);

      // The two calls on one store share one sweep, so each store's count appears twice.
      expect(counts[0]).toBe(counts[2]);
      expect(counts[1]).toBe(counts[3]);
      expect(counts[0] + counts[1]).toBe(40);
      for (const session of expired) expect(await exists(sessionFile(directory, session.id))).toBe(false);
      expect(await readdir(userDir(directory, userId))).toEqual([live.id]);
      expect(await leftovers(directory)).toEqual([]);
    });

    it('sweeps by itself every sweepInterval, on a timer that never keeps the process alive', async () => {
      const store = await open({ sweepInterval: 25 });
      const expired = newSession({ expiresAt: Date.now() - 1 });
      await store.create(expired);

      expect(store['timer']?.hasRef()).toBe(false);
      expect(await eventually(async () => !(await exists(sessionFile(store.directory, expired.id))))).toBe(true);
    });

    it('stops on application shutdown (twice is harmless), and expiry is still enforced on read', async () => {
      const store = await open({ sweepInterval: 25 });
      await store.onApplicationShutdown();
      await store.onApplicationShutdown();
      const expired = newSession({ expiresAt: Date.now() - 1 });
      await store.create(expired);

      await sleep(250);

      expect(store['timer']).toBeUndefined();
      expect(await exists(sessionFile(store.directory, expired.id))).toBe(true);
      await expect(store.get(expired.id)).resolves.toBeNull();
    });
  });

  describe('locks between processes', () => {
    it('takes over a lock whose holder has died, without waiting for lockTimeout', async () => {
      // lockTimeout far beyond the test's own timeout: only the dead-holder check can free it.
      const store = await open({ lockTimeout: 10 * 60_000 });
      const session = newSession({ data: { before: true } });
      await store.create(session);
      const path = lockFile(store.directory, session.id);
      await acquireFileLock(path, { wait: 0, staleAfter: 60_000 });
      const lock = JSON.parse(await readFile(path, 'utf8'));
      await writeFile(path, JSON.stringify({ ...lock, pid: deadPid() }));

      await expect(store.commit(session.id, change({ after: true }))).resolves.toBe(true);

      await expect(store.get(session.id)).resolves.toMatchObject({ data: { before: true, after: true } });
      expect(await exists(path)).toBe(false);
    });

    it('takes over a lock older than lockTimeout, whoever wrote it', async () => {
      const store = await open({ lockTimeout: 10 * 60_000 });
      const session = newSession();
      await store.create(session);
      const path = lockFile(store.directory, session.id);
      await writeFile(path, JSON.stringify({ pid: process.pid, host: 'another-host', token: 'abandoned-token' }));
      const old = new Date(Date.now() - 2 * 10 * 60_000);
      await utimes(path, old, old);

      await expect(store.commit(session.id, change({ after: true }))).resolves.toBe(true);
      expect(await exists(path)).toBe(false);
    });

    it('makes a commit wait for a live holder, then apply once the lock is released', async () => {
      const store = await open({ lockTimeout: 20_000 });
      const session = newSession({ data: { before: true } });
      await store.create(session);
      const lock = await acquireFileLock(lockFile(store.directory, session.id), { wait: 0, staleAfter: 60_000 });

      let settled = false;
      const committing = store.commit(session.id, change({ after: true })).finally(() => {
        settled = true;
      });
      await sleep(300);
      expect(settled).toBe(false);
      await expect(store.get(session.id)).resolves.toMatchObject({ data: { before: true } });
      await lock.release();

      await expect(committing).resolves.toBe(true);
      await expect(store.get(session.id)).resolves.toMatchObject({ data: { before: true, after: true } });
    });

    it('makes a destroy wait for the lock too, so a commit holding it lands first and the session then stays dead', async () => {
      const store = await open({ lockTimeout: 20_000 });
      const session = newSession();
      await store.create(session);
      const lock = await acquireFileLock(lockFile(store.directory, session.id), { wait: 0, staleAfter: 60_000 });

      let settled = false;
      const destroying = store.destroy(session.id).finally(() => {
        settled = true;
      });
      await sleep(300);
      expect(settled).toBe(false);
      expect(await exists(sessionFile(store.directory, session.id))).toBe(true);
      await lock.release();
      await destroying;

      expect(await exists(sessionFile(store.directory, session.id))).toBe(false);
      await expect(store.commit(session.id, change({ late: true }))).resolves.toBe(false);
      expect(await exists(sessionFile(store.directory, session.id))).toBe(false);
    });

    it('fails a commit with a 503-class error naming lockTimeout when a live holder keeps the lock, changing nothing', async () => {
      const store = await open({ lockTimeout: 300 });
      const session = newSession({ data: { before: true } });
      await store.create(session);
      const path = lockFile(store.directory, session.id);
      const lock = await acquireFileLock(path, { wait: 0, staleAfter: 60_000 });
      // A busy holder: its lock never gets old.
      const renewing = setInterval(() => void utimes(path, new Date(), new Date()).catch(() => undefined), 50);

      try {
        const committing = store.commit(session.id, change({ after: true }));
        await expect(committing).rejects.toBeInstanceOf(SessionStoreUnavailableError);
        await expect(committing).rejects.toThrow(/store\.lockTimeout/);
        await expect(committing).rejects.toThrow(session.id);
      } finally {
        clearInterval(renewing);
        await lock.release();
      }
      await expect(store.get(session.id)).resolves.toMatchObject({ data: { before: true } });
    });

    it('never has two holders at once, even when twenty waiters find the same lock stale at the same moment', async () => {
      const path = join(await tempDir(), 'session.lock');
      for (let round = 0; round < 3; round++) {
        await writeFile(path, JSON.stringify({ pid: process.pid, host: 'crashed', token: `stale-lock-token-${round}` }));
        const old = new Date(Date.now() - HOUR);
        await utimes(path, old, old);
        let holders = 0;
        let most = 0;

        await Promise.all(
          Array.from({ length: 20 }, async () => {
            const lock = await acquireFileLock(path, { wait: 20_000, staleAfter: 60_000 });
            most = Math.max(most, ++holders);
            await sleep(5);
            holders -= 1;
            await lock.release();
          }),
        );

        expect(most).toBe(1);
        expect(await exists(path)).toBe(false);
      }
    });

    it('lets exactly one of many waiters break a stale lock: fifty writers on five stores lose no field', async () => {
      const directory = await tempDir();
      const stores = await Promise.all(Array.from({ length: 5 }, () => open({ directory, lockTimeout: 5_000 })));
      // A few rounds: whether waiters collide on the stale lock depends on scheduling.
      for (let round = 0; round < 3; round++) {
        const session = newSession({ data: { base: true } });
        await stores[0].create(session);
        const path = lockFile(directory, session.id);
        await writeFile(path, JSON.stringify({ pid: process.pid, host: 'crashed', token: `stale-lock-token-${round}` }));
        const old = new Date(Date.now() - HOUR);
        await utimes(path, old, old);

        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % 5].commit(session.id, change({ [`field${i}`]: i }))));

        expect(results.every(Boolean)).toBe(true);
        const data = (await stores[0].get(session.id))!.data;
        expect(Object.keys(data).sort()).toEqual(['base', ...Array.from({ length: 50 }, (_, i) => `field${i}`)].sort());
      }
      expect(await leftovers(directory)).toEqual([]);
    });
  });

  describe('start-up', () => {
    it('fails with an error naming the directory and the fix when it cannot be created (a file is in the way)', async () => {
      const base = await tempDir();
      await writeFile(join(base, 'file'), 'in the way');
      const directory = join(base, 'file', 'sub');

      const opening = FileStore.open({ directory });

      await expect(opening).rejects.toBeInstanceOf(SessionConfigError);
      await expect(opening).rejects.toThrow(directory);
      await expect(opening).rejects.toThrow(/"store\.directory"/);
      await expect(opening).rejects.toThrow(/a file is in the way/);
      await expect(opening).rejects.toThrow(/mkdir -p/);
      await expect(createSessionStore({ type: 'file', directory })).rejects.toThrow(directory);
    });

    it('fails the same way when the directory is a file', async () => {
      const directory = join(await tempDir(), 'plain-file');
      await writeFile(directory, '');

      await expect(FileStore.open({ directory })).rejects.toThrow(/"store\.directory".*plain-file.*a file is in the way/s);
    });

    it.each<[string, Partial<FileStoreOptions>, RegExp]>([
      ['an empty directory', { directory: '' }, /"store\.directory" must be a non-empty string/],
      ['lockTimeout 0', { lockTimeout: 0 }, /"store\.lockTimeout" must be a positive whole number \(got 0\)/],
      ['sweepInterval -1', { sweepInterval: -1 }, /"store\.sweepInterval" must be a positive whole number \(got -1\)/],
      ['sweepInterval 2^31', { sweepInterval: 2 ** 31 }, /"store\.sweepInterval" must be a positive whole number/],
    ])('rejects %s, naming the option', async (_name, options, message) => {
      const directory = await tempDir();

      const opening = FileStore.open({ directory, ...options });

      await expect(opening).rejects.toBeInstanceOf(SessionConfigError);
      await expect(opening).rejects.toThrow(message);
    });

    it('is validated as a module option: { type: "file" } needs a directory, and bad timings are named', () => {
      expect(resolveSessionOptions({ secret: SECRET, store: { type: 'file', directory: '/var/lib/app' } }).store).toEqual({
        type: 'file',
        directory: '/var/lib/app',
      });
      expect(() => resolveSessionOptions({ secret: SECRET, store: { type: 'file' } })).toThrow(/"store\.directory" must be a non-empty string/);
      expect(() => resolveSessionOptions({ secret: SECRET, store: { type: 'file', directory: 'x', lockTimeout: 0 } })).toThrow(
        /"store\.lockTimeout"/,
      );
      expect(() => resolveSessionOptions({ secret: SECRET, store: { type: 'file', directory: 'x', sweepInterval: 'soon' } })).toThrow(
        /"store\.sweepInterval"/,
      );
      expect(() => resolveSessionOptions({ secret: SECRET, store: { type: 'file', directory: 'x', dir: 'y' } })).toThrow(
        /"store\.dir" is not a known option/,
      );
    });
  });

  describe('health', () => {
    it('answers ping while its directory is usable, and fails it once the directory is gone', async () => {
      const store = await open();
      await expect(store.ping()).resolves.toBeUndefined();

      await rm(store.directory, { recursive: true, force: true });

      await expect(store.ping()).rejects.toThrow();
    });
  });
});

// ---- Expiry events, user locks, client records ------------------------------------------------

const openedForEvents: FileStore[] = [];

/** A store shut down after the file's tests; a far sweep interval unless given. */
async function openStore(options: Partial<FileStoreOptions> = {}): Promise<FileStore> {
  const store = await FileStore.open({ directory: options.directory ?? (await tempDir()), sweepInterval: HOUR, ...options });
  openedForEvents.push(store);
  return store;
}

afterAll(async () => {
  await Promise.all(openedForEvents.map((store) => store.onApplicationShutdown()));
});

/** Everything `store` reports from now on. */
function reportsOf(store: FileStore): ExpiredSession[] {
  const reports: ExpiredSession[] = [];
  store.watchExpiry((expired) => reports.push(expired));
  return reports;
}

/** Resolves once the clock has passed `time` (a session with that expiry is then expired). */
async function past(time: number): Promise<void> {
  while (Date.now() <= time) await sleep(Math.max(1, time - Date.now() + 1));
}

const userLockFile = (directory: string, userId: string): string => join(directory, 'locks', `${sha256(userId)}.lock`);

describe('FileStore expiry events', () => {
  it('reports a session its sweeper deletes once, with its id and the user read from its file', async () => {
    const store = await openStore();
    const reports = reportsOf(store);
    const userId = newUserId();
    const session = newSession({ userId, expiresAt: Date.now() - 1 });
    const anonymous = newSession({ expiresAt: Date.now() - 1 });
    await store.create(session);
    await store.create(anonymous);

    await expect(store.sweep()).resolves.toBe(2);
    await expect(store.sweep()).resolves.toBe(0);

    expect(reports).toHaveLength(2);
    expect(reports).toEqual(
      expect.arrayContaining([
        { id: session.id, userId },
        { id: anonymous.id, userId: null },
      ]),
    );
  });

  it('does not report a destroyed session, nor one extended before its expiry', async () => {
    const store = await openStore();
    const reports = reportsOf(store);
    const userId = newUserId();
    const expiresAt = Date.now() + 200;
    const [expiring, destroyed, extended] = [0, 1, 2].map(() => newSession({ userId, expiresAt }));
    for (const session of [expiring, destroyed, extended]) await store.create(session);
    await store.destroy(destroyed.id);
    await store.commit(extended.id, change({}, { expiresAt: Date.now() + HOUR }));

    await past(expiresAt);
    await store.sweep();

    expect(reports).toEqual([{ id: expiring.id, userId }]);
    await expect(store.get(extended.id)).resolves.not.toBeNull();
  });

  it('reports each of several expiries exactly once in total when two stores on one directory both watch and sweep', async () => {
    const directory = await tempDir();
    const [first, second] = [await openStore({ directory, sweepInterval: 20 }), await openStore({ directory, sweepInterval: 20 })];
    const reports = [reportsOf(first), reportsOf(second)];
    const userId = newUserId();
    const expiresAt = Date.now() + 300;
    const sessions = Array.from({ length: 30 }, (_, i) => newSession({ userId: i % 3 ? userId : null, expiresAt }));
    for (const session of sessions) await first.create(session);

    const all = (): ExpiredSession[] => [...reports[0], ...reports[1]];
    // Both timers sweep on their own; explicit sweeps from both add to the contention.
    await past(expiresAt);
    await Promise.all([first.sweep(), second.sweep()]);
    expect(await eventually(async () => all().length >= sessions.length)).toBe(true);
    // One more round from both, so a duplicate would have had every chance to appear.
    await Promise.all([first.sweep(), second.sweep()]);

    const expected = sessions.map((session) => ({ id: session.id, userId: session.userId }));
    expect(all()).toHaveLength(sessions.length);
    expect(all()).toEqual(expect.arrayContaining(expected));
    for (const session of sessions) expect(await exists(sessionFile(directory, session.id))).toBe(false);
  });

  it('neither deletes nor reports a session whose writer holds its lock, and keeps it once the writer extended it', async () => {
    const store = await openStore();
    const reports = reportsOf(store);
    const session = newSession({ expiresAt: Date.now() - 1 });
    await store.create(session);
    const path = sessionFile(store.directory, session.id);
    // A writer in another process: it holds the lock, and makes the session live before releasing it.
    const lock = await acquireFileLock(lockFile(store.directory, session.id), { wait: 0, staleAfter: HOUR });
    try {
      await expect(store.sweep()).resolves.toBe(0);
      await writeFile(path, sessionText({ e: Date.now() + HOUR }));
    } finally {
      await lock.release();
    }

    await expect(store.sweep()).resolves.toBe(0);

    expect(reports).toEqual([]);
    expect(await exists(path)).toBe(true);
  });

  it('reports the expired sessions destroyByUser deletes, without returning them', async () => {
    const store = await openStore();
    const reports = reportsOf(store);
    const userId = newUserId();
    const expired = newSession({ userId, expiresAt: Date.now() - 1 });
    const live = newSession({ userId });
    await store.create(expired);
    await store.create(live);

    await expect(store.destroyByUser(userId)).resolves.toEqual([live.id]);

    expect(reports).toEqual([{ id: expired.id, userId }]);
  });
});

describe('FileStore user lock', () => {
  /** A critical section that records when it enters and leaves, and stays inside for a few turns of the event loop. */
  const traced = (trace: string[], name: string) => async (): Promise<string> => {
    trace.push(`enter ${name}`);
    for (let i = 0; i < 5; i++) await sleep(2);
    trace.push(`exit ${name}`);
    return name;
  };

  /** Asserts that every entry is followed by its own exit: no two sections overlapped. */
  function expectNoOverlap(trace: string[], sections: number): void {
    expect(trace).toHaveLength(2 * sections);
    for (let i = 0; i < trace.length; i += 2) expect(trace[i + 1]).toBe(trace[i].replace('enter', 'exit'));
  }

  it('never lets the critical sections of one user overlap, across two stores on one directory', async () => {
    const directory = await tempDir();
    const stores = [await openStore({ directory }), await openStore({ directory })];
    const userId = newUserId();
    const trace: string[] = [];

    const names = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const results = await Promise.all(names.map((name, i) => stores[i % 2].withUserLock(userId, traced(trace, name))));

    expect(results).toEqual(names);
    expectNoOverlap(trace, names.length);
    expect(await exists(userLockFile(directory, userId))).toBe(false);
  });

  it('runs the critical sections of different users at the same time', async () => {
    const directory = await tempDir();
    const [first, second] = [await openStore({ directory }), await openStore({ directory })];

    await expect(bothInsideAtOnce(first, second)).resolves.toEqual(['first', 'second']);
  });

  it('releases the lock when a critical section throws, so another store takes it at once', async () => {
    const directory = await tempDir();
    // Far beyond the test's timeout: a lock left behind would make the second call fail, not wait it out.
    const [first, second] = [await openStore({ directory, lockTimeout: HOUR }), await openStore({ directory, lockTimeout: HOUR })];
    const userId = newUserId();

    await expect(first.withUserLock(userId, () => Promise.reject(new Error('critical failed')))).rejects.toThrow('critical failed');

    expect(await exists(userLockFile(directory, userId))).toBe(false);
    await expect(second.withUserLock(userId, async () => 'next')).resolves.toBe('next');
  });

  it('keeps the lock while a section runs longer than lockTimeout: another store fails with a 503-class error instead of breaking in', async () => {
    const directory = await tempDir();
    const [holder, waiter] = [await openStore({ directory, lockTimeout: 150 }), await openStore({ directory, lockTimeout: 150 })];
    const userId = newUserId();
    let inside = 0;
    let most = 0;
    let releaseHolder!: () => void;
    const held = holder.withUserLock(userId, async () => {
      most = Math.max(most, ++inside);
      await new Promise<void>((resolve) => (releaseHolder = resolve));
      inside -= 1;
    });
    expect(await eventually(async () => inside === 1)).toBe(true);

    // Several waits of lockTimeout each: by age alone the holder's lock would have gone stale.
    for (let attempt = 0; attempt < 4; attempt++) {
      const waiting = waiter.withUserLock(userId, async () => {
        most = Math.max(most, ++inside);
        inside -= 1;
      });
      await expect(waiting).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      await expect(waiting).rejects.toThrow(/store\.lockTimeout/);
    }
    releaseHolder();
    await held;

    await expect(waiter.withUserLock(userId, async () => 'after')).resolves.toBe('after');
    expect(most).toBe(1);
  });

  it('takes over the user lock of a process that died holding it, without waiting for lockTimeout', async () => {
    const store = await openStore({ lockTimeout: 10 * 60_000 });
    const userId = newUserId();
    const path = userLockFile(store.directory, userId);
    await mkdir(join(store.directory, 'locks'), { recursive: true });
    await acquireFileLock(path, { wait: 0, staleAfter: HOUR });
    const lock = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify({ ...lock, pid: deadPid() }));

    await expect(store.withUserLock(userId, async () => 'taken over')).resolves.toBe('taken over');
    expect(await exists(path)).toBe(false);
  });

  it('names the lock file by the SHA-256 of the user id, so no user id becomes a path', async () => {
    const store = await openStore();
    const userId = '../../../etc/passwd/x';
    let during: string[] = [];

    await store.withUserLock(userId, async () => {
      during = await readdir(join(store.directory, 'locks'));
    });

    expect(during).toEqual([`${sha256(userId)}.lock`]);
    expect(await readdir(join(store.directory, 'locks'))).toEqual([]);
  });

  it('sweeps away a user lock left by a crashed process, and leaves a live one alone', async () => {
    const store = await openStore({ lockTimeout: 1_000 });
    const locks = join(store.directory, 'locks');
    await mkdir(locks, { recursive: true });
    const crashed = userLockFile(store.directory, newUserId());
    const litter = `${userLockFile(store.directory, newUserId())}.0a1b2c3d4e5f.stale`;
    const old = new Date(Date.now() - HOUR);
    for (const path of [crashed, litter]) {
      await writeFile(path, JSON.stringify({ pid: process.pid, host: 'crashed', token: 'crashed-holder-token' }));
      await utimes(path, old, old);
    }
    const liveUser = newUserId();
    let releaseLive: (() => void) | undefined;
    const live = store.withUserLock(liveUser, () => new Promise<void>((resolve) => (releaseLive = resolve)));
    expect(await eventually(async () => releaseLive !== undefined)).toBe(true);

    await store.sweep();

    expect(await exists(crashed)).toBe(false);
    expect(await exists(litter)).toBe(false);
    expect(await exists(userLockFile(store.directory, liveUser))).toBe(true);
    releaseLive!();
    await live;
  });
});

describe('FileStore client record', () => {
  const CLIENT = { userAgent: 'Mozilla/5.0 (test)', ip: '203.0.113.7' };

  it('writes the client beside the data as "k", and leaves files without one as they were', async () => {
    const store = await openStore();
    const withClient = newSession({ client: CLIENT, data: { cart: ['a'] } });
    const without = newSession();
    await store.create(withClient);
    await store.create(without);

    const written = JSON.parse(await readFile(sessionFile(store.directory, withClient.id), 'utf8'));
    expect(written).toMatchObject({ v: 1, k: CLIENT, d: { cart: ['a'] } });
    expect(Object.keys(JSON.parse(await readFile(sessionFile(store.directory, without.id), 'utf8')))).toEqual(['v', 'c', 's', 'e', 'u', 'd']);
  });

  it('keeps the client through create, commit (set, keep, clear), rotate and listByUser', async () => {
    const store = await openStore();
    const userId = newUserId();
    const session = newSession({ userId, client: CLIENT });
    await store.create(session);
    expect((await store.get(session.id))!.client).toEqual(CLIENT);

    await store.commit(session.id, change({ visits: 2 }));
    expect((await store.get(session.id))!.client).toEqual(CLIENT);
    await store.commit(session.id, change({}, { client: { ip: '198.51.100.9' } }));
    expect((await store.get(session.id))!.client).toEqual({ ip: '198.51.100.9' });
    expect((await store.listByUser(userId)).map((s) => s.client)).toEqual([{ ip: '198.51.100.9' }]);
    await store.commit(session.id, change({}, { client: null }));
    expect((await store.get(session.id))!.client ?? null).toBeNull();
    expect(JSON.parse(await readFile(sessionFile(store.directory, session.id), 'utf8')).k).toBeUndefined();

    const next = newSession({ userId, client: CLIENT });
    await expect(store.rotate(session.id, next)).resolves.toBe(true);
    expect((await store.get(next.id))!.client).toEqual(CLIENT);
    expect((await store.listByUser(userId)).map((s) => s.client)).toEqual([CLIENT]);
    expect((await store.get(next.id))!.data).toEqual({ visits: 1 });
  });

  it('reads a file whose "k" is not an object as no session, like any file not of this format', async () => {
    const store = await openStore();
    const id = newId();
    await plant(store.directory, id, sessionText({ k: 'not a client' }));

    await expect(store.get(id)).resolves.toBeNull();
  });
});
