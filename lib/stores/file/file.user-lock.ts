/**
 * The cross-process half of {@link FileStore.withUserLock}: `locks/<sha256 of the user id>.lock`,
 * a lease lock like the session locks, renewed while the critical section runs.
 */

import { mkdir } from 'node:fs/promises';
import { SessionMessages, SessionStoreUnavailableError } from '../../session.errors.js';
import { acquireFileLock, LockTimeoutError } from './file.locks.js';
import type { FileLock } from './file.locks.js';
import type { FilePaths } from './file.paths.js';
import type { FileLockSettings } from './file.sessions.js';
import { describeSystemError, errorCode } from '../toolkit/errors.js';
import type { UserLock } from '../toolkit/user-lock.js';
import { DIR_MODE } from './file.system.js';

export class FileUserLock implements UserLock {
  constructor(
    private readonly paths: FilePaths,
    private readonly options: FileLockSettings,
  ) {}

  /** Runs `critical` holding the user's lock: `critical`'s own errors pass through as they are. */
  async run<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    let lock: FileLock;
    try {
      lock = await this.acquire(userId);
    } catch (error) {
      throw this.failure(error);
    }
    try {
      return await critical();
    } finally {
      await lock.release().catch((error: unknown) => this.options.logger().warn(SessionMessages.fileUserLockNotReleased(describeSystemError(error))));
    }
  }

  private async acquire(userId: string): Promise<FileLock> {
    const { lockTimeout } = this.options;
    const path = this.paths.userLock(userId);
    // Renewed well within staleAfter: only a holder that stopped (crashed, or frozen for
    // lockTimeout) ever looks abandoned, however long its critical section runs.
    const options = { wait: lockTimeout, staleAfter: lockTimeout, renewEvery: Math.max(1, Math.floor(lockTimeout / 3)) };
    try {
      return await acquireFileLock(path, options);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      // locks/ is made on first use, so stores that never lock a user keep the layout they had.
      await mkdir(this.paths.locksRoot, { recursive: true, mode: DIR_MODE });
      return acquireFileLock(path, options);
    }
  }

  /** A busy user lock or a file system error as a 503-class error; no path (it would hold the user's hash) in it. */
  private failure(error: unknown): unknown {
    const { kind, lockTimeout } = this.options;
    if (error instanceof LockTimeoutError) {
      return new SessionStoreUnavailableError(kind, error, SessionMessages.userLockTimeout('another process', lockTimeout));
    }
    if (errorCode(error) !== undefined) {
      return new SessionStoreUnavailableError(kind, undefined, SessionMessages.fileUserLockFailed(describeSystemError(error)));
    }
    return error;
  }
}
