/**
 * Expiry sweeping: deletes expired session files, and what crashed processes left behind (stale
 * locks, temp files, lock-breaking leftovers). Any number of processes may sweep one directory at
 * once: each expired session is deleted under its lock by exactly one of them, which reports it.
 */

import type { LoggerService } from '@nestjs/common';
import { join } from 'node:path';
import { SessionMessages } from '../../session.errors.js';
import type { ExpiredSession } from '../session-store.js';
import { isLive } from './file.codec.js';
import { breakStaleLock, removeIfOlderThan } from './file.locks.js';
import { LITTER_NAME, SHARD_NAME, USER_LOCK_LITTER_NAME, USER_LOCK_NAME } from './file.paths.js';
import type { FilePaths } from './file.paths.js';
import { isBusy } from './file.sessions.js';
import type { SessionFiles } from './file.sessions.js';
import { describeSystemError } from '../toolkit/errors.js';
import { inBatches, readDirectory, removeFile } from './file.system.js';
import type { FileUserIndex } from './file.user-index.js';

/** Temp files and lock-breaking leftovers older than this were left by a crash (ms, at least lockTimeout). */
const LITTER_AGE = 60_000;

export interface FileSweeperOptions {
  paths: FilePaths;
  files: SessionFiles;
  userIndex: FileUserIndex;
  /** A lock older than this (ms) is abandoned. */
  lockTimeout: number;
  /** The store's logger, asked at each warning: the module may replace it after construction. */
  logger: () => LoggerService;
  /** Hands one expiry to the store's listeners. */
  report: (expired: ExpiredSession) => void;
}

export class FileSweeper {
  private readonly litterAge: number;

  constructor(private readonly options: FileSweeperOptions) {
    this.litterAge = Math.max(LITTER_AGE, options.lockTimeout);
  }

  /** @returns how many sessions this call removed. */
  async sweep(): Promise<number> {
    const removed = await this.sweepShards();
    await this.sweepUserLocks();
    return removed;
  }

  private async sweepShards(): Promise<number> {
    const { sessionsRoot } = this.options.paths;
    let removed = 0;
    const failures: unknown[] = [];
    for (const outer of await readDirectory(sessionsRoot)) {
      if (!SHARD_NAME.test(outer)) continue;
      for (const inner of await readDirectory(join(sessionsRoot, outer))) {
        if (!SHARD_NAME.test(inner)) continue;
        const shard = join(sessionsRoot, outer, inner);
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
      this.options.logger().warn(SessionMessages.fileSweepFailed(`${failures.length} entries failed, first: ${describeSystemError(failures[0])}`));
    }
    return removed;
  }

  /** @returns true when this entry was an expired session that this call deleted. */
  private async sweepEntry(shard: string, name: string): Promise<boolean> {
    const { paths, lockTimeout } = this.options;
    const path = join(shard, name);
    const id = name.slice(0, -5);
    if (name.endsWith('.json') && paths.session(id)?.file === path) return this.sweepSession(id);
    if (name.endsWith('.lock') && paths.session(id)?.lock === path) await breakStaleLock(path, lockTimeout);
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
    const { files, userIndex, report } = this.options;
    const paths = this.options.paths.requireSession(id);
    const seen = await files.load(id, paths, { quiet: true });
    if (!seen || isLive(seen)) return false;
    try {
      // No waiting: a session locked elsewhere is being written (or swept) right now.
      return await files.locked(
        id,
        paths,
        async () => {
          const current = await files.load(id, paths, { quiet: true });
          if (!current || isLive(current)) return false;
          const removed = await removeFile(paths.file);
          // Reported before the marker goes: a failure there must not lose an expiry already done.
          if (removed) report({ id, userId: current.userId });
          if (current.userId !== null) await userIndex.removeMarker(current.userId, id);
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
    const { paths, lockTimeout } = this.options;
    const failures: unknown[] = [];
    await inBatches(await readDirectory(paths.locksRoot), async (name) => {
      const path = join(paths.locksRoot, name);
      try {
        if (USER_LOCK_NAME.test(name)) await breakStaleLock(path, lockTimeout);
        else if (USER_LOCK_LITTER_NAME.test(name)) await removeIfOlderThan(path, this.litterAge);
      } catch (error) {
        failures.push(error);
      }
    });
    if (failures.length > 0) {
      this.options.logger().warn(SessionMessages.fileSweepFailed(`${failures.length} user locks failed, first: ${describeSystemError(failures[0])}`));
    }
  }
}
