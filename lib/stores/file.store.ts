import type { OnApplicationShutdown } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { isSessionId, hashSessionId } from '../crypto/index.js';
import { SessionConfigError, SessionError, SessionMessages, SessionStoreUnavailableError } from '../session.errors.js';
import { storeConfigProblems } from '../session.options.js';
import { isPlainObject } from '../session.validation.js';
import { applyChange, clientMember, defineField, encodeClient, encodeFields, fieldsAsJson, readClient } from './field-codec.js';
import { acquireFileLock, breakStaleLock, LockTimeoutError, removeIfOlderThan } from './file-lock.js';
import type { FileLock } from './file-lock.js';
import { assertUserIdKeepable, SessionStore } from './session-store.js';
import { startSweeper } from './store-runtime.js';
import type { SessionChange, SessionClient, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import { FILE_DEFAULTS } from './store-config.js';
import type { FileStoreConfig } from './store-config.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** The store's directory, created (mode 0700) if missing; relative paths resolve against the working directory. */
  directory: string;
  /** How often, in milliseconds, expired session files are swept. @default 60000 */
  sweepInterval?: number;
  /**
   * How long a write waits for another process's lock on the same session (ms); a lock older
   * than this is taken to be abandoned. @default 2000
   */
  lockTimeout?: number;
}

/** A session file as read: `{ v, c, s, e, u, k?, d }` on disk. */
interface SessionRecord {
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  client: SessionClient | null;
  data: SessionFields;
}

/** The metadata of a session file. */
type SessionMeta = Pick<StoredSession, 'createdAt' | 'lastSeenAt' | 'expiresAt' | 'userId' | 'client'>;

/** Where one session lives: its shard directory, its file and its lock. */
interface SessionPaths {
  dir: string;
  file: string;
  lock: string;
}

const FORMAT_VERSION = 1;
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Files handled at once by the sweeper and the per-user operations: bounded, so no EMFILE. */
const BATCH = 64;
/** Temp files and lock-breaking leftovers older than this were left by a crash (ms, at least lockTimeout). */
const LITTER_AGE = 60_000;
const SHARD_NAME = /^[0-9a-f]{2}$/;
/** `<id>.json.<random>.tmp`, `<id>.lock.<tag>.break`, `<id>.lock.<random>.stale`. */
const LITTER_NAME = /^[A-Za-z0-9_-]{43}\.(json|lock)\.[A-Za-z0-9_-]+\.(tmp|break|stale)$/;
/** `locks/<sha256 of a user id>.lock`: the per-user lock of {@link FileStore.withUserLock}. */
const USER_LOCK_NAME = /^[0-9a-f]{64}\.lock$/;
/** What breaking a user lock leaves behind if the breaker crashes: `<lock>.<tag>.break`, `<lock>.<random>.stale`. */
const USER_LOCK_LITTER_NAME = /^[0-9a-f]{64}\.lock\.[A-Za-z0-9_-]+\.(break|stale)$/;

/**
 * Sessions as files in one directory: for a single host, shared by all of its processes (Node
 * cluster, PM2), surviving restarts, with nothing else to run. Use Redis or PostgreSQL when the
 * application runs on several hosts.
 *
 * Layout: `sessions/<aa>/<bb>/<id>.json`, where `aabb` starts the SHA-256 of the id, so no
 * directory holds millions of files, `users/<sha256 of user id>/<id>`: empty markers that index
 * each user's sessions, and `locks/<sha256 of user id>.lock`: the per-user lock that
 * {@link FileStore.withUserLock} holds across processes. Ids are checked before they become
 * paths: an id this library did not generate is simply absent, and no id can name a file outside
 * the directory; user ids only ever appear hashed.
 *
 * Every write goes to a temp file that is synced and renamed over the session file, so a reader
 * sees the old or the new session, never half of one. A change is applied under a per-session
 * lock file, only while the session exists: concurrent writers to different fields keep each
 * other's work, and a write racing a destroy never brings the session back. Expiry is enforced
 * on read; a sweeper (which never keeps the process alive) deletes expired files, and any number
 * of processes may sweep the same directory at once. Each expired session is deleted under its
 * lock by exactly one of them, which reports it to {@link SessionStore.watchExpiry} listeners:
 * one report per expiry across every process, within one sweep interval of the expiry.
 *
 * Needs a local file system with atomic rename and O_EXCL (not NFS or other network shares).
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: { type: 'file', directory: '/var/lib/my-app/sessions' },
 * });
 * // or, with an instance:
 * const store = await FileStore.open({ directory: '/var/lib/my-app/sessions' });
 * ```
 */
export class FileStore extends SessionStore implements OnApplicationShutdown {
  readonly kind = 'file';

  private readonly sessionsRoot: string;
  private readonly usersRoot: string;
  private readonly locksRoot: string;
  private readonly litterAge: number;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  /** Use {@link FileStore.open}: the directory must be checked before the store is used. */
  private constructor(
    /** The store's directory, absolute. */
    readonly directory: string,
    sweepInterval: number,
    private readonly lockTimeout: number,
  ) {
    super();
    this.sessionsRoot = join(directory, 'sessions');
    this.usersRoot = join(directory, 'users');
    this.locksRoot = join(directory, 'locks');
    this.litterAge = Math.max(LITTER_AGE, lockTimeout);
    this.timer = startSweeper(
      () => this.sweep(),
      sweepInterval,
      (error) => this.logger.warn(SessionMessages.fileSweepFailed(describeError(error))),
    );
  }

  /**
   * Opens a store on `directory`, creating it if needed. Fails with a SessionConfigError naming
   * the directory when it cannot be created or written.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const { directory, sweepInterval = FILE_DEFAULTS.sweepInterval, lockTimeout = FILE_DEFAULTS.lockTimeout } = options;
    const problems = storeConfigProblems({ type: 'file', directory, sweepInterval, lockTimeout });
    if (problems.length > 0) throw new SessionConfigError(problems);

    const root = resolve(directory);
    await prepareDirectory(root);
    return new FileStore(root, sweepInterval, lockTimeout);
  }

  /** Builds a store from a `{ type: 'file' }` config object. */
  static fromConfig(config: FileStoreConfig): Promise<FileStore> {
    const { directory, sweepInterval, lockTimeout } = config;
    return FileStore.open({ directory, sweepInterval, lockTimeout });
  }

  async get(id: string): Promise<StoredSession | null> {
    const paths = this.pathsOf(id);
    if (!paths) return null;
    const record = await this.load(id, paths);
    if (!record || !isLive(record)) return null;
    const { client, ...rest } = record;
    return { id, ...rest, ...clientMember(client) };
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    const paths = this.requirePaths(session.id);
    const text = serialize(session, encodeFields(session.data));
    await this.locked(session.id, paths, async () => {
      const previous = await this.load(session.id, paths, { quiet: true });
      // The index is written first: a session a user can be signed in with is always listed.
      if (session.userId !== null) await this.addMarker(session.userId, session.id);
      await writeAtomically(paths.file, text, { syncDirectory: true });
      if (previous?.userId && previous.userId !== session.userId) await this.removeMarker(previous.userId, session.id);
    });
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    // Encoded first, so a value JSON cannot carry leaves the session as it was.
    const encoded = encodeFields(change.set);
    const paths = this.pathsOf(id);
    if (!paths) return false;
    return this.locked(id, paths, async () => {
      const current = await this.load(id, paths, { quiet: true });
      if (!current || !isLive(current)) return false;

      const fields = fieldsAsJson(current.data);
      applyChange(fields, change.unset, encoded);
      const userId = change.userId === undefined ? current.userId : change.userId;
      const client = change.client === undefined ? current.client : change.client;
      const meta = { createdAt: current.createdAt, lastSeenAt: change.lastSeenAt, expiresAt: change.expiresAt, userId, client };

      if (userId !== null && userId !== current.userId) await this.addMarker(userId, id);
      await writeAtomically(paths.file, serialize(meta, fields));
      if (current.userId !== null && current.userId !== userId) await this.removeMarker(current.userId, id);
      return true;
    });
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    const text = serialize(next, encodeFields(next.data));
    const nextPaths = this.requirePaths(next.id);
    const oldPaths = this.pathsOf(oldId);
    if (!oldPaths) return false;

    const move = async (): Promise<boolean> => {
      const current = await this.load(oldId, oldPaths, { quiet: true });
      if (!current || !isLive(current)) return false;

      if (next.userId !== null) await this.addMarker(next.userId, next.id);
      await writeAtomically(nextPaths.file, text, { syncDirectory: true });
      const sameId = oldId === next.id;
      if (!sameId) {
        await removeFile(oldPaths.file);
        await syncDirectory(oldPaths.dir);
      }
      if (current.userId !== null && !(sameId && current.userId === next.userId)) await this.removeMarker(current.userId, oldId);
      return true;
    };
    if (oldId === next.id) return this.locked(oldId, oldPaths, move);
    // Both ids are locked: the old one so that a destroy cannot slip between the check and the
    // move, the new one so that index pruning never sees the new marker before the new file.
    return this.locked(oldId, oldPaths, () => this.locked(next.id, nextPaths, move));
  }

  async destroy(id: string): Promise<void> {
    const paths = this.pathsOf(id);
    if (!paths) return;
    // Under the lock, so a commit racing this destroy lands before it or finds the file gone.
    await this.locked(id, paths, async () => {
      const current = await this.load(id, paths, { quiet: true });
      try {
        await removeFile(paths.file);
      } catch (error) {
        // Something that is not a file sits where the session was: nothing to destroy.
        if (errorCode(error) !== 'EISDIR') throw error;
        this.unreadable(id, 'is a directory');
      }
      if (current?.userId) await this.removeMarker(current.userId, id);
    });
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const listed = await inBatches(await this.markedIds(userId), async (id) => {
      const paths = this.requirePaths(id);
      const record = await this.load(id, paths, { quiet: true });
      if (record && record.userId === userId && isLive(record)) {
        const { createdAt, lastSeenAt, expiresAt, client } = record;
        return { id, createdAt, lastSeenAt, expiresAt, ...clientMember(client) };
      }
      await this.pruneMarker(userId, id, paths);
      return undefined;
    });
    return listed.filter((session) => session !== undefined).sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * Destroys every session of one user, except `exceptId`. Sessions of theirs that had expired
   * but were not swept yet are deleted too, and reported as expired (nobody else will), but not
   * counted.
   */
  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    const ids = (await this.markedIds(userId)).filter((id) => id !== exceptId);
    const destroyed = await inBatches(ids, (id) => {
      const paths = this.requirePaths(id);
      return this.locked(id, paths, async () => {
        const record = await this.load(id, paths, { quiet: true });
        // Only sessions this user still owns: one moved to another user since is not theirs to end.
        const removed = record?.userId === userId && (await removeFile(paths.file));
        await this.removeMarker(userId, id);
        if (removed && !isLive(record)) this.reportExpired({ id, userId });
        return removed && isLive(record);
      });
    });
    return ids.filter((_, i) => destroyed[i]);
  }

  /**
   * Runs `critical` while no other caller, in this process or any other sharing the directory,
   * runs one for the same user. Callers of this process queue first (the base class), then the
   * one at the head takes `locks/<sha256 of the user id>.lock`, a lease lock like the session
   * locks, renewed while `critical` runs so a long sign-in never loses it to age. A holder that
   * dies frees it at once (its pid is gone) or after `lockTimeout`. Waiting longer than
   * `lockTimeout` for another process fails with SessionStoreUnavailableError (a 503). Different
   * users have different lock files, so they never wait for each other.
   */
  override withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return super.withUserLock(userId, () => this.acrossProcesses(userId, critical));
  }

  /**
   * Deletes every expired session file now, with stale temp and lock files left by crashed
   * processes. The sweeper calls this on its interval; any number of processes may run it on the
   * same directory at once, and each expired session is counted, and reported to the expiry
   * listeners, by the one that deleted it.
   * @returns how many sessions this call removed.
   */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepAll().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  async ping(): Promise<void> {
    await access(this.sessionsRoot, constants.R_OK | constants.W_OK | constants.X_OK);
  }

  /** Stops the sweeper, after the sweep under way. Sessions stay readable; expiry is still enforced on read. */
  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping?.catch(() => 0);
  }

  // ---- Paths ----------------------------------------------------------------------------------

  /** The paths of a session, or undefined for an id that is not ours (so it is simply absent). */
  private pathsOf(id: string): SessionPaths | undefined {
    if (!isSessionId(id)) return undefined;
    const hash = sha256(id);
    const dir = join(this.sessionsRoot, hash.slice(0, 2), hash.slice(2, 4));
    const paths = { dir, file: join(dir, `${id}.json`), lock: join(dir, `${id}.lock`) };
    // Defence in depth: whatever isSessionId let through, no path leaves the directory.
    return isInside(this.sessionsRoot, paths.file) && isInside(this.sessionsRoot, paths.lock) ? paths : undefined;
  }

  /** The paths of an id about to be written: one we did not generate is refused, writing nothing. */
  private requirePaths(id: string): SessionPaths {
    const paths = this.pathsOf(id);
    if (!paths) throw new SessionError('SESSION_INVALID_ID', SessionMessages.fileInvalidId());
    return paths;
  }

  /** Hashed as UTF-8, one-to-one on the user ids the store takes (see assertUserIdKeepable). */
  private userDir(userId: string): string {
    return join(this.usersRoot, sha256(userId));
  }

  // ---- Reading --------------------------------------------------------------------------------

  /** The session file as a record (expired or not), or null when it is missing or not a session file. */
  private async load(id: string, paths: SessionPaths, { quiet = false } = {}): Promise<SessionRecord | null> {
    let text: string;
    try {
      text = await readFile(paths.file, 'utf8');
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      if (code === 'EISDIR') return quiet ? null : this.unreadable(id, 'is a directory');
      throw this.failure(id, error);
    }
    const record = parseRecord(text);
    if (!record && !quiet) this.unreadable(id, 'is not a session file of this version');
    return record;
  }

  private unreadable(id: string, problem: string): null {
    this.logger.warn(SessionMessages.fileUnreadable(hashSessionId(id), problem));
    return null;
  }

  // ---- Locking --------------------------------------------------------------------------------

  /**
   * Runs `work` holding the session's lock. A lock still held by another live process after
   * `wait` ms fails the call with SessionStoreUnavailableError (a 503), never a hang.
   */
  private async locked<T>(id: string, paths: SessionPaths, work: () => Promise<T>, wait = this.lockTimeout): Promise<T> {
    let lock: FileLock;
    try {
      lock = await this.acquire(paths, wait);
    } catch (error) {
      throw this.failure(id, error);
    }
    try {
      return await work();
    } catch (error) {
      throw this.failure(id, error);
    } finally {
      // The work is done (or failed on its own): a lock we cannot remove is left to go stale.
      await lock.release().catch((error: unknown) => this.logger.warn(SessionMessages.fileLockNotReleased(hashSessionId(id), describeError(error))));
    }
  }

  /**
   * What a failed call throws: a busy lock or a file system error becomes a
   * SessionStoreUnavailableError (a 503) that names the session by its masked id only, since
   * the file system's own messages carry paths, and paths carry raw ids.
   */
  private failure(id: string, error: unknown): unknown {
    if (error instanceof LockTimeoutError) {
      return new SessionStoreUnavailableError(this.kind, error, SessionMessages.fileLockTimeout(hashSessionId(id), this.lockTimeout));
    }
    if (errorCode(error) !== undefined) {
      return new SessionStoreUnavailableError(this.kind, undefined, SessionMessages.fileSystemFailed(hashSessionId(id), describeError(error)));
    }
    return error;
  }

  private async acquire(paths: SessionPaths, wait: number): Promise<FileLock> {
    const timing = { wait, staleAfter: this.lockTimeout };
    try {
      return await acquireFileLock(paths.lock, timing);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      await mkdir(paths.dir, { recursive: true, mode: DIR_MODE });
      return acquireFileLock(paths.lock, timing);
    }
  }

  /** The cross-process half of {@link withUserLock}: `critical`'s own errors pass through as they are. */
  private async acrossProcesses<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    let lock: FileLock;
    try {
      lock = await this.acquireUserLock(userId);
    } catch (error) {
      throw this.userLockFailure(error);
    }
    try {
      return await critical();
    } finally {
      await lock.release().catch((error: unknown) => this.logger.warn(SessionMessages.fileUserLockNotReleased(describeError(error))));
    }
  }

  private async acquireUserLock(userId: string): Promise<FileLock> {
    const path = join(this.locksRoot, `${sha256(userId)}.lock`);
    // Renewed well within staleAfter: only a holder that stopped (crashed, or frozen for
    // lockTimeout) ever looks abandoned, however long its critical section runs.
    const options = { wait: this.lockTimeout, staleAfter: this.lockTimeout, renewEvery: Math.max(1, Math.floor(this.lockTimeout / 3)) };
    try {
      return await acquireFileLock(path, options);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      // locks/ is made on first use, so stores that never lock a user keep the layout they had.
      await mkdir(this.locksRoot, { recursive: true, mode: DIR_MODE });
      return acquireFileLock(path, options);
    }
  }

  /** A busy user lock or a file system error as a 503-class error; no path (it would hold the user's hash) in it. */
  private userLockFailure(error: unknown): unknown {
    if (error instanceof LockTimeoutError) {
      return new SessionStoreUnavailableError(this.kind, error, SessionMessages.userLockTimeout('another process', this.lockTimeout));
    }
    if (errorCode(error) !== undefined) {
      return new SessionStoreUnavailableError(this.kind, undefined, SessionMessages.fileUserLockFailed(describeError(error)));
    }
    return error;
  }

  // ---- Per-user index -------------------------------------------------------------------------

  private async markedIds(userId: string): Promise<string[]> {
    return (await readDirectory(this.userDir(userId))).filter((name) => isSessionId(name));
  }

  private async addMarker(userId: string, id: string): Promise<void> {
    const dir = this.userDir(userId);
    // removeMarker may delete the user's directory between our mkdir and our write: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await writeFile(join(dir, id), '', { mode: FILE_MODE });
        return;
      } catch (error) {
        if (errorCode(error) !== 'ENOENT' || attempt > 3) throw error;
        await mkdir(dir, { recursive: true, mode: DIR_MODE });
      }
    }
  }

  /** Removes a marker, and the user's directory once it is empty, so `users/` holds only users with sessions. */
  private async removeMarker(userId: string, id: string): Promise<void> {
    const dir = this.userDir(userId);
    await removeFile(join(dir, id));
    await rmdir(dir).catch((error: unknown) => {
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(errorCode(error) ?? '')) throw error;
    });
  }

  /** Drops a marker whose session is gone, expired or someone else's, checked again under the session's lock. */
  private async pruneMarker(userId: string, id: string, paths: SessionPaths): Promise<void> {
    try {
      await this.locked(id, paths, async () => {
        const record = await this.load(id, paths, { quiet: true });
        if (!record || record.userId !== userId || !isLive(record)) await this.removeMarker(userId, id);
      });
    } catch (error) {
      // A session busy elsewhere keeps its marker until a later listing.
      if (!isBusy(error)) throw error;
    }
  }

  // ---- Sweeping -------------------------------------------------------------------------------

  private async sweepAll(): Promise<number> {
    const removed = await this.sweepShards();
    await this.sweepUserLocks();
    return removed;
  }

  private async sweepShards(): Promise<number> {
    let removed = 0;
    const failures: unknown[] = [];
    for (const outer of await readDirectory(this.sessionsRoot)) {
      if (!SHARD_NAME.test(outer)) continue;
      for (const inner of await readDirectory(join(this.sessionsRoot, outer))) {
        if (!SHARD_NAME.test(inner)) continue;
        const shard = join(this.sessionsRoot, outer, inner);
        const results = await inBatches(await readDirectory(shard), (name) =>
          // One entry the sweeper cannot handle (a directory named like a lock…) must not stop it for all the others.
          this.sweepEntry(shard, name).catch((error: unknown) => {
            failures.push(error);
            return false;
          }),
        );
        removed += results.filter(Boolean).length;
      }
    }
    if (failures.length > 0) {
      this.logger.warn(SessionMessages.fileSweepFailed(`${failures.length} entries failed, first: ${describeError(failures[0])}`));
    }
    return removed;
  }

  /** @returns true when this entry was an expired session that this call deleted. */
  private async sweepEntry(shard: string, name: string): Promise<boolean> {
    const path = join(shard, name);
    const id = name.slice(0, -5);
    if (name.endsWith('.json') && this.pathsOf(id)?.file === path) return this.sweepSession(id);
    if (name.endsWith('.lock') && this.pathsOf(id)?.lock === path) await breakStaleLock(path, this.lockTimeout);
    else if (LITTER_NAME.test(name)) await removeIfOlderThan(path, this.litterAge);
    return false;
  }

  /**
   * Deletes one session file if it has expired, and reports it. Both checks and the delete run
   * under the session's lock, which every write takes too: a session extended meanwhile is read
   * live here and kept. Of several processes sweeping at once, only the one whose unlink
   * succeeded reports the expiry, with the user read from the file it deleted.
   */
  private async sweepSession(id: string): Promise<boolean> {
    const paths = this.requirePaths(id);
    const seen = await this.load(id, paths, { quiet: true });
    if (!seen || isLive(seen)) return false;
    try {
      // No waiting: a session locked elsewhere is being written (or swept) right now.
      return await this.locked(
        id,
        paths,
        async () => {
          const current = await this.load(id, paths, { quiet: true });
          if (!current || isLive(current)) return false;
          const removed = await removeFile(paths.file);
          // Reported before the marker goes: a failure there must not lose an expiry already done.
          if (removed) this.reportExpired({ id, userId: current.userId });
          if (current.userId !== null) await this.removeMarker(current.userId, id);
          return removed;
        },
        0,
      );
    } catch (error) {
      if (isBusy(error)) return false;
      throw error;
    }
  }

  /** Breaks user locks left by crashed processes, and what a crashed lock-breaker left. */
  private async sweepUserLocks(): Promise<void> {
    const failures: unknown[] = [];
    await inBatches(await readDirectory(this.locksRoot), async (name) => {
      const path = join(this.locksRoot, name);
      try {
        if (USER_LOCK_NAME.test(name)) await breakStaleLock(path, this.lockTimeout);
        else if (USER_LOCK_LITTER_NAME.test(name)) await removeIfOlderThan(path, this.litterAge);
      } catch (error) {
        failures.push(error);
      }
    });
    if (failures.length > 0) {
      this.logger.warn(SessionMessages.fileSweepFailed(`${failures.length} user locks failed, first: ${describeError(failures[0])}`));
    }
  }
}

// ---- The session file ---------------------------------------------------------------------------

/**
 * `{"v":1,"c":…,"s":…,"e":…,"u":…,"k":{…},"d":{…}}`, built from each field's JSON as encodeFields
 * made it. `k`, the client record, is metadata beside the data and only written when there is
 * one, so files without it keep the shape (and version) they always had.
 */
function serialize(meta: SessionMeta, fields: Iterable<[name: string, json: string | undefined]>): string {
  const data: string[] = [];
  for (const [name, json] of fields) if (json !== undefined) data.push(`${JSON.stringify(name)}:${json}`);
  const { createdAt, lastSeenAt, expiresAt, userId, client } = meta;
  const clientPart = client ? `"k":${encodeClient(client)},` : '';
  return `{"v":${FORMAT_VERSION},"c":${createdAt},"s":${lastSeenAt},"e":${expiresAt},"u":${JSON.stringify(userId)},${clientPart}"d":{${data.join(',')}}}`;
}

/** The file's session, or null when it is not JSON, not this shape or not this version. */
function parseRecord(text: string): SessionRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(parsed)) return null;
  const { v, c, s, e, u, k = null, d } = parsed;
  if (v !== FORMAT_VERSION || ![c, s, e].every(isTimestamp) || !(u === null || typeof u === 'string') || !isPlainObject(d)) {
    return null;
  }
  const client = readClient(k);
  if (client === undefined) return null;
  // No prototype, and every field an own property: `__proto__` in a file stays plain data.
  const data: SessionFields = Object.create(null);
  for (const name of Object.keys(d)) defineField(data, name, d[name]);
  return { createdAt: c, lastSeenAt: s, expiresAt: e, userId: u, client, data };
}

const isTimestamp = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

const isLive = (record: SessionRecord): boolean => record.expiresAt > Date.now();

// ---- File system --------------------------------------------------------------------------------

/**
 * Replaces `target` with `text` in one step: a temp file in the same directory is written, synced
 * and renamed over it, so readers (and a crash) see the old content or the new, never a mix.
 * `syncDirectory` also makes the new name itself durable (a new file, not a replaced one).
 */
async function writeAtomically(target: string, text: string, { syncDirectory: syncDir = false } = {}): Promise<void> {
  const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', FILE_MODE);
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  if (syncDir) await syncDirectory(dirname(target));
}

/** Makes the directory's entries durable. Platforms that cannot sync a directory (Windows) skip it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EBADF', 'ENOTSUP'].includes(errorCode(error) ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

/** @returns true when this call deleted the file; false when it was already gone. */
async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

/** The names in a directory; none when it does not exist (yet, or any more). */
async function readDirectory(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return [];
    throw error;
  }
}

/**
 * Creates the store's directories (mode 0700) and proves they can be written, so a bad directory
 * fails at start-up with a message that names it, not on the first request.
 */
async function prepareDirectory(root: string): Promise<void> {
  try {
    for (const dir of [root, join(root, 'sessions'), join(root, 'users')]) {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
      const probe = join(dir, `.probe-${randomBytes(6).toString('hex')}`);
      await writeFile(probe, '', { flag: 'wx', mode: FILE_MODE });
      await unlink(probe);
    }
  } catch (error) {
    throw new SessionConfigError([SessionMessages.fileDirectory(root, directoryProblem(error))]);
  }
}

function directoryProblem(error: unknown): string {
  switch (errorCode(error)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way where a directory should be';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return describeError(error);
  }
}

/** Runs `work` on every item, at most {@link BATCH} at a time, keeping the order. */
async function inBatches<T, R>(items: T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) results.push(...(await Promise.all(items.slice(i, i + BATCH).map(work))));
  return results;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** A lock held elsewhere right now, as {@link FileStore.locked} reports it. */
function isBusy(error: unknown): boolean {
  return error instanceof SessionStoreUnavailableError && error.cause instanceof LockTimeoutError;
}

/** A file system error as its code and call, without its path: paths hold session ids, which logs never show. */
function describeError(error: unknown): string {
  const { code, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  if (typeof code === 'string') return syscall ? `${code} in ${syscall}()` : code;
  return error instanceof Error ? error.message : String(error);
}
