import type { OnApplicationShutdown } from '@nestjs/common';
import { SessionMessages } from '../../session.errors.js';
import { parseClient } from '../toolkit/field-codec.js';
import { assertUserIdKeepable, SessionStore } from '../session-store.js';
import type { SessionChange, SessionSummary, StoreConnection, StoredSession } from '../session-store.js';
import { REDIS_DEFAULTS } from '../store-config.js';
import type { RedisStoreConfig } from '../store-config.js';
import { checkStoreOptions } from '../toolkit/options-check.js';
import { StoreWarnings } from '../toolkit/store-runtime.js';
import type { RedisClient } from '../driver-types.js';
import { closeClient, createClient, loadIoredis, reportErrors } from './redis.client.js';
import type { IoredisClient } from './redis.client.js';
import { commitArgs, createArgs, hashFields, parseSession, parseSummary, SUMMARY_FIELDS } from './redis.codec.js';
import { defineScripts } from './redis.commands.js';
import type { ScriptedClient, SessionScript } from './redis.commands.js';
import { RedisExpiryWatch } from './redis.expiry.js';
import { RedisKeys } from './redis.keys.js';
import { RedisUserLocks } from './redis.locks.js';
import { RedisWriter } from './redis.writes.js';

export interface RedisStoreOptions {
  /** A connected ioredis client. The store defines its scripts on it and never closes it. */
  client: RedisClient;
  /** Key prefix; must not contain `{` or `}` (each session's key carries its own hash tag). @default 'sess:' */
  prefix?: string;
  /**
   * `'strong'`: a write is acknowledged only once at least one replica has it (`WAIT 1`), so a
   * failover loses no acknowledged write; it costs a replica round trip on every write.
   * @default 'eventual'
   */
  consistency?: 'eventual' | 'strong';
  /** How long `'strong'` waits for a replica before the write counts as failed (ms). @default 1000 */
  replicaTimeout?: number;
  /** Close the client on shutdown: only for a client the store created. @default false */
  ownsClient?: boolean;
  /**
   * Report expired sessions (`SessionService.on('expired')`): every session gets a small marker
   * key beside it (about 136 bytes; see redis.scripts.ts). Set it on every node sharing the
   * Redis, since a session written by a node without it cannot be reported.
   * @default false
   */
  expiryEvents?: boolean;
}

/** Users whose index lifetime a node remembers, at most (the oldest noted is forgotten first). */
const INDEX_LIFE_MEMORY = 10_000;

/**
 * Sessions in Redis, standalone, behind Sentinel or on a Cluster: what lets an application run
 * on many nodes. One hash per session, expiry by TTL, delta commits by Lua in one round trip, a
 * per-user index (a sorted set, pruned lazily) for listing and revoking a user's sessions.
 *
 * Every key of one session is `<prefix>{<id>}`: the id is the hash tag, so a session's commands
 * go to one Cluster slot, and id rotation writes the new key and deletes the old one instead of
 * a cross-slot RENAME. Beside it, `<prefix>{<id>}:x` (its expiry marker, see redis.scripts.ts)
 * lets the store report expiries from Redis keyspace notifications, once across all nodes (the
 * server must publish them: `notify-keyspace-events Ex`, on every master of a Cluster); the user
 * lock of {@link withUserLock} is `<prefix>user:{<userId>}:lock`, in the index's slot. User ids go
 * into keys, index members and the scripts' comparisons as UTF-8, which keeps apart every user id
 * the store takes: the others are refused first (assertUserIdKeepable).
 *
 * @example
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET!,
 *   store: { type: 'redis', url: 'redis://127.0.0.1:6379', consistency: 'strong' },
 * });
 * ```
 */
export class RedisStore extends SessionStore implements OnApplicationShutdown {
  readonly kind = 'redis';

  private readonly warnings = new StoreWarnings('Redis session store', () => this.logger);
  private readonly client: ScriptedClient;
  private readonly keys: RedisKeys;
  private readonly ownsClient: boolean;
  private readonly expiryEvents: boolean;
  private closed = false;
  private readonly writer: RedisWriter;
  private readonly userLocks: RedisUserLocks;
  private readonly expiryWatch: RedisExpiryWatch;
  /** The warning that expiry listeners hear nothing without `expiryEvents` is given once. */
  private expiryEventsOffWarned = false;
  /** Per user, until when this node last made the user's index live (see rememberIndexLife). */
  private readonly indexAliveUntil = new Map<string, number>();

  constructor(options: RedisStoreOptions) {
    super();
    checkOptions(options);
    // Checked to be an ioredis client (isRedisClient).
    this.client = defineScripts(options.client as IoredisClient);
    this.keys = new RedisKeys(options.prefix ?? 'sess:');
    this.ownsClient = options.ownsClient ?? false;
    this.expiryEvents = options.expiryEvents ?? false;
    const { client, keys, kind, warnings } = this;
    this.writer = new RedisWriter({
      client,
      strong: options.consistency === 'strong',
      replicaTimeout: options.replicaTimeout ?? REDIS_DEFAULTS.replicaTimeout,
      kind,
      warnings,
    });
    this.userLocks = new RedisUserLocks({ client, keys, kind, warnings, isClosed: () => this.closed });
    this.expiryWatch = new RedisExpiryWatch({
      client,
      keys,
      warnings,
      logger: () => this.logger,
      isWatched: () => this.watchingExpiry,
      report: (expired) => this.reportExpired(expired),
    });
  }

  /**
   * Builds a store from a config object, creating (and owning) the ioredis client unless one is
   * given. ioredis is an optional peer dependency, loaded only here. The config is checked as the
   * module checks it, before any client exists.
   */
  static async fromConfig(config: RedisStoreConfig): Promise<RedisStore> {
    checkStoreOptions(config);
    const { prefix, consistency, replicaTimeout, expiryEvents } = config;
    if (config.client) return new RedisStore({ client: config.client, prefix, consistency, replicaTimeout, expiryEvents });
    const client = createClient(await loadIoredis(), config);
    const store = new RedisStore({ client, prefix, consistency, replicaTimeout, expiryEvents, ownsClient: true });
    reportErrors(client, store.warnings);
    return store;
  }

  /** The store's client, for reading express-session's connect-redis sessions on the same Redis. */
  override get connection(): StoreConnection {
    return { type: 'redis', client: this.client };
  }

  async get(id: string): Promise<StoredSession | null> {
    let hash: Record<string, string>;
    try {
      hash = await this.client.hgetall(this.keys.session(id));
    } catch (error) {
      // A key of another type is bad data, not an outage: the request gets a fresh session.
      if (isWrongType(error)) return this.unreadable(id, 'is not a hash');
      throw error;
    }
    if (Object.keys(hash).length === 0) return null;
    const session = parseSession(id, hash);
    if (session === undefined) return this.unreadable(id, 'holds fields that are not ours or not JSON');
    return session.expiresAt > Date.now() ? session : null;
  }

  async create(session: StoredSession): Promise<void> {
    assertUserIdKeepable(session.userId);
    const fields = hashFields(session);
    if (session.userId !== null) await this.index(session.userId, session.id, session.createdAt, session.expiresAt);
    await this.writeSession('nssCreate', session.id, ...createArgs(session), ...fields);
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    const args = commitArgs(change);
    // The index is written first: a session a user can be signed in with is always listed.
    if (change.userId) await this.index(change.userId, id, change.lastSeenAt, change.expiresAt);
    const user = await this.writeSession<string | null>('nssCommit', id, ...args);
    if (user === null) return false;
    // The index must outlive the session. It lives twice the session's remaining time from its
    // last refresh, so only a commit whose new expiry passes that needs one: most commits send
    // no second command. Refreshed off the request path; one lost refresh costs nothing.
    if (user && change.expiresAt > (this.indexAliveUntil.get(user) ?? 0)) {
      this.index(user, '', 0, change.expiresAt).catch((error) => this.warnings.warn(error));
    }
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    const fields = hashFields(next);
    if (next.userId !== null) await this.index(next.userId, next.id, next.createdAt, next.expiresAt);
    // Write the new key and delete the old one at once (two slots on a Cluster, so two commands
    // rather than a RENAME). If the old one was already gone, it was destroyed meanwhile: the
    // new key is removed again, so the session stays dead.
    const [, deleted] = await Promise.all([
      this.writeSession('nssCreate', next.id, ...createArgs(next), ...fields),
      this.writeSession<number>('nssDestroy', oldId),
    ]);
    if (deleted === 1) return true;
    await this.destroy(next.id);
    return false;
  }

  async destroy(id: string): Promise<void> {
    await this.writeSession('nssDestroy', id);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const ids = await this.client.zrange(this.keys.index(userId), '0', '-1');
    const rows = await Promise.all(ids.map((id) => this.client.hmget(this.keys.session(id), ...SUMMARY_FIELDS)));
    const now = Date.now();
    const live: SessionSummary[] = [];
    const dead: string[] = [];
    ids.forEach((id, i) => {
      const row = parseSummary(rows[i]);
      if (row?.userId !== userId || !(row.expiresAt > now)) {
        dead.push(id);
        return;
      }
      const client = parseClient(row.clientJson);
      // Listed only if get() would return it too; left in the index, as revoking must still find it.
      if (client === undefined) this.unreadable(id, 'holds a client record that is not ours');
      else live.push({ id, createdAt: row.createdAt, lastSeenAt: row.lastSeenAt, expiresAt: row.expiresAt, ...(client && { client }) });
    });
    if (dead.length) await this.client.zrem(this.keys.index(userId), ...dead);
    return live.sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    const ids = (await this.client.zrange(this.keys.index(userId), '0', '-1')).filter((id) => id !== exceptId);
    const deleted = await Promise.all(ids.map((id) => this.writeSession<number>('nssDestroyIfOwned', id, userId)));
    if (ids.length) await this.client.zrem(this.keys.index(userId), ...ids);
    return ids.filter((_, i) => deleted[i] === 1);
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  /**
   * The user lock every node sharing this Redis sees: a key `<prefix>user:{<userId>}:lock` set
   * with NX and a lease, retried while taken, and released only by its holder. Callers in this
   * process queue first ({@link withUserLock}), so one of them at a time polls Redis. Rejects when
   * Redis does not answer (the command timeout), or when the lock stays taken longer than a lease.
   */
  protected override lockUserAcrossNodes<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return this.userLocks.run(userId, critical);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.expiryWatch.close();
    await this.writer.close();
    if (this.ownsClient) await closeClient(this.client);
  }

  /** Only with `expiryEvents`: the marker key each session needs for its expiry to be reported. */
  override get reportsExpiries(): boolean {
    return this.expiryEvents;
  }

  /** Subscribes to Redis' expiry events (see RedisExpiryWatch), or warns once that it cannot. */
  protected override async startExpiryWatch(): Promise<void> {
    if (this.closed) return;
    if (this.reportsExpiries) return this.expiryWatch.start();
    if (!this.expiryEventsOffWarned) this.logger.warn(SessionMessages.redisExpiryEventsOff());
    this.expiryEventsOffWarned = true;
  }

  /** Runs a session script as a write; with expiry events on, its marker (same slot) is a second key. */
  private writeSession<T>(script: SessionScript, id: string, ...args: (string | number)[]): Promise<T> {
    const key = this.keys.session(id);
    return this.writer.write<T>((redis) =>
      this.expiryEvents ? redis[`${script}Marked`](key, this.keys.marker(id), ...args) : redis[script](key, ...args),
    );
  }

  /** Adds `id` to the user's index (or, with '', only extends it) to live twice the session's remaining time. */
  private index(userId: string, id: string, score: number, expiresAt: number): Promise<number> {
    const now = Date.now();
    const ttl = Math.max(1, 2 * (expiresAt - now));
    this.rememberIndexLife(userId, now + ttl);
    return this.writer.write((redis) => redis.nssIndex(this.keys.index(userId), id, score, ttl));
  }

  /**
   * Notes until when this node made a user's index live. Other nodes may only have extended it
   * since (the index script never shortens a lifetime), so the note errs on the safe side. Kept
   * for a bounded number of users: a forgotten one just costs one more refresh.
   */
  private rememberIndexLife(userId: string, until: number): void {
    this.indexAliveUntil.delete(userId);
    this.indexAliveUntil.set(userId, until);
    if (this.indexAliveUntil.size > INDEX_LIFE_MEMORY) this.indexAliveUntil.delete(this.indexAliveUntil.keys().next().value!);
  }

  private unreadable(id: string, problem: string): null {
    this.logger.warn(`Session ${id} in Redis ${problem}; treating it as absent.`);
    return null;
  }
}

/**
 * The constructor's options, checked as the module checks its `store` option, but for one rule:
 * a client handed in keeps its own command timeout, so `replicaTimeout` is not held against the
 * config's `commandTimeout` (fromConfig checks a config whole, that rule included).
 */
function checkOptions({ client, prefix, consistency, replicaTimeout, expiryEvents }: RedisStoreOptions): void {
  checkStoreOptions({ type: 'redis', client, prefix, consistency, replicaTimeout, expiryEvents, commandTimeout: Number.MAX_SAFE_INTEGER });
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}
