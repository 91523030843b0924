/**
 * One session's file as the store's operations use it: read and checked, and changed only under
 * the session's lock. What fails here leaves as a SessionStoreUnavailableError (a 503) that names
 * the session by its masked id only.
 */

import type { LoggerService } from '@nestjs/common';
import { mkdir, readFile } from 'node:fs/promises';
import { SessionMessages, SessionStoreUnavailableError } from '../../session.errors.js';
import { parseSessionFile } from './file.codec.js';
import type { SessionFileRecord } from './file.codec.js';
import { acquireFileLock, LockTimeoutError } from './file.locks.js';
import type { FileLock } from './file.locks.js';
import type { SessionPaths } from './file.paths.js';
import { describeSystemError, errorCode } from '../toolkit/errors.js';
import { DIR_MODE } from './file.system.js';

/** What the store's locks, of a session (here) or of a user (file.user-lock.ts), take from the store. */
export interface FileLockSettings {
  /** The store's kind, for the errors of a busy lock or a failed file system call. */
  kind: string;
  /** How long to wait for another process's lock; a lock older than this is taken to be abandoned (ms). */
  lockTimeout: number;
  /** The store's logger, asked at each warning: the module may replace it after construction. */
  logger: () => LoggerService;
}

export class SessionFiles {
  constructor(private readonly options: FileLockSettings) {}

  /** The session file as a record (expired or not), or null when it is missing or not a session file. */
  async load(id: string, paths: SessionPaths, { quiet = false } = {}): Promise<SessionFileRecord | null> {
    let text: string;
    try {
      text = await readFile(paths.file, 'utf8');
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      if (code === 'EISDIR') return quiet ? null : this.unreadable(id, 'is a directory');
      throw this.failure(id, error);
    }
    const record = parseSessionFile(text);
    if (!record && !quiet) this.unreadable(id, 'is not a session file of this version');
    return record;
  }

  unreadable(id: string, problem: string): null {
    this.options.logger().warn(SessionMessages.fileUnreadable(id, problem));
    return null;
  }

  /**
   * Runs `work` holding the session's lock. A lock still held by another live process after
   * `wait` ms fails the call with SessionStoreUnavailableError (a 503), never a hang.
   */
  async locked<T>(id: string, paths: SessionPaths, work: () => Promise<T>, wait = this.options.lockTimeout): Promise<T> {
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
      await lock.release().catch((error: unknown) => this.options.logger().warn(SessionMessages.fileLockNotReleased(id, describeSystemError(error))));
    }
  }

  /**
   * What a failed call throws: a busy lock or a file system error becomes a
   * SessionStoreUnavailableError (a 503) that names the session by its masked id only, since
   * the file system's own messages carry paths, and paths carry raw ids.
   */
  private failure(id: string, error: unknown): unknown {
    const { kind, lockTimeout } = this.options;
    if (error instanceof LockTimeoutError) {
      return new SessionStoreUnavailableError(kind, error, SessionMessages.fileLockTimeout(id, lockTimeout));
    }
    if (errorCode(error) !== undefined) {
      return new SessionStoreUnavailableError(kind, undefined, SessionMessages.fileSystemFailed(id, describeSystemError(error)));
    }
    return error;
  }

  private async acquire(paths: SessionPaths, wait: number): Promise<FileLock> {
    const timing = { wait, staleAfter: this.options.lockTimeout };
    try {
      return await acquireFileLock(paths.lock, timing);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      await mkdir(paths.dir, { recursive: true, mode: DIR_MODE });
      return acquireFileLock(paths.lock, timing);
    }
  }
}

/** A lock held elsewhere right now, as {@link SessionFiles.locked} reports it. */
export function isBusy(error: unknown): boolean {
  return error instanceof SessionStoreUnavailableError && error.cause instanceof LockTimeoutError;
}
