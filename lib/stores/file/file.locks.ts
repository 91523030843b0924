import { createHash, randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { link, open, rename, stat, unlink, utimes } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { hostname } from 'node:os';
import { errorCode, ignoreCode } from '../toolkit/errors.js';
import { backOff } from '../toolkit/retry.js';
import type { Backoff } from '../toolkit/retry.js';

/**
 * Advisory locks between the processes of one host that share a directory (Node cluster, PM2).
 *
 * A lock is a file created with O_EXCL (`open(path, 'wx')`), which exactly one process can do; it
 * holds the holder's pid, host and a random token, so a holder only ever removes its own lock.
 * Locks are leases: one older than `staleAfter` (by its mtime), or whose holder is a process of
 * this host that no longer exists, is stale and may be broken. Breaking is itself exclusive (one
 * `.break` marker per stale lock, created with O_EXCL), re-checks the lock under that marker, and
 * moves the lock aside before deleting it, putting it back if it turned out to be a fresh one: so
 * two processes never both "recover" a lock and both believe they hold it.
 *
 * The lease has the usual limit: a holder that stalls for longer than `staleAfter` may lose its
 * lock while still working. Session locks guard one small file read and write; a lock held for
 * longer (a user's sign-in, which runs several store calls) is renewed while held (`renewEvery`),
 * so only a holder that stopped running ever looks abandoned.
 */

/** How long to wait for a lock, and when a lock left by someone else counts as abandoned (ms). */
export interface LockTiming {
  wait: number;
  staleAfter: number;
  /**
   * While held, refresh the lock's mtime this often (ms), so a long critical section never
   * looks stale. Must be well under `staleAfter`. @default never
   */
  renewEvery?: number;
}

export interface FileLock {
  /** Removes the lock if it is still ours. */
  release(): Promise<void>;
}

/** The lock stayed held by a live holder for the whole wait. (No path in it: paths name sessions.) */
export class LockTimeoutError extends Error {
  constructor(readonly waited: number) {
    super(`lock still held by another holder after ${waited} ms`);
  }
}

/** What a lock file says about its holder. */
interface LockInfo {
  /** The holder's token, or a digest of an unreadable lock: names this one lock, never a later one. */
  tag: string;
  pid: number | undefined;
  host: string | undefined;
  /** Milliseconds since the lock was written. */
  age: number;
}

/**
 * Pids are only comparable within one pid namespace: containers sharing a volume each have their
 * own, so a holder's pid is checked only when it was written by this host and namespace.
 */
const HOST = hostIdentity();
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
/** A broken-lock race can free the lock repeatedly; a waiter with no time left tries this many more times. */
const EXTRA_TRIES = 3;
/** Waits while a lock is held: 1, 2, 4… up to 25 ms, jittered by ±50%. */
export const FILE_LOCK_BACKOFF: Backoff = { first: 1, max: 25, jitter: [0.5, 1.5] };

/**
 * Takes the lock at `path`, waiting up to `timing.wait` ms (0: one try) for a live holder.
 * @throws LockTimeoutError when a live holder kept it the whole time.
 */
export async function acquireFileLock(path: string, timing: LockTiming): Promise<FileLock> {
  const token = randomBytes(12).toString('base64url');
  const deadline = Date.now() + timing.wait;
  let extraTries = 0;
  for (let attempt = 0; ; attempt++) {
    if (await tryCreate(path, token)) return held(path, token, timing.renewEvery);

    const holder = await inspect(path);
    const freed = holder === undefined || (isStale(holder, timing.staleAfter) && (await breakLock(path, holder, timing.staleAfter)));
    const left = deadline - Date.now();
    if (freed) {
      if (left <= 0 && ++extraTries > EXTRA_TRIES) throw new LockTimeoutError(timing.wait);
      continue;
    }
    if (left <= 0) throw new LockTimeoutError(timing.wait);
    await backOff(FILE_LOCK_BACKOFF, attempt, left);
  }
}

/**
 * Breaks the lock at `path` if it is stale (the sweeper's clean-up of locks left by crashed
 * processes). @returns true when a stale lock was removed.
 */
export async function breakStaleLock(path: string, staleAfter: number): Promise<boolean> {
  const holder = await inspect(path);
  if (holder === undefined || !isStale(holder, staleAfter)) return false;
  return breakLock(path, holder, staleAfter);
}

/** Deletes a file last modified more than `age` ms ago. @returns true if it was deleted here. */
export async function removeIfOlderThan(path: string, age: number): Promise<boolean> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
  if (!stats.isFile() || Date.now() - stats.mtimeMs <= age) return false;
  return unlink(path).then(
    () => true,
    (error: unknown) => ignoreCode(error, 'ENOENT', false),
  );
}

async function tryCreate(path: string, token: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify({ pid: process.pid, host: HOST, time: Date.now(), token }));
  } catch (error) {
    await handle.close();
    await unlink(path).catch(() => undefined);
    throw error;
  }
  await handle.close();
  return true;
}

/** The lock just taken, renewed on a timer (that never keeps the process alive) until released. */
function held(path: string, token: string, renewEvery: number | undefined): FileLock {
  if (renewEvery === undefined) return { release: () => release(path, token) };
  const timer = setInterval(() => {
    renew(path, token).then(
      (ours) => {
        // Broken as stale meanwhile (this process stalled): the lock is someone else's now.
        if (!ours) clearInterval(timer);
      },
      // A failed renewal is retried on the next tick; the lease only ends if they all fail.
      () => undefined,
    );
  }, renewEvery);
  timer.unref();
  return {
    release: () => {
      clearInterval(timer);
      return release(path, token);
    },
  };
}

/**
 * Moves the lock's mtime to now if the lock is still ours. @returns false when it is not. (A lock
 * replaced between the check and the touch only gets a fresher mtime: its holder loses nothing.)
 */
async function renew(path: string, token: string): Promise<boolean> {
  const holder = await inspect(path);
  if (holder?.tag !== token) return false;
  const now = new Date();
  await utimes(path, now, now);
  return true;
}

async function release(path: string, token: string): Promise<void> {
  // Only our own lock: if ours was broken as stale meanwhile, the file may be someone else's now.
  const holder = await inspect(path);
  if (holder?.tag === token) await unlink(path).catch((error: unknown) => ignoreCode(error, 'ENOENT', undefined));
}

/** The lock file's holder, or undefined when there is no lock. */
async function inspect(path: string): Promise<LockInfo | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const [stats, text] = await Promise.all([handle.stat(), handle.readFile('utf8')]);
    return describeLock(text, stats);
  } finally {
    await handle.close();
  }
}

function describeLock(text: string, stats: Stats): LockInfo {
  let content: { pid?: unknown; host?: unknown; token?: unknown } = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) content = parsed;
  } catch {
    // A lock being written, or not ours: judged by its age alone.
  }
  const { pid, host, token } = content;
  return {
    // The token becomes part of a file name (the .break marker): only our own safe alphabet is used.
    tag: typeof token === 'string' && TOKEN_PATTERN.test(token) ? token : digest(`${text}\0${stats.ino}\0${stats.mtimeMs}`),
    pid: Number.isSafeInteger(pid) && (pid as number) > 0 ? (pid as number) : undefined,
    host: typeof host === 'string' ? host : undefined,
    age: Date.now() - stats.mtimeMs,
  };
}

function isStale(holder: LockInfo, staleAfter: number): boolean {
  return holder.age > staleAfter || holderIsGone(holder);
}

function holderIsGone(holder: LockInfo): boolean {
  if (holder.host !== HOST || holder.pid === undefined || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return errorCode(error) === 'ESRCH';
  }
}

/**
 * Removes a stale lock, at most one process per lock. @returns true when the lock we saw is gone
 * (removed here or by someone else), so the caller may try to take it at once.
 */
async function breakLock(path: string, observed: LockInfo, staleAfter: number): Promise<boolean> {
  const marker = `${path}.${observed.tag}.break`;
  try {
    await (await open(marker, 'wx', 0o600)).close();
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error;
    // Another process is breaking it; its marker outlives it only if it crashed doing so.
    await removeIfOlderThan(marker, staleAfter);
    return false;
  }
  try {
    const current = await inspect(path);
    if (current?.tag !== observed.tag) return true;
    const aside = `${path}.${randomBytes(6).toString('hex')}.stale`;
    try {
      await rename(path, aside);
    } catch (error) {
      return ignoreCode(error, 'ENOENT', true);
    }
    const moved = await inspect(aside);
    // Only the holder releasing it could have replaced the lock in between: a fresh lock goes back.
    if (moved?.tag !== observed.tag) await link(aside, path).catch((error: unknown) => ignoreCode(error, 'EEXIST', undefined));
    await unlink(aside).catch((error: unknown) => ignoreCode(error, 'ENOENT', undefined));
    return true;
  } finally {
    await unlink(marker).catch((error: unknown) => ignoreCode(error, 'ENOENT', undefined));
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

function hostIdentity(): string {
  let namespace = '';
  try {
    namespace = readlinkSync('/proc/self/ns/pid');
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()}/${namespace}`;
}
