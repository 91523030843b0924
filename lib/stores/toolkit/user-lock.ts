/**
 * A lock per user that every node sharing a store respects (a Redis key, a PostgreSQL advisory
 * lock, a lock file): what a store's `lockUserAcrossNodes` (SessionStore) holds while one user's
 * critical section runs.
 */
export interface UserLock {
  /**
   * Runs `critical` holding `userId`'s lock, and releases it once `critical` settles. A lock it
   * cannot take fails the call with SessionStoreUnavailableError (a 503); `critical`'s own errors
   * pass through as they are.
   */
  run<T>(userId: string, critical: () => Promise<T>): Promise<T>;
}
