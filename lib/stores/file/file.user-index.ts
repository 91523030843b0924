/**
 * The per-user index: `users/<sha256 of user id>/<id>`, one empty marker per session of the user.
 * A marker may outlive its session (it is written before the session and removed after it), so
 * whoever reads the index checks each session, and prunes the markers that no longer match.
 */

import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSessionId } from '../../crypto/index.js';
import { isLive } from './file.codec.js';
import type { FilePaths, SessionPaths } from './file.paths.js';
import { isBusy } from './file.sessions.js';
import type { SessionFiles } from './file.sessions.js';
import { errorCode } from '../toolkit/errors.js';
import { DIR_MODE, FILE_MODE, readDirectory, removeFile } from './file.system.js';

export class FileUserIndex {
  constructor(
    private readonly paths: FilePaths,
    private readonly files: SessionFiles,
  ) {}

  async markedIds(userId: string): Promise<string[]> {
    return (await readDirectory(this.paths.userDir(userId))).filter((name) => isSessionId(name));
  }

  async addMarker(userId: string, id: string): Promise<void> {
    const dir = this.paths.userDir(userId);
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
  async removeMarker(userId: string, id: string): Promise<void> {
    const dir = this.paths.userDir(userId);
    await removeFile(join(dir, id));
    await rmdir(dir).catch((error: unknown) => {
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(errorCode(error) ?? '')) throw error;
    });
  }

  /** Drops a marker whose session is gone, expired or someone else's, checked again under the session's lock. */
  async pruneMarker(userId: string, id: string, paths: SessionPaths): Promise<void> {
    try {
      await this.files.locked(id, paths, async () => {
        const record = await this.files.load(id, paths, { quiet: true });
        if (!record || record.userId !== userId || !isLive(record)) await this.removeMarker(userId, id);
      });
    } catch (error) {
      // A session busy elsewhere keeps its marker until a later listing.
      if (!isBusy(error)) throw error;
    }
  }
}
