import type { OnApplicationShutdown } from '@nestjs/common';
import { SessionConfigError } from '../session.errors.js';
import { storeConfigProblems } from '../session.options.js';
import { applyChange, clientMember, encodeClient, encodeFields, parseClient } from './field-codec.js';
import { startSweeper } from './store-runtime.js';
import {
  SessionStore,
  type SessionChange,
  type SessionClient,
  type SessionFields,
  type SessionSummary,
  type StoredSession,
} from './session-store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Most sessions held at once; beyond it the least recently used session is evicted.
   * @default unlimited
   */
  maxSessions?: number;
  /**
   * How often, in milliseconds, expired sessions are swept from memory.
   * @default 60000
   */
  sweepInterval?: number;
}

/**
 * One session as held in memory. Data is kept per field as JSON text, the same model as a Redis
 * hash, so nothing a caller holds can reach into the store and every store round-trips alike.
 */
interface Entry {
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  userId: string | null;
  /** The client record as JSON text (so no caller's object is kept), or null for none. */
  client: string | null;
  fields: Map<string, string>;
}

const DEFAULT_SWEEP_INTERVAL = 60_000;

/**
 * Keeps sessions in the memory of one process: the default store, for development, tests and
 * single-node deployments. Sessions do not survive a restart and are not shared between nodes;
 * use the Redis or PostgreSQL store when the application runs on more than one.
 *
 * Expiry is enforced on every read, and a background sweeper (which never keeps the process
 * alive) reclaims the memory of sessions nobody reads again. With `maxSessions`, the least
 * recently used session is evicted first. Every session dropped because it expired (by the
 * sweeper, by a read that finds it expired, or by eviction of one already expired) is reported
 * to {@link SessionStore.watchExpiry} listeners, once: it is gone from the map as it is reported.
 * The per-user lock is the base class's in-process queue, which is exact for a store that lives
 * in one process.
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: new MemoryStore({ maxSessions: 10_000 }),
 * });
 * ```
 */
export class MemoryStore extends SessionStore implements OnApplicationShutdown {
  readonly kind = 'memory';

  /** Insertion order doubles as recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly idsByUser = new Map<string, Set<string>>();
  private readonly maxSessions: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    super();
    const problems = storeConfigProblems({ type: 'memory', ...options });
    if (problems.length > 0) throw new SessionConfigError(problems);
    const { maxSessions = Infinity, sweepInterval = DEFAULT_SWEEP_INTERVAL } = options;

    this.maxSessions = maxSessions;
    this.timer = startSweeper(() => this.sweep(), sweepInterval, () => undefined);
  }

  /** Entries currently held, including expired ones the sweeper has not reclaimed yet. */
  get size(): number {
    return this.entries.size;
  }

  async get(id: string): Promise<StoredSession | null> {
    const entry = this.live(id);
    if (!entry) return null;
    this.markUsed(id, entry);
    return {
      id,
      data: decodeFields(entry.fields),
      createdAt: entry.createdAt,
      lastSeenAt: entry.lastSeenAt,
      expiresAt: entry.expiresAt,
      userId: entry.userId,
      ...clientMember(parseClient(entry.client)),
    };
  }

  async create(session: StoredSession): Promise<void> {
    this.put(session);
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    // Encode before touching the entry, so a value JSON cannot carry leaves the session as it was.
    const encoded = encodeFields(change.set);
    const client = change.client === undefined ? undefined : change.client && encodeClient(change.client);
    const entry = this.live(id);
    if (!entry) return false;

    applyChange(entry.fields, change.unset, encoded);
    entry.expiresAt = change.expiresAt;
    entry.lastSeenAt = change.lastSeenAt;
    if (client !== undefined) entry.client = client;
    if (change.userId !== undefined && change.userId !== entry.userId) {
      this.unindex(id, entry.userId);
      entry.userId = change.userId;
      this.index(id, entry.userId);
    }
    this.markUsed(id, entry);
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    const fields = encodeFields(next.data);
    if (!this.live(oldId)) return false;
    this.remove(oldId);
    this.put(next, fields);
    return true;
  }

  async destroy(id: string): Promise<void> {
    this.remove(id);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    const sessions: SessionSummary[] = [];
    for (const id of this.idsOf(userId)) {
      const entry = this.live(id);
      if (!entry) continue;
      const { createdAt, lastSeenAt, expiresAt } = entry;
      sessions.push({ id, createdAt, lastSeenAt, expiresAt, ...clientMember(parseClient(entry.client)) });
    }
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    const destroyed: string[] = [];
    for (const id of this.idsOf(userId)) {
      if (id === exceptId) continue;
      // Expired sessions are removed too, but only sessions a user could still use are counted.
      if (this.live(id)) destroyed.push(id);
      this.remove(id);
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
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt > now) continue;
      this.expire(id, entry);
      removed += 1;
    }
    return removed;
  }

  /** Stops the sweeper. Sessions stay readable; expiry is still enforced on read. */
  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The entry if it exists and has not expired; an expired one is removed on the way. */
  private live(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.expire(id, entry);
      return undefined;
    }
    return entry;
  }

  /** Drops an expired entry and reports it: removal first, so it can never be reported twice. */
  private expire(id: string, entry: Entry): void {
    this.remove(id);
    this.reportExpired({ id, userId: entry.userId });
  }

  private put(session: StoredSession, fields = encodeFields(session.data)): void {
    const data = new Map<string, string>();
    for (const [name, json] of fields) if (json !== undefined) data.set(name, json);

    // A reused id replaces the old session entirely, index entry included.
    this.remove(session.id);
    this.entries.set(session.id, {
      createdAt: session.createdAt,
      lastSeenAt: session.lastSeenAt,
      expiresAt: session.expiresAt,
      userId: session.userId,
      client: session.client ? encodeClient(session.client) : null,
      fields: data,
    });
    this.index(session.id, session.userId);
    this.evictOverflow();
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.unindex(id, entry.userId);
  }

  private markUsed(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
  }

  private evictOverflow(): void {
    while (this.entries.size > this.maxSessions) {
      const oldest = this.entries.entries().next();
      if (oldest.done) return;
      const [id, entry] = oldest.value;
      // An entry that had expired anyway still counts as an expiry: nobody would report it later.
      if (entry.expiresAt <= Date.now()) this.expire(id, entry);
      else this.remove(id);
    }
  }

  /** A snapshot, so callers may remove sessions while they walk it. */
  private idsOf(userId: string): string[] {
    return [...(this.idsByUser.get(userId) ?? [])];
  }

  private index(id: string, userId: string | null): void {
    if (userId === null) return;
    let ids = this.idsByUser.get(userId);
    if (!ids) this.idsByUser.set(userId, (ids = new Set()));
    ids.add(id);
  }

  private unindex(id: string, userId: string | null): void {
    if (userId === null) return;
    const ids = this.idsByUser.get(userId);
    if (!ids) return;
    ids.delete(id);
    // Without this, every user who ever signed in would keep an empty set alive.
    if (ids.size === 0) this.idsByUser.delete(userId);
  }
}

/**
 * A fresh object per read. It has no prototype, so a field named `__proto__` or `constructor`
 * is plain own data: it can neither swap the object's prototype nor shadow an inherited member.
 * Nested values come from JSON.parse, which already defines such keys as own properties.
 */
function decodeFields(fields: Map<string, string>): SessionFields {
  const data: SessionFields = Object.create(null);
  for (const [name, json] of fields) data[name] = JSON.parse(json);
  return data;
}
