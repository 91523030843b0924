import { createHash } from 'node:crypto';
import { SessionMessages } from '../../session.errors.js';
import { errorMessage } from '../toolkit/errors.js';
import { backOff } from '../toolkit/retry.js';
import type { Backoff } from '../toolkit/retry.js';
import { withinTime } from '../toolkit/store-runtime.js';
import type { UserLock } from '../toolkit/user-lock.js';

/** What the lock code needs of a connection: a `pg` Client, or whatever Client class the pool uses. */
export interface LockConnection {
  connect(): Promise<unknown>;
  query(text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
  on(event: 'error' | 'end', listener: () => void): unknown;
}

interface UserLockSettings {
  /** Makes a new, unconnected lock connection that gives up connecting after `timeout` ms. */
  open: (timeout: number) => LockConnection;
  /** Keys are derived from it and the user id: locks of another table never collide. */
  namespace: string;
  /** Longest wait for a busy lock, and for any one statement on the lock connection (ms). */
  timeout: number;
  failure: (cause: unknown, detail: string) => Error;
  warn: (message: string) => void;
}

/** Waits while another node holds a user's lock: 5, 10, 20… up to 50 ms, jittered by ±50%. */
export const ADVISORY_LOCK_BACKOFF: Backoff = { first: 5, max: 50, jitter: [0.5, 1.5] };

/**
 * Users' sign-in locks as session-level advisory locks, taken with `pg_try_advisory_lock` on one
 * connection the store opens for them alone, outside the pool.
 *
 * Why this design: a blocking `pg_advisory_lock` on a pooled connection holds that connection
 * while it waits, and the holder's critical section needs pooled connections of its own; with
 * more users signing in than the pool has connections, every connection can end up waiting for
 * a lock whose holder waits for a connection, and the pool deadlocks. Here the lock connection
 * never waits on the server (it tries, and the waiting is done in Node with a short backoff), it
 * takes no slot of the pool, and it only runs statements that answer at once. A lease row in a
 * lock table would need a second table, clean-up of rows left by crashed nodes and a clock to
 * expire them; an advisory lock is freed by the server the moment its connection goes away.
 *
 * Session-level advisory locks are re-entrant on one connection, so two callers of this process
 * must never ask for the same user's lock at once: the base class's per-user queue sees to that.
 *
 * Any doubt about the connection (an error, a statement that does not answer in `timeout`)
 * closes it, which frees every lock it held on the server: a lock is never left held by a
 * connection nobody uses. The limit is that of any lease: a critical section still running when
 * its connection is lost no longer excludes other nodes. Needs a session-level connection
 * (directly to PostgreSQL, or a pooler in session mode, not PgBouncer's transaction mode).
 */
export class AdvisoryUserLocks implements UserLock {
  private connection: Promise<LockConnection> | undefined;
  /** The connection `connection` resolves to, from the moment it is opened. */
  private live: LockConnection | undefined;
  /** Per connection, the statement sent last: the next one waits for it. */
  private readonly statements = new WeakMap<LockConnection, Promise<unknown>>();
  private closed = false;

  constructor(private readonly settings: UserLockSettings) {}

  /** Runs `critical` holding the lock of `userId`, released once `critical` settles. */
  async run<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    const release = await this.acquire(userId);
    try {
      return await critical();
    } finally {
      await release();
    }
  }

  /** Closes the lock connection, freeing its locks; later acquisitions fail. */
  async close(): Promise<void> {
    this.closed = true;
    const connection = this.live;
    if (connection) await this.discard(connection);
  }

  /**
   * Takes the lock of `userId`, waiting up to `timeout` for another node to release it.
   * @returns the function that releases it (it never throws).
   */
  private async acquire(userId: string): Promise<() => Promise<void>> {
    const key = advisoryKey(this.settings.namespace, userId);
    const deadline = Date.now() + this.settings.timeout;
    for (let attempt = 0; ; attempt++) {
      const connection = await this.connected();
      const { rows } = await this.query(connection, 'SELECT pg_try_advisory_lock($1::bigint) AS locked', [key]);
      if (rows[0]?.locked === true) return () => this.release(connection, key);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw this.settings.failure(undefined, SessionMessages.userLockTimeout('another node', this.settings.timeout));
      }
      await backOff(ADVISORY_LOCK_BACKOFF, attempt, left);
    }
  }

  private async release(connection: LockConnection, key: string): Promise<void> {
    // A connection that went away took its locks with it.
    if (this.live !== connection) return;
    try {
      await this.query(connection, 'SELECT pg_advisory_unlock($1::bigint)', [key]);
    } catch (error) {
      // query() has closed the connection, which frees the lock: the caller's work stands.
      this.settings.warn(SessionMessages.postgresUserLockNotReleased(errorMessage(error)));
    }
  }

  /** The lock connection, opened on first use and again after it was lost. */
  private connected(): Promise<LockConnection> {
    if (this.closed) return Promise.reject(this.settings.failure(undefined, SessionMessages.postgresUserLockFailed('the store was shut down')));
    if (!this.connection) {
      const opening = this.open();
      this.connection = opening;
      // A failed attempt is not kept: the next acquisition tries again.
      opening.catch(() => {
        if (this.connection === opening) this.connection = undefined;
      });
    }
    return this.connection;
  }

  private async open(): Promise<LockConnection> {
    let connection: LockConnection | undefined;
    try {
      connection = this.settings.open(this.settings.timeout);
      const opened = connection;
      this.live = opened;
      // Without a listener, an idle connection's error (the server restarting) would crash the process.
      opened.on('error', () => void this.discard(opened));
      opened.on('end', () => void this.discard(opened));
      await withinTime(opened.connect(), this.settings.timeout, noAnswer(this.settings.timeout));
      return opened;
    } catch (error) {
      if (connection) await this.discard(connection);
      throw this.settings.failure(error, SessionMessages.postgresUserLockFailed(errorMessage(error)));
    }
  }

  /**
   * Runs one statement once the connection's previous ones are done (a `pg` client must not be
   * given a query while it runs another), bounded from when it starts. On any failure the
   * connection is closed, since whether it holds the lock is then unknown.
   */
  private query(connection: LockConnection, text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }> {
    const previous = this.statements.get(connection) ?? Promise.resolve();
    const result = previous.then(async () => {
      try {
        return await withinTime(connection.query(text, values), this.settings.timeout, noAnswer(this.settings.timeout));
      } catch (error) {
        await this.discard(connection);
        throw this.settings.failure(error, SessionMessages.postgresUserLockFailed(errorMessage(error)));
      }
    });
    this.statements.set(
      connection,
      result.then(
        () => undefined,
        () => undefined,
      ),
    );
    return result;
  }

  /** Forgets the connection and closes it, without waiting on a server that may not answer. */
  private async discard(connection: LockConnection): Promise<void> {
    if (this.live === connection) {
      this.live = undefined;
      this.connection = undefined;
    }
    await withinTime(connection.end(), this.settings.timeout, noAnswer(this.settings.timeout)).catch(() => undefined);
  }
}

/**
 * The advisory lock key of one user: 64 bits of the SHA-256 of the namespace (the table) and the
 * user id, as a signed bigint. Computed in Node, so every node agrees on it whatever the server
 * version. UTF-8 keeps user ids apart here because the ones it could not (an unpaired surrogate)
 * are refused before (assertUserIdKeepable).
 */
function advisoryKey(namespace: string, userId: string): string {
  return createHash('sha256').update(namespace).update('\0').update(userId).digest().readBigInt64BE(0).toString();
}

/** The error of a lock-connection call that did not answer in time. */
const noAnswer = (ms: number) => (): Error => new Error(`no answer within ${ms} ms`);
