/**
 * Where the file store keeps what, under its directory: `sessions/<aa>/<bb>/<id>.json` and its
 * lock `<id>.lock` beside it, where `aabb` starts the SHA-256 of the id, so no directory holds
 * millions of files; `users/<sha256 of user id>/<id>`, the empty markers that index each user's
 * sessions; `locks/<sha256 of user id>.lock`, the per-user locks. Ids are checked before they
 * become paths, and user ids only ever appear hashed.
 */

import { createHash } from 'node:crypto';
import { isAbsolute, join, relative } from 'node:path';
import { isSessionId } from '../../crypto/index.js';
import { SessionError, SessionMessages } from '../../session.errors.js';

/** Where one session lives: its shard directory, its file and its lock. */
export interface SessionPaths {
  dir: string;
  file: string;
  lock: string;
}

export const SHARD_NAME = /^[0-9a-f]{2}$/;
/** `<id>.json.<random>.tmp`, `<id>.lock.<tag>.break`, `<id>.lock.<random>.stale`. */
export const LITTER_NAME = /^[A-Za-z0-9_-]{43}\.(json|lock)\.[A-Za-z0-9_-]+\.(tmp|break|stale)$/;
/** `locks/<sha256 of a user id>.lock`: the per-user lock of {@link FileStore.withUserLock}. */
export const USER_LOCK_NAME = /^[0-9a-f]{64}\.lock$/;
/** What breaking a user lock leaves behind if the breaker crashes: `<lock>.<tag>.break`, `<lock>.<random>.stale`. */
export const USER_LOCK_LITTER_NAME = /^[0-9a-f]{64}\.lock\.[A-Za-z0-9_-]+\.(break|stale)$/;

export class FilePaths {
  readonly sessionsRoot: string;
  readonly usersRoot: string;
  readonly locksRoot: string;

  /** `directory`: the store's directory, absolute. */
  constructor(directory: string) {
    this.sessionsRoot = join(directory, 'sessions');
    this.usersRoot = join(directory, 'users');
    this.locksRoot = join(directory, 'locks');
  }

  /** The paths of a session, or undefined for an id that is not ours (so it is simply absent). */
  session(id: string): SessionPaths | undefined {
    if (!isSessionId(id)) return undefined;
    const hash = sha256(id);
    const dir = join(this.sessionsRoot, hash.slice(0, 2), hash.slice(2, 4));
    const paths = { dir, file: join(dir, `${id}.json`), lock: join(dir, `${id}.lock`) };
    // Defence in depth: whatever isSessionId let through, no path leaves the directory.
    return isInside(this.sessionsRoot, paths.file) && isInside(this.sessionsRoot, paths.lock) ? paths : undefined;
  }

  /** The paths of an id about to be written: one we did not generate is refused, writing nothing. */
  requireSession(id: string): SessionPaths {
    const paths = this.session(id);
    if (!paths) throw new SessionError('SESSION_INVALID_ID', SessionMessages.fileInvalidId());
    return paths;
  }

  /** Hashed as UTF-8, one-to-one on the user ids the store takes (see assertUserIdKeepable). */
  userDir(userId: string): string {
    return join(this.usersRoot, sha256(userId));
  }

  userLock(userId: string): string {
    return join(this.locksRoot, `${sha256(userId)}.lock`);
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
