import { Logger } from '@nestjs/common';
import type { OnApplicationShutdown } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { isSessionId, maskSessionId } from '../crypto/index.js';
import { SessionConfigError, SessionError, SessionMessages, SessionStoreUnavailableError } from '../session.errors.js';
import { storeConfigProblems } from '../session.options.js';
import { isPlainObject } from '../session.validation.js';
import { applyChange, defineField, encodeFields, fieldsAsJson } from './field-codec.js';
import { acquireFileLock, breakStaleLock, LockTimeoutError, removeIfOlderThan } from './file-lock.js';
import type { FileLock } from './file-lock.js';
import { SessionStore } from './session-store.js';
import { startSweeper } from './store-runtime.js';
import type { SessionChange, SessionFields, SessionSummary, StoredSession } from './session-store.js';
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

/** A session file as read: `{ v, c, s, e, u, d }` on disk. */
interface SessionRecord {
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  data: SessionFields;
}

/** The metadata of a session file. */
type SessionMeta = Pick<StoredSession, 'createdAt' | 'lastSeenAt' | 'expiresAt' | 'userId'>;

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

/**
 * Sessions as files in one directory: for a single host, shared by all of its processes (Node
 * cluster, PM2), surviving restarts, with nothing else to run. Use Redis or PostgreSQL when the
 * application runs on several hosts.
 *
 * Layout: `sessions/<aa>/<bb>/<id>.json`, where `aabb` starts the SHA-256 of the id, so no
 * directory holds millions of files, and `users/<sha256 of user id>/<id>`: empty markers that
 * index each user's sessions. Ids are checked before they become paths: an id this library did
 * not generate is simply absent, and no id can name a file outside the directory.
 *
 * Every write goes to a temp file that is synced and renamed over the session file, so a reader
 * sees the old or the new session, never half of one. A change is applied under a per-session
 * lock file, only while the session exists: concurrent writers to different fields keep each
 * other's work, and a write racing a destroy never brings the session back. Expiry is enforced
 * on read; a sweeper (which never keeps the process alive) deletes expired files, and any number
 * of processes may sweep the same directory at once.
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

  private readonly logger = new Logger('SessionModule');
  private readonly sessionsRoot: string;
  private readonly usersRoot: string;
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
    this.litterAge = Math.max(LITTER_AGE, lockTimeout);
    this.timer = startSweeper(() => this.sweep(), sweepInterval, (error) =>
      this.logger.warn(SessionMessages.fileSweepFailed(describeError(error))),
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
    return record && isLive(record) ? { id, ...record } : null;
  }

  async create(session: StoredSession): Promise<void> {
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
      const meta = { createdAt: current.createdAt, lastSeenAt: change.lastSeenAt, expiresAt: change.expiresAt, userId };

      if (userId !== null && userId !== current.userId) await this.addMarker(userId, id);
      await writeAtomically(paths.file, serialize(meta, fields));
      if (current.userId !== null && current.userId !== userId) await this.removeMarker(current.userId, id);
      return true;
    });
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
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
    const listed = await inBatches(await this.markedIds(userId), async (id) => {
      const paths = this.requirePaths(id);
      const record = await this.load(id, paths, { quiet: true });
      if (record && record.userId === userId && isLive(record)) {
        return { id, createdAt: record.createdAt, lastSeenAt: record.lastSeenAt, expiresAt: record.expiresAt };
      }
      await this.pruneMarker(userId, id, paths);
      return undefined;
    });
    return listed.filter((session) => session !== undefined).sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<number> {
    const ids = (await this.markedIds(userId)).filter((id) => id !== exceptId);
    const destroyed = await inBatches(ids, (id) => {
      const paths = this.requirePaths(id);
      return this.locked(id, paths, async () => {
        const record = await this.load(id, paths, { quiet: true });
        // Only sessions this user still owns: one moved to another user since is not theirs to end.
        const counted = record?.userId === userId && (await removeFile(paths.file)) && isLive(record);
        await this.removeMarker(userId, id);
        return counted;
      });
    });
    return destroyed.filter(Boolean).length;
  }

  /**
   * Deletes every expired session file now, with stale temp and lock files left by crashed
   * processes. The sweeper calls this on its interval; any number of processes may run it on the
   * same directory at once, and each expired session is counted by the one that deleted it.
   * @returns how many sessions this call removed.
   */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepShards().finally(() => {
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
    this.logger.warn(SessionMessages.fileUnreadable(maskSessionId(id), problem));
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
      await lock.release().catch((error: unknown) => this.logger.warn(SessionMessages.fileLockNotReleased(maskSessionId(id), describeError(error))));
    }
  }

  /**
   * What a failed call throws: a busy lock or a file system error becomes a
   * SessionStoreUnavailableError (a 503) that names the session by its masked id only, since
   * the file system's own messages carry paths, and paths carry raw ids.
   */
  private failure(id: string, error: unknown): unknown {
    if (error instanceof LockTimeoutError) {
      return new SessionStoreUnavailableError(this.kind, error, SessionMessages.fileLockTimeout(maskSessionId(id), this.lockTimeout));
    }
    if (errorCode(error) !== undefined) {
      return new SessionStoreUnavailableError(this.kind, undefined, SessionMessages.fileSystemFailed(maskSessionId(id), describeError(error)));
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
}

// ---- The session file ---------------------------------------------------------------------------

/** `{"v":1,"c":…,"s":…,"e":…,"u":…,"d":{…}}`, built from each field's JSON as encodeFields made it. */
function serialize(meta: SessionMeta, fields: Iterable<[name: string, json: string | undefined]>): string {
  const data: string[] = [];
  for (const [name, json] of fields) if (json !== undefined) data.push(`${JSON.stringify(name)}:${json}`);
  const { createdAt, lastSeenAt, expiresAt, userId } = meta;
  return `{"v":${FORMAT_VERSION},"c":${createdAt},"s":${lastSeenAt},"e":${expiresAt},"u":${JSON.stringify(userId)},"d":{${data.join(',')}}}`;
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
  const { v, c, s, e, u, d } = parsed;
  if (v !== FORMAT_VERSION || ![c, s, e].every(isTimestamp) || !(u === null || typeof u === 'string') || !isPlainObject(d)) {
    return null;
  }
  // No prototype, and every field an own property: `__proto__` in a file stays plain data.
  const data: SessionFields = Object.create(null);
  for (const name of Object.keys(d)) defineField(data, name, d[name]);
  return { createdAt: c, lastSeenAt: s, expiresAt: e, userId: u, data };
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
