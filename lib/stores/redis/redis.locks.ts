/**
 * The Redis store's per-user lock, seen by every node sharing the Redis: a key
 * `<prefix>user:{<userId>}:lock` set with NX and a lease, retried while taken, and released only
 * by its holder (redis.scripts.ts, UNLOCK_SCRIPT).
 */

import { randomBytes } from 'node:crypto';
import { SessionStoreUnavailableError } from '../../session.errors.js';
import { backOff } from '../toolkit/retry.js';
import type { Backoff } from '../toolkit/retry.js';
import type { StoreWarnings } from '../toolkit/store-runtime.js';
import type { UserLock } from '../toolkit/user-lock.js';
import type { ScriptedClient } from './redis.commands.js';
import type { RedisKeys } from './redis.keys.js';

/**
 * How long a user lock holds if its holder never releases it (a node that crashed inside the
 * critical section). The module bounds each store call by `storeTimeout` (3 s by default), so a
 * critical section is normally over, or abandoned, well within it; 10 s leaves room for a slow
 * one without letting a second node in, and is the longest a crashed node can hold up that
 * user's sign-ins. It is also the longest a caller waits for the lock before giving up.
 */
const USER_LOCK_LEASE = 10_000;
/**
 * Retry delays while a user lock is taken: short, since critical sections are a few commands
 * (5, 10, 20… up to 100 ms, each cut by up to half at random, so that nodes waiting for the same
 * lock do not retry in step).
 */
export const REDIS_LOCK_BACKOFF: Backoff = { first: 5, max: 100, jitter: [0.5, 1] };

export interface RedisUserLocksOptions {
  client: ScriptedClient;
  keys: RedisKeys;
  /** The store's kind, for the error of a lock that stays taken. */
  kind: string;
  warnings: StoreWarnings;
  /** True once the store shut down: a waiting caller then stops retrying. */
  isClosed: () => boolean;
}

export class RedisUserLocks implements UserLock {
  constructor(private readonly options: RedisUserLocksOptions) {}

  /**
   * The lock is taken and released on the main connection, without `WAIT` even under
   * `consistency: 'strong'`: a lock lost in a failover only lets a second node in during the
   * failover itself, as an expired lease would, and it guards a session count rather than data,
   * which is not worth a replica round trip (or a failed sign-in when no replica answers).
   */
  async run<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    const key = this.options.keys.lock(userId);
    const token = randomBytes(16).toString('base64url');
    await this.acquire(key, token);
    try {
      return await critical();
    } finally {
      // A failed release costs at most one lease: the key expires by itself.
      await this.options.client.nssUnlock(key, token).catch((error: unknown) => this.options.warnings.warn(error));
    }
  }

  private async acquire(key: string, token: string): Promise<void> {
    const { client, kind, isClosed } = this.options;
    const giveUpAt = Date.now() + USER_LOCK_LEASE;
    for (let attempt = 0; ; attempt++) {
      if ((await client.set(key, token, 'PX', USER_LOCK_LEASE, 'NX')) === 'OK') return;
      if (isClosed() || Date.now() >= giveUpAt) {
        throw new SessionStoreUnavailableError(kind, undefined, `a user's session lock stayed taken for ${USER_LOCK_LEASE} ms`);
      }
      await backOff(REDIS_LOCK_BACKOFF, attempt);
    }
  }
}
