import type { OnApplicationShutdown } from '@nestjs/common';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SessionMessages } from '../../session.errors.js';
import { assertUserIdKeepable, SessionStore } from '../session-store.js';
import type { SessionChange, SessionSummary, StoredSession } from '../session-store.js';
import { FILE_DEFAULTS } from '../store-config.js';
import type { FileStoreConfig } from '../store-config.js';
import { describeSystemError, errorCode } from '../toolkit/errors.js';
import { applyChange, clientMember, encodeFields, fieldsAsJson } from '../toolkit/field-codec.js';
import { checkStoreOptions } from '../toolkit/options-check.js';
import { encodeRecord } from '../toolkit/record-codec.js';
import { startSweeper } from '../toolkit/store-runtime.js';
import { isLive } from './file.codec.js';
import { FilePaths } from './file.paths.js';
import { SessionFiles } from './file.sessions.js';
import { FileSweeper } from './file.sweeper.js';
import { inBatches, prepareDirectory, removeFile, syncDirectory, writeAtomically } from './file.system.js';
import { FileUserIndex } from './file.user-index.js';
import { FileUserLock } from './file.user-lock.js';

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

  private readonly paths: FilePaths;
  private readonly files: SessionFiles;
  private readonly userIndex: FileUserIndex;
  private readonly userLock: FileUserLock;
  private readonly sweeper: FileSweeper;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  /** Use {@link FileStore.open}: the directory must be checked before the store is used. */
  private constructor(
    /** The store's directory, absolute. */
    readonly directory: string,
    sweepInterval: number,
    lockTimeout: number,
  ) {
    super();
    const logger = () => this.logger;
    const lockSettings = { kind: this.kind, lockTimeout, logger };
    this.paths = new FilePaths(directory);
    this.files = new SessionFiles(lockSettings);
    this.userIndex = new FileUserIndex(this.paths, this.files);
    this.userLock = new FileUserLock(this.paths, lockSettings);
    const { paths, files, userIndex } = this;
    this.sweeper = new FileSweeper({ paths, files, userIndex, lockTimeout, logger, report: (expired) => this.reportExpired(expired) });
    this.timer = startSweeper(
      () => this.sweep(),
      sweepInterval,
      (error) => this.logger.warn(SessionMessages.fileSweepFailed(describeSystemError(error))),
    );
  }

  /**
   * Opens a store on `directory`, creating it if needed. Fails with a SessionConfigError naming
   * the directory when it cannot be created or written.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const { directory, sweepInterval = FILE_DEFAULTS.sweepInterval, lockTimeout = FILE_DEFAULTS.lockTimeout } = options;
    checkStoreOptions({ type: 'file', directory, sweepInterval, lockTimeout });

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
    const paths = this.paths.session(id);
    if (!paths) return null;
    const record = await this.files.load(id, paths);
    if (!record || !isLive(record)) return null;
    const { client, ...rest } = record;
    return { id, ...rest, ...clientMember(client) };
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    const paths = this.paths.requireSession(session.id);
    const text = encodeRecord(session, encodeFields(session.data));
    await this.files.locked(session.id, paths, async () => {
      const previous = await this.files.load(session.id, paths, { quiet: true });
      // The index is written first: a session a user can be signed in with is always listed.
      if (session.userId !== null) await this.userIndex.addMarker(session.userId, session.id);
      await writeAtomically(paths.file, text, { syncDirectory: true });
      if (previous?.userId && previous.userId !== session.userId) await this.userIndex.removeMarker(previous.userId, session.id);
    });
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    // Encoded first, so a value JSON cannot carry leaves the session as it was.
    const encoded = encodeFields(change.set);
    const paths = this.paths.session(id);
    if (!paths) return false;
    return this.files.locked(id, paths, async () => {
      const current = await this.files.load(id, paths, { quiet: true });
      if (!current || !isLive(current)) return false;

      const fields = fieldsAsJson(current.data);
      applyChange(fields, change.unset, encoded);
      const userId = change.userId === undefined ? current.userId : change.userId;
      const client = change.client === undefined ? current.client : change.client;
      const meta = { createdAt: current.createdAt, lastSeenAt: change.lastSeenAt, expiresAt: change.expiresAt, userId, client };

      if (userId !== null && userId !== current.userId) await this.userIndex.addMarker(userId, id);
      await writeAtomically(paths.file, encodeRecord(meta, fields));
      if (current.userId !== null && current.userId !== userId) await this.userIndex.removeMarker(current.userId, id);
      return true;
    });
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    const text = encodeRecord(next, encodeFields(next.data));
    const nextPaths = this.paths.requireSession(next.id);
    const oldPaths = this.paths.session(oldId);
    if (!oldPaths) return false;

    const move = async (): Promise<boolean> => {
      const current = await this.files.load(oldId, oldPaths, { quiet: true });
      if (!current || !isLive(current)) return false;

      if (next.userId !== null) await this.userIndex.addMarker(next.userId, next.id);
      await writeAtomically(nextPaths.file, text, { syncDirectory: true });
      const sameId = oldId === next.id;
      if (!sameId) {
        await removeFile(oldPaths.file);
        await syncDirectory(oldPaths.dir);
      }
      if (current.userId !== null && !(sameId && current.userId === next.userId)) await this.userIndex.removeMarker(current.userId, oldId);
      return true;
    };
    if (oldId === next.id) return this.files.locked(oldId, oldPaths, move);
    // Both ids are locked: the old one so that a destroy cannot slip between the check and the
    // move, the new one so that index pruning never sees the new marker before the new file.
    return this.files.locked(oldId, oldPaths, () => this.files.locked(next.id, nextPaths, move));
  }

  async destroy(id: string): Promise<void> {
    const paths = this.paths.session(id);
    if (!paths) return;
    // Under the lock, so a commit racing this destroy lands before it or finds the file gone.
    await this.files.locked(id, paths, async () => {
      const current = await this.files.load(id, paths, { quiet: true });
      try {
        await removeFile(paths.file);
      } catch (error) {
        // Something that is not a file sits where the session was: nothing to destroy.
        if (errorCode(error) !== 'EISDIR') throw error;
        this.files.unreadable(id, 'is a directory');
      }
      if (current?.userId) await this.userIndex.removeMarker(current.userId, id);
    });
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const listed = await inBatches(await this.userIndex.markedIds(userId), async (id) => {
      const paths = this.paths.requireSession(id);
      const record = await this.files.load(id, paths, { quiet: true });
      if (record && record.userId === userId && isLive(record)) {
        const { createdAt, lastSeenAt, expiresAt, client } = record;
        return { id, createdAt, lastSeenAt, expiresAt, ...clientMember(client) };
      }
      await this.userIndex.pruneMarker(userId, id, paths);
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
    const ids = (await this.userIndex.markedIds(userId)).filter((id) => id !== exceptId);
    const destroyed = await inBatches(ids, (id) => {
      const paths = this.paths.requireSession(id);
      return this.files.locked(id, paths, async () => {
        const record = await this.files.load(id, paths, { quiet: true });
        // Only sessions this user still owns: one moved to another user since is not theirs to end.
        const removed = record?.userId === userId && (await removeFile(paths.file));
        await this.userIndex.removeMarker(userId, id);
        if (removed && !isLive(record)) this.reportExpired({ id, userId });
        return removed && isLive(record);
      });
    });
    return ids.filter((_, i) => destroyed[i]);
  }

  /**
   * The user lock every process sharing the directory sees ({@link withUserLock} queues this
   * process's callers first): `locks/<sha256 of the user id>.lock`, a lease lock like the session
   * locks, renewed while `critical` runs so a long sign-in never loses it to age. A holder that
   * dies frees it at once (its pid is gone) or after `lockTimeout`. Waiting longer than
   * `lockTimeout` for another process fails with SessionStoreUnavailableError (a 503). Different
   * users have different lock files, so they never wait for each other.
   */
  protected override lockUserAcrossNodes<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return this.userLock.run(userId, critical);
  }

  /**
   * Deletes every expired session file now, with stale temp and lock files left by crashed
   * processes. The sweeper calls this on its interval; any number of processes may run it on the
   * same directory at once, and each expired session is counted, and reported to the expiry
   * listeners, by the one that deleted it.
   * @returns how many sessions this call removed.
   */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweeper.sweep().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  async ping(): Promise<void> {
    await access(this.paths.sessionsRoot, constants.R_OK | constants.W_OK | constants.X_OK);
  }

  /** Stops the sweeper, after the sweep under way. Sessions stay readable; expiry is still enforced on read. */
  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping?.catch(() => 0);
  }
}
