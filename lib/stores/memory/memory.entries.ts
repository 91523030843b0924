/**
 * The sessions a memory store holds, least recently used first, kept within its bounds: a count
 * (`maxSessions`) and the bytes they count (`maxBytes`, see memory.entry.ts), with the per-user
 * index kept in step with every entry added or removed.
 */

import { SessionMessages, SessionTooLargeError } from '../../session.errors.js';
import type { ExpiredSession } from '../session-store.js';
import type { Entry } from './memory.entry.js';
import { MemoryUserIndex } from './memory.user-index.js';

export interface MemoryBounds {
  maxSessions: number;
  maxBytes: number;
}

export class MemoryEntries {
  /** Insertion order doubles as recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly users = new MemoryUserIndex();
  private bytesHeld = 0;

  constructor(
    private readonly bounds: MemoryBounds,
    /** Hands one expiry to the store's listeners. */
    private readonly report: (expired: ExpiredSession) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** What the entries held count toward `maxBytes`. */
  get heldBytes(): number {
    return this.bytesHeld;
  }

  /** The entry under `id`, expired or not, without counting as a use. */
  peek(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  /** Every entry, least recently used first; removing entries while walking it is safe. */
  all(): IterableIterator<[string, Entry]> {
    return this.entries.entries();
  }

  /** The ids of a user's sessions, as a snapshot. */
  idsOf(userId: string): string[] {
    return this.users.idsOf(userId);
  }

  /**
   * A session that alone counts more than `maxBytes` is refused (413) rather than kept alone:
   * keeping it would mean evicting every other session, so one oversized anonymous request could
   * sign every user out, and the store would hold more than its bound. Refused, it changes nothing.
   */
  refuseLargerThanBound(bytes: number): void {
    const { maxBytes } = this.bounds;
    if (bytes > maxBytes) throw new SessionTooLargeError(bytes, maxBytes, undefined, SessionMessages.memorySessionTooLarge(bytes, maxBytes));
  }

  /** Adds an entry counted at `bytes` (its {@link Entry.bytes} under `id`). */
  insert(id: string, entry: Entry, bytes: number): void {
    // A reused id replaces the old session entirely, index entry included.
    this.remove(id);
    this.entries.set(id, entry);
    this.bytesHeld += bytes;
    this.users.add(id, entry.userId);
    this.evictOverflow();
  }

  remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.bytesHeld -= entry.bytes(id);
    this.users.remove(id, entry.userId);
  }

  /** Drops an expired entry and reports it: removal first, so it can never be reported twice. */
  expire(id: string, entry: Entry): void {
    this.remove(id);
    this.report({ id, userId: entry.userId });
  }

  markUsed(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
  }

  /**
   * Puts `next`, counted at `bytes`, in the place of `entry` under `id`, as the most recently
   * used, and moves it to its user's index when the user changed. Evicts nothing: the caller does.
   */
  replace(id: string, entry: Entry, next: Entry, bytes: number): void {
    this.bytesHeld += bytes - entry.bytes(id);
    if (next.userId !== entry.userId) {
      this.users.remove(id, entry.userId);
      this.users.add(id, next.userId);
    }
    this.markUsed(id, next);
  }

  /**
   * Evicts least recently used entries until the count and the bytes are within bounds. It ends
   * before the entry just written, the most recently used, since that one alone fits.
   */
  evictOverflow(): void {
    const { maxSessions, maxBytes } = this.bounds;
    while (this.entries.size > maxSessions || this.bytesHeld > maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done) return;
      const [id, entry] = oldest.value;
      // An entry that had expired anyway still counts as an expiry: nobody would report it later.
      if (entry.expiresAt <= Date.now()) this.expire(id, entry);
      else this.remove(id);
    }
  }
}
