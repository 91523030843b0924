/** The file system as the file store uses it: atomic writes, durable directories, bounded batches. */

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SessionConfigError, SessionMessages } from '../../session.errors.js';
import { describeSystemError, errorCode } from '../toolkit/errors.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;
/** Files handled at once by the sweeper and the per-user operations: bounded, so no EMFILE. */
const BATCH = 64;

/**
 * Replaces `target` with `text` in one step: a temp file in the same directory is written, synced
 * and renamed over it, so readers (and a crash) see the old content or the new, never a mix.
 * `syncDirectory` also makes the new name itself durable (a new file, not a replaced one).
 */
export async function writeAtomically(target: string, text: string, { syncDirectory: syncDir = false } = {}): Promise<void> {
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
export async function syncDirectory(dir: string): Promise<void> {
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
export async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

/** The names in a directory; none when it does not exist (yet, or any more). */
export async function readDirectory(dir: string): Promise<string[]> {
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
export async function prepareDirectory(root: string): Promise<void> {
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
      return describeSystemError(error);
  }
}

/** Runs `work` on every item, at most {@link BATCH} at a time, keeping the order. */
export async function inBatches<T, R>(items: T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) results.push(...(await Promise.all(items.slice(i, i + BATCH).map(work))));
  return results;
}
