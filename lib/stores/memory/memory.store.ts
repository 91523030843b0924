import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { SessionMessages } from '../../session.errors.js';
import { assertUserIdKeepable, SessionStore } from '../session-store.js';
import type { SessionChange, SessionSummary, StoredSession } from '../session-store.js';
import { clientMember, encodeClient, encodeFields, parseClient } from '../toolkit/field-codec.js';
import { checkStoreOptions } from '../toolkit/options-check.js';
import { startSweeper } from '../toolkit/store-runtime.js';
import { MemoryEntries } from './memory.entries.js';
import { dataText, Entry } from './memory.entry.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Most sessions held at once; beyond it the least recently used session is evicted.
   * @default unlimited
   */
  maxSessions?: number;
  /**
   * Most bytes held at once, counted as {@link MemoryStore} describes; beyond it the least
   * recently used sessions are evicted, and a session larger than all of it is refused (413).
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
  /**
   * How often, in milliseconds, expired sessions are swept from memory.
   * @default 60000
   */
  sweepInterval?: number;
}

const DEFAULT_SWEEP_INTERVAL = 60_000;

/**
 * 64 MiB: room for about 125,000 small sessions (`{ userId, visits }` with a user counts about
 * 535 bytes), more than the single process this store is meant for keeps in use at once, while
 * a flood of anonymous sessions can take at most a quarter of the heap V8 gives a process on a
 * 1 GiB machine or container (a quarter of its memory, 256 MiB). Sessions count at least what
 * they were measured to take (plain-text ones take well under it), so the process holds no more.
 */
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Keeps sessions in the memory of one process: the default store, for development, tests and
 * single-node deployments. Sessions do not survive a restart and are not shared between nodes;
 * use the Redis or PostgreSQL store when the application runs on more than one.
 *
 * Expiry is enforced on every read, and a background sweeper (which never keeps the process
 * alive) reclaims the memory of sessions nobody reads again.
 *
 * **Bounded by default** (`maxBytes`, 64 MiB), so that anonymous clients cannot grow the process
 * without limit. Each session counts two bytes per character of its data's JSON (field names
 * included), its client record, user id and id, plus measured fixed costs per session, per string
 * and per user-index entry ({@link heldBytes} is the total). A write that would pass the bound
 * evicts the least recently used sessions (reads, writes and touches are uses) until it fits; `maxSessions`
 * bounds the count the same way. Every session dropped because it expired (by the sweeper, by a
 * read that finds it expired, or by eviction of one already expired) is reported to
 * {@link SessionStore.watchExpiry} listeners, once: it is gone from the map as it is reported. A
 * live session evicted is not an expiry, and is not reported.
 *
 * When `NODE_ENV` is `production`, it warns once at start-up that sessions live in this one
 * process, since an application that grows to a second node would split its users' sessions.
 *
 * The per-user lock is the base class's in-process queue, which is exact for a store that lives
 * in one process.
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: new MemoryStore({ maxBytes: 256 * 1024 * 1024 }),
 * });
 * ```
 */
export class MemoryStore extends SessionStore implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly kind = 'memory';
  /** The most bytes this store holds (`maxBytes`), counted as described above. */
  readonly maxBytes: number;

  private readonly entries: MemoryEntries;
  private warnedInProduction = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    super();
    checkStoreOptions({ type: 'memory', ...options });
    const { maxSessions = Infinity, maxBytes = DEFAULT_MAX_BYTES, sweepInterval = DEFAULT_SWEEP_INTERVAL } = options;

    this.maxBytes = maxBytes;
    this.entries = new MemoryEntries({ maxSessions, maxBytes }, (expired) => this.reportExpired(expired));
    this.timer = startSweeper(
      () => this.sweep(),
      sweepInterval,
      () => undefined,
    );
  }

  /** Entries currently held, including expired ones the sweeper has not reclaimed yet. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries currently held count toward `maxBytes`; never more than it. */
  get heldBytes(): number {
    return this.entries.heldBytes;
  }

  async get(id: string): Promise<StoredSession | null> {
    const entry = this.live(id);
    if (!entry) return null;
    this.entries.markUsed(id, entry);
    return {
      id,
      data: entry.readData(),
      createdAt: entry.createdAt,
      lastSeenAt: entry.lastSeenAt,
      expiresAt: entry.expiresAt,
      userId: entry.userId,
      ...clientMember(parseClient(entry.client)),
    };
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    const entry = newEntry(session);
    this.entries.insert(session.id, entry, this.countWithinBound(session.id, entry));
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    // Encode and count before touching the entry, so a value JSON cannot carry, or a session too
    // large to hold, leaves the session as it was.
    const encoded = encodeFields(change.set);
    const client = change.client === undefined ? undefined : change.client && encodeClient(change.client);
    const entry = this.live(id);
    if (!entry) return false;
    const { unset, lastSeenAt, expiresAt, userId } = change;
    const next = entry.withChange({ unset, set: encoded, lastSeenAt, expiresAt, userId, client });
    this.entries.replace(id, entry, next, this.countWithinBound(id, next));
    // Only what a commit adds can overflow, and the entry it wrote is now the last one evicted.
    this.entries.evictOverflow();
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    const entry = newEntry(next);
    const bytes = this.countWithinBound(next.id, entry);
    if (!this.live(oldId)) return false;
    this.entries.remove(oldId);
    this.entries.insert(next.id, entry, bytes);
    return true;
  }

  async destroy(id: string): Promise<void> {
    this.entries.remove(id);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const sessions: SessionSummary[] = [];
    for (const id of this.entries.idsOf(userId)) {
      const entry = this.live(id);
      if (!entry) continue;
      const { createdAt, lastSeenAt, expiresAt } = entry;
      sessions.push({ id, createdAt, lastSeenAt, expiresAt, ...clientMember(parseClient(entry.client)) });
    }
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    const destroyed: string[] = [];
    for (const id of this.entries.idsOf(userId)) {
      if (id === exceptId) continue;
      // Expired sessions are removed too, but only sessions a user could still use are counted.
      if (this.live(id)) destroyed.push(id);
      this.entries.remove(id);
    }
    return destroyed;
  }

  /**
   * Removes every expired session now, reporting each to the expiry listeners. The sweeper calls
   * this on its interval; tests and applications with their own scheduling may call it directly.
   * @returns how many sessions were removed.
   */
  sweep(): number {
    const now = Date.now();
    let removed = 0;
    for (const [id, entry] of this.entries.all()) {
      if (entry.expiresAt > now) continue;
      this.entries.expire(id, entry);
      removed += 1;
    }
    return removed;
  }

  /**
   * In production, warns once that sessions live in this one process (SessionMessages
   * `memoryStoreInProduction`), as express-session's MemoryStore does. At start-up rather than on
   * construction, so that the warning goes to the module's `logger`, which is handed over after.
   */
  onApplicationBootstrap(): void {
    if (this.warnedInProduction || process.env.NODE_ENV !== 'production') return;
    this.warnedInProduction = true;
    this.logger.warn(SessionMessages.memoryStoreInProduction(this.maxBytes));
  }

  /** Stops the sweeper. Sessions stay readable; expiry is still enforced on read. */
  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The entry if it exists and has not expired; an expired one is removed on the way. */
  private live(id: string): Entry | undefined {
    const entry = this.entries.peek(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.expire(id, entry);
      return undefined;
    }
    return entry;
  }

  /** What `entry` counts under `id`, or a SessionTooLargeError if it could never fit. */
  private countWithinBound(id: string, entry: Entry): number {
    const bytes = entry.bytes(id);
    this.entries.refuseLargerThanBound(bytes);
    return bytes;
  }
}

/** The entry a whole session becomes. */
function newEntry(session: StoredSession): Entry {
  const client = session.client ? encodeClient(session.client) : null;
  return new Entry(session, session.userId, client, dataText(encodeFields(session.data)));
}
