import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OnApplicationShutdown } from '@nestjs/common';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { hashSessionId } from '../crypto/index.js';
import { SessionMessages, SessionStoreUnavailableError } from '../session.errors.js';
import { defineField, encodeClient, encodeFields, parseClient } from './field-codec.js';
import { COMMIT_SCRIPT, CREATE_SCRIPT, DESTROY_IF_OWNED_SCRIPT, DESTROY_SCRIPT, INDEX_SCRIPT, UNLOCK_SCRIPT } from './redis.scripts.js';
import { assertUserIdKeepable, SessionStore } from './session-store.js';
import { StoreWarnings } from './store-runtime.js';
import type { SessionChange, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import { REDIS_DEFAULTS } from './store-config.js';
import type { RedisStoreConfig } from './store-config.js';
import type { RedisClient } from './driver-types.js';

/** The client the store works with, in ioredis's own types (the public options name a {@link RedisClient}). */
type IoredisClient = Redis | Cluster;

/** The scripts, as ioredis exposes them once defined on a client. */
interface ScriptCommands extends SessionScriptCommands {
  nssIndex(key: string, id: string, score: number, ttl: number): Promise<number>;
  nssUnlock(key: string, token: string): Promise<number>;
}

/** The scripts on one session, each defined twice: on the session key alone, and `…Marked` on the session and its expiry marker. */
const SESSION_SCRIPTS = {
  nssCommit: COMMIT_SCRIPT,
  nssCreate: CREATE_SCRIPT,
  nssDestroy: DESTROY_SCRIPT,
  nssDestroyIfOwned: DESTROY_IF_OWNED_SCRIPT,
} as const;
type SessionScript = keyof typeof SESSION_SCRIPTS;
// A fixed key count per command, so that ioredis finds each command's key (its Cluster slot,
// its auto-pipeline) in the first argument.
type SessionScriptCommands = { [K in SessionScript]: (key: string, ...args: (string | number)[]) => Promise<unknown> } & {
  [K in SessionScript as `${K}Marked`]: (key: string, marker: string, ...args: (string | number)[]) => Promise<unknown>;
};

type ScriptedClient = IoredisClient & ScriptCommands;
type WritePipeline = ScriptCommands & ReturnType<IoredisClient['pipeline']>;

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
   * key beside it (about 140 bytes; see redis.scripts.ts). Set it on every node sharing the
   * Redis, since a session written by a node without it cannot be reported.
   * @default false
   */
  expiryEvents?: boolean;
}

const META = { created: '~c', lastSeen: '~s', expires: '~e', user: '~u', client: '~k' } as const;
const DATA_PREFIX = 'd:';
const USER_MODE = { keep: 'k', set: 's', clear: 'c' } as const;

/**
 * How much longer a session's expiry marker lives than the session. Redis publishes an expiry
 * when it reclaims the key, which for a key nobody reads is when its expiry cycle gets to it:
 * about 200 keys with a TTL per second at the default `hz 10`, so minutes after the TTL on a large
 * keyspace. The marker must still be there then. It costs little: a reported expiry takes its
 * marker at once, so only unreported ones (nobody watching) keep theirs for the grace period.
 */
const EXPIRY_MARKER_GRACE = 60 * 60_000;

/**
 * How long a user lock holds if its holder never releases it (a node that crashed inside the
 * critical section). The module bounds each store call by `storeTimeout` (3 s by default), so a
 * critical section is normally over, or abandoned, well within it; 10 s leaves room for a slow
 * one without letting a second node in, and is the longest a crashed node can hold up that
 * user's sign-ins. It is also the longest a caller waits for the lock before giving up.
 */
const USER_LOCK_LEASE = 10_000;
/** Retry delays while a user lock is taken: short, since critical sections are a few commands. */
const USER_LOCK_RETRY = { first: 5, max: 100 } as const;

/** Users whose index lifetime a node remembers, at most (the oldest noted is forgotten first). */
const INDEX_LIFE_MEMORY = 10_000;

/**
 * ms between reconnect attempts of the store's connections: 50, 100, 150… and never more than
 * 500. The cap is what decides how long requests keep failing after Redis is back or a replica
 * is promoted: with attempts up to 2 s apart, reads came back 3.5 s after a Sentinel master was
 * killed where the promotion took 2.5 s. An attempt is one TCP connect, cheap for both sides.
 */
export const reconnectDelay = (attempt: number): number => Math.min(50 * attempt, 500);

/**
 * Expiry subscribers wait for their server as long as it takes: their SUBSCRIBE (and the
 * notification check before it) stay queued while the server is down instead of failing, and
 * ioredis subscribes again after every reconnect (a Sentinel failover included).
 */
const SUBSCRIBER_OPTIONS: RedisOptions = {
  lazyConnect: false,
  enableOfflineQueue: true,
  autoResubscribe: true,
  commandTimeout: undefined,
  maxRetriesPerRequest: null,
  retryStrategy: reconnectDelay,
  // Nothing but SUBSCRIBE runs on these connections: no command coordination to set up.
  himportFieldsets: undefined,
  enableAutoPipelining: false,
};

/** The warning for a server that does not publish expiry events (the store never changes its config). */
const notificationsOff = (where: string, flags: string): string =>
  `Redis session store: ${where} does not publish key expiry events (notify-keyspace-events is "${flags}"), ` +
  'so expired sessions are not reported. Enable them with CONFIG SET notify-keyspace-events Ex ' +
  '(or add E and x to the current flags), or "notify-keyspace-events Ex" in redis.conf; on a Cluster, on every master.';

/** Outage policy of the clients the store creates: fail fast, recover by itself. */
const CLIENT_DEFAULTS: RedisOptions = {
  // Bounded command time: a command that gets no answer fails instead of hanging the request.
  commandTimeout: REDIS_DEFAULTS.commandTimeout,
  connectTimeout: 2000,
  // Commands issued while reconnecting wait in the offline queue (bounded by commandTimeout),
  // and are retried once on a new connection, so a short blip or a failover costs no error.
  enableOfflineQueue: true,
  maxRetriesPerRequest: 1,
  retryStrategy: reconnectDelay,
  // Closing a client whose server is gone leaves a timer of this length behind: keep it short.
  disconnectTimeout: 200,
  // Commands issued in the same tick (concurrent requests' reads and writes) leave in one
  // socket write: fewer syscalls on both ends, for the same commands and the same replies.
  enableAutoPipelining: true,
};

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
  private readonly prefix: string;
  private readonly strong: boolean;
  private readonly replicaTimeout: number;
  private readonly ownsClient: boolean;
  private readonly expiryEvents: boolean;
  private closed = false;
  /** The connection of strong writes, made on first need and always owned by the store. */
  private writer: ScriptedClient | undefined;
  /** Until then, strong writes fail at once: the last WAIT found no replica. */
  private replicaMissingUntil = 0;
  /** Expiry subscribers, always owned by the store: one (key '') or, on a Cluster, one per master (key host:port). */
  private readonly subscribers = new Map<string, Redis>();
  /** Set once the expiry watch started, so a second start (listeners gone, then back) adds nothing. */
  private expiryWatchStarted = false;
  /** The warning that expiry listeners hear nothing without `expiryEvents` is given once. */
  private expiryEventsOffWarned = false;
  /** Removes the listeners the expiry watch put on a Cluster client. */
  private stopClusterWatch: (() => void) | undefined;
  /** Per user, until when this node last made the user's index live (see rememberIndexLife). */
  private readonly indexAliveUntil = new Map<string, number>();
  /** Servers already warned about for having notifications off, so each is named once. */
  private readonly warnedNotificationsOff = new Set<string>();

  constructor(options: RedisStoreOptions) {
    super();
    // Validated as an ioredis client when it came through the options (isRedisClient).
    this.client = defineScripts(options.client as IoredisClient);
    this.prefix = options.prefix ?? 'sess:';
    this.strong = options.consistency === 'strong';
    this.replicaTimeout = options.replicaTimeout ?? REDIS_DEFAULTS.replicaTimeout;
    this.ownsClient = options.ownsClient ?? false;
    this.expiryEvents = options.expiryEvents ?? false;
  }

  /**
   * Builds a store from a config object, creating (and owning) the ioredis client unless one is
   * given. ioredis is an optional peer dependency, loaded only here.
   */
  static async fromConfig(config: RedisStoreConfig): Promise<RedisStore> {
    const { prefix, consistency, replicaTimeout, expiryEvents } = config;
    if (config.client) return new RedisStore({ client: config.client, prefix, consistency, replicaTimeout, expiryEvents });
    const client = createClient(await loadIoredis(), config);
    const store = new RedisStore({ client, prefix, consistency, replicaTimeout, expiryEvents, ownsClient: true });
    store.reportErrors(client);
    return store;
  }

  async get(id: string): Promise<StoredSession | null> {
    let hash: Record<string, string>;
    try {
      hash = await this.client.hgetall(this.key(id));
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
    const set: string[] = [];
    const unset = change.unset.map((field) => DATA_PREFIX + field);
    for (const [field, json] of encodeFields(change.set)) {
      if (json === undefined) unset.push(DATA_PREFIX + field);
      else set.push(DATA_PREFIX + field, json);
    }
    if (change.client === null) unset.push(META.client);
    else if (change.client !== undefined) set.push(META.client, encodeClient(change.client));
    // The index is written first: a session a user can be signed in with is always listed.
    if (change.userId) await this.index(change.userId, id, change.lastSeenAt, change.expiresAt);
    const mode = change.userId === undefined ? USER_MODE.keep : change.userId === null ? USER_MODE.clear : USER_MODE.set;
    const user = await this.writeSession<string | null>(
      'nssCommit',
      id,
      change.expiresAt,
      change.lastSeenAt,
      change.expiresAt + EXPIRY_MARKER_GRACE,
      mode,
      change.userId ?? '',
      set.length / 2,
      ...set,
      ...unset,
    );
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
    const ids = await this.client.zrange(this.indexKey(userId), '0', '-1');
    const rows = await Promise.all(
      ids.map((id) => this.client.hmget(this.key(id), META.created, META.lastSeen, META.expires, META.user, META.client)),
    );
    const now = Date.now();
    const live: SessionSummary[] = [];
    const dead: string[] = [];
    ids.forEach((id, i) => {
      const [created, lastSeen, expires, user, clientJson] = rows[i];
      const expiresAt = Number(expires);
      if (user !== userId || !(expiresAt > now)) {
        dead.push(id);
        return;
      }
      const client = parseClient(clientJson);
      // Listed only if get() would return it too; left in the index, as revoking must still find it.
      if (client === undefined) this.unreadable(id, 'holds a client record that is not ours');
      else live.push({ id, createdAt: Number(created), lastSeenAt: Number(lastSeen), expiresAt, ...(client && { client }) });
    });
    if (dead.length) await this.client.zrem(this.indexKey(userId), ...dead);
    return live.sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    const ids = (await this.client.zrange(this.indexKey(userId), '0', '-1')).filter((id) => id !== exceptId);
    const deleted = await Promise.all(ids.map((id) => this.writeSession<number>('nssDestroyIfOwned', id, userId)));
    if (ids.length) await this.client.zrem(this.indexKey(userId), ...ids);
    return ids.filter((_, i) => deleted[i] === 1);
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  /**
   * Runs `critical` while no other caller, on any node sharing this Redis, holds the same user's
   * lock: a key `<prefix>user:{<userId>}:lock` set with NX and a lease, retried while taken, and
   * released only by its holder. Callers in this process queue first (the base class), so one of
   * them at a time polls Redis. Rejects when Redis does not answer (the command timeout), or when
   * the lock stays taken longer than a lease.
   */
  override withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return super.withUserLock(userId, () => this.withCrossNodeLock(userId, critical));
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopClusterWatch?.();
    const subscribers = [...this.subscribers.values()];
    this.subscribers.clear();
    await Promise.all(subscribers.map(closeSubscriber));
    if (this.writer) await closeClient(this.writer);
    if (this.ownsClient) await closeClient(this.client);
  }

  // ---- Expiry events -----------------------------------------------------------------------

  /** Only with `expiryEvents`: the marker key each session needs for its expiry to be reported. */
  override get reportsExpiries(): boolean {
    return this.expiryEvents;
  }

  /**
   * Subscribes to Redis' `expired` keyspace events: on a duplicate connection (standalone and
   * Sentinel, which follows failovers by itself), or on one connection per Cluster master, kept in
   * step with the masters the Cluster client knows. Resolves once subscribed where it can be.
   */
  protected override async startExpiryWatch(): Promise<void> {
    if (this.expiryWatchStarted || this.closed) return;
    if (!this.reportsExpiries) {
      if (!this.expiryEventsOffWarned) this.logger.warn(SessionMessages.redisExpiryEventsOff());
      this.expiryEventsOffWarned = true;
      return;
    }
    this.expiryWatchStarted = true;
    try {
      if (isCluster(this.client)) await this.watchCluster(this.client);
      else await this.watchServer(this.client);
    } catch (error) {
      // A subscriber closed by a shutdown meanwhile is no failure to report.
      if (!this.closed) throw error;
    }
  }

  private async watchServer(client: Redis): Promise<void> {
    const subscriber = client.duplicate(SUBSCRIBER_OPTIONS);
    this.subscribers.set('', subscriber);
    await this.listen(subscriber, client.options.db ?? 0, 'the Redis server');
  }

  private async watchCluster(cluster: Cluster): Promise<void> {
    const reconcile = (): void => void this.reconcileClusterSubscribers(cluster);
    // A master gone (a crash): learn its successor now, not at the next command that fails.
    const nodeGone = (): void => {
      reconcile();
      refreshSlots(cluster);
    };
    cluster.on('refresh', reconcile);
    cluster.on('ready', reconcile);
    cluster.on('+node', reconcile);
    cluster.on('-node', nodeGone);
    this.stopClusterWatch = () => {
      cluster.off('refresh', reconcile);
      cluster.off('ready', reconcile);
      cluster.off('+node', reconcile);
      cluster.off('-node', nodeGone);
    };
    await this.reconcileClusterSubscribers(cluster);
  }

  /**
   * One subscriber per master the Cluster client knows right now (keyspace events are published
   * only by the node whose key expired, and replicas expire nothing): new masters get one, and
   * nodes that are no longer masters lose theirs. Resolves once the new ones are subscribed.
   */
  private reconcileClusterSubscribers(cluster: Cluster): Promise<unknown> {
    if (this.closed) return Promise.resolve();
    const masters = new Map(cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
    for (const [address, subscriber] of this.subscribers) {
      if (masters.has(address)) continue;
      this.subscribers.delete(address);
      void closeSubscriber(subscriber);
    }
    const started: Promise<void>[] = [];
    for (const [address, node] of masters) {
      if (this.subscribers.has(address)) continue;
      // Cluster nodes are made never to reconnect (ioredis waits for a MOVED instead): this one must.
      const subscriber = node.duplicate({ ...SUBSCRIBER_OPTIONS, readOnly: false });
      this.subscribers.set(address, subscriber);
      // A lost master: ask the Cluster who serves its slots now, as long as it stays unreachable.
      subscriber.on('reconnecting', () => refreshSlots(cluster));
      started.push(
        this.listen(subscriber, 0, `the Redis Cluster master ${address}`).catch((error: unknown) => {
          if (this.subscribers.get(address) === subscriber) this.warnings.warn(error);
        }),
      );
    }
    return Promise.all(started);
  }

  /** Checks the server's notification config, then subscribes to its expired events. */
  private async listen(subscriber: Redis, db: number, where: string): Promise<void> {
    this.reportErrors(subscriber);
    subscriber.on('message', (_channel: string, key: string) => this.onExpiredKey(key));
    await this.checkNotifications(subscriber, where);
    await subscriber.subscribe(`__keyevent@${db}__:expired`);
  }

  /**
   * Warns once per server whose `notify-keyspace-events` lacks `E` (keyevent channels) or `x`
   * (expired events; `A` includes it). Managed services often refuse CONFIG: then nothing is said,
   * since nothing is known. The store never changes the server's config itself.
   */
  private async checkNotifications(subscriber: Redis, where: string): Promise<void> {
    let flags: string;
    try {
      const reply = (await subscriber.config('GET', 'notify-keyspace-events')) as unknown[];
      flags = String(reply[1] ?? '');
    } catch {
      return;
    }
    if (flags.includes('E') && /[xA]/.test(flags)) return;
    if (this.warnedNotificationsOff.has(where)) return;
    this.warnedNotificationsOff.add(where);
    this.logger.warn(notificationsOff(where, flags));
  }

  /**
   * One session key expired: whoever takes its marker (GETDEL, atomic) reports it, so among all
   * the nodes that received the same event exactly one does. Markers of destroyed or rotated
   * sessions are deleted with them, so those are never reported. Only a node with listeners
   * takes the marker, leaving it to one that has.
   */
  private onExpiredKey(key: string): void {
    const id = this.sessionIdOf(key);
    if (id === undefined || this.closed || !this.watchingExpiry) return;
    this.client.getdel(this.markerKey(id)).then(
      (user) => {
        if (user !== null) this.reportExpired({ id, userId: user === '' ? null : user });
      },
      (error: unknown) => this.warnings.warn(error),
    );
  }

  /** The session id of a session key of this prefix; undefined for any other key (an index, a marker, a lock). */
  private sessionIdOf(key: string): string | undefined {
    const head = `${this.prefix}{`;
    if (!key.startsWith(head) || !key.endsWith('}')) return undefined;
    const id = key.slice(head.length, -1);
    return id === '' || /[{}]/.test(id) ? undefined : id;
  }

  // ---- User lock ---------------------------------------------------------------------------

  /**
   * The lock is taken and released on the main connection, without `WAIT` even under
   * `consistency: 'strong'`: a lock lost in a failover only lets a second node in during the
   * failover itself, as an expired lease would, and it guards a session count rather than data,
   * which is not worth a replica round trip (or a failed sign-in when no replica answers).
   */
  private async withCrossNodeLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    const key = this.lockKey(userId);
    const token = randomBytes(16).toString('base64url');
    await this.acquireUserLock(key, token);
    try {
      return await critical();
    } finally {
      // A failed release costs at most one lease: the key expires by itself.
      await this.client.nssUnlock(key, token).catch((error: unknown) => this.warnings.warn(error));
    }
  }

  private async acquireUserLock(key: string, token: string): Promise<void> {
    const giveUpAt = Date.now() + USER_LOCK_LEASE;
    for (let delay: number = USER_LOCK_RETRY.first; ; delay = Math.min(2 * delay, USER_LOCK_RETRY.max)) {
      if ((await this.client.set(key, token, 'PX', USER_LOCK_LEASE, 'NX')) === 'OK') return;
      if (this.closed || Date.now() >= giveUpAt) {
        throw new SessionStoreUnavailableError(this.kind, undefined, `a user's session lock stayed taken for ${USER_LOCK_LEASE} ms`);
      }
      // Jittered, so that nodes waiting for the same lock do not retry in step.
      await sleep(delay / 2 + Math.random() * (delay / 2));
    }
  }

  // ---- Internals ---------------------------------------------------------------------------

  private key(id: string): string {
    return `${this.prefix}{${id}}`;
  }

  /** Runs a session script as a write; with expiry events on, its marker (same slot) is a second key. */
  private writeSession<T>(script: SessionScript, id: string, ...args: (string | number)[]): Promise<T> {
    return this.write<T>((redis) =>
      this.expiryEvents ? redis[`${script}Marked`](this.key(id), this.markerKey(id), ...args) : redis[script](this.key(id), ...args),
    );
  }

  private markerKey(id: string): string {
    return `${this.key(id)}:x`;
  }

  private indexKey(userId: string): string {
    return `${this.prefix}user:{${userId}}`;
  }

  /** In the index's slot: the same hash tag. */
  private lockKey(userId: string): string {
    return `${this.indexKey(userId)}:lock`;
  }

  /** Adds `id` to the user's index (or, with '', only extends it) to live twice the session's remaining time. */
  private index(userId: string, id: string, score: number, expiresAt: number): Promise<number> {
    const now = Date.now();
    const ttl = Math.max(1, 2 * (expiresAt - now));
    this.rememberIndexLife(userId, now + ttl);
    return this.write((redis) => redis.nssIndex(this.indexKey(userId), id, score, ttl));
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

  /**
   * Sends one write, followed in the same round trip by `WAIT 1` when consistency is strong, on
   * the connection (and so the node) that took the write.
   */
  private async write<T>(command: (target: ScriptCommands) => unknown): Promise<T> {
    // Sent as a plain command, so that auto-pipelining can batch it with other requests' commands.
    if (!this.strong) return (await command(this.client)) as T;
    const noReplica = SessionMessages.noReplicaAck(this.replicaTimeout);
    if (Date.now() < this.replicaMissingUntil) throw new SessionStoreUnavailableError(this.kind, undefined, noReplica);
    const writer = this.strongWriter();
    // A Cluster pipeline answered MOVED/ASK (a failover or a slot migration) wrote nothing: it is
    // sent again once the slot map is fresh. ioredis does not retry a pipeline that ends in WAIT.
    for (let attempt = 1; ; attempt++) {
      const pipeline = writer.pipeline() as WritePipeline;
      command(pipeline);
      pipeline.wait(1, this.replicaTimeout);
      const results = (await pipeline.exec()) ?? [];
      const redirected = results[0]?.[0]?.message.match(/^(MOVED|ASK) /);
      if (redirected && attempt < 3 && isCluster(writer)) {
        await new Promise<void>((resolve) => writer.refreshSlotsCache(() => resolve()));
        continue;
      }
      const value = firstResult<T>(results);
      if ((results[1]?.[1] as number) >= 1) return value;
      // No replica answered: later strong writes fail at once for a while instead of queueing
      // behind WAITs that would time out too (a Cluster's other masters have their own
      // connections, so only a single master's writes are short-circuited).
      if (!isCluster(writer)) this.replicaMissingUntil = Date.now() + this.replicaTimeout;
      throw new SessionStoreUnavailableError(this.kind, undefined, noReplica);
    }
  }

  /**
   * Strong writes get their own connection: Redis answers one connection's commands in order,
   * so reads queued behind a WAIT would otherwise wait for the replica too.
   */
  private strongWriter(): ScriptedClient {
    if (!this.writer) {
      const client = this.client as { duplicate(): IoredisClient };
      this.writer = defineScripts(client.duplicate());
      this.reportErrors(this.writer);
    }
    return this.writer;
  }

  private unreadable(id: string, problem: string): null {
    this.logger.warn(`Session ${hashSessionId(id)} in Redis ${problem}; treating it as absent.`);
    return null;
  }

  /** Every client error is handled (an unhandled 'error' event would end the process), and logged without flooding. */
  private reportErrors(client: IoredisClient): void {
    client.on('error', (error: unknown) => this.warnings.warn(error));
  }
}

/** The create script's arguments before the fields: expiry, marker expiry, user. */
function createArgs(session: StoredSession): (string | number)[] {
  return [session.expiresAt, session.expiresAt + EXPIRY_MARKER_GRACE, session.userId ?? ''];
}

/** The hash fields of a whole session: metadata, then one JSON field per data field. */
function hashFields(session: StoredSession): string[] {
  const fields = [META.created, String(session.createdAt), META.lastSeen, String(session.lastSeenAt), META.expires, String(session.expiresAt)];
  if (session.userId !== null) fields.push(META.user, session.userId);
  if (session.client) fields.push(META.client, encodeClient(session.client));
  for (const [field, json] of encodeFields(session.data)) if (json !== undefined) fields.push(DATA_PREFIX + field, json);
  return fields;
}

/** A millisecond timestamp as stored, or NaN for anything else ('' included). */
const timestamp = (value: string | undefined): number => (value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : NaN);

/** A stored hash as a session; undefined when it is not one of ours (bad metadata or JSON). */
function parseSession(id: string, hash: Record<string, string>): StoredSession | undefined {
  const createdAt = timestamp(hash[META.created]);
  const lastSeenAt = timestamp(hash[META.lastSeen]);
  const expiresAt = timestamp(hash[META.expires]);
  if (![createdAt, lastSeenAt, expiresAt].every(Number.isFinite)) return undefined;
  const client = parseClient(hash[META.client]);
  if (client === undefined) return undefined;
  const data: SessionFields = Object.create(null);
  for (const [field, json] of Object.entries(hash)) {
    if (!field.startsWith(DATA_PREFIX)) continue;
    try {
      defineField(data, field.slice(DATA_PREFIX.length), JSON.parse(json));
    } catch {
      return undefined;
    }
  }
  // No record, no field: what stores return for a session that has none.
  return { id, data, createdAt, lastSeenAt, expiresAt, userId: hash[META.user] ?? null, ...(client && { client }) };
}

/** Closes a client and waits until its socket is closed. */
async function closeClient(client: IoredisClient): Promise<void> {
  if (client.status === 'end') return;
  // quit() resolves on the server's OK, before the socket is closed: wait for 'end' too, but
  // not forever (a client that never connected may not emit it).
  const ended = new Promise<void>((resolve) => {
    client.once('end', resolve);
    setTimeout(resolve, 1000).unref();
  });
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
  await ended;
}

/** Closes an expiry subscriber at once: it has nothing to flush, and its server may be gone. */
async function closeSubscriber(subscriber: Redis): Promise<void> {
  if (subscriber.status === 'end') return;
  const ended = new Promise<void>((resolve) => {
    subscriber.once('end', resolve);
    setTimeout(resolve, 1000).unref();
  });
  subscriber.disconnect();
  await ended;
}

/** Asks a Cluster client to re-read the slot map (a no-op while one is under way, or once it is closed). */
function refreshSlots(cluster: Cluster): void {
  if (cluster.status === 'ready') cluster.refreshSlotsCache();
}

function firstResult<T>(results: [Error | null, unknown][] | null): T {
  for (const [error] of results ?? []) if (error) throw error;
  return results?.[0]?.[1] as T;
}

function isCluster(client: IoredisClient): client is Cluster {
  return typeof (client as Cluster).refreshSlotsCache === 'function';
}

function defineScripts(client: IoredisClient): ScriptedClient {
  const scripted = client as ScriptedClient;
  // Defined once per client, even when several stores share it.
  if (typeof scripted.nssCommit === 'function') return scripted;
  for (const [name, lua] of Object.entries(SESSION_SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: 1, lua });
    client.defineCommand(`${name}Marked`, { numberOfKeys: 2, lua });
  }
  client.defineCommand('nssIndex', { numberOfKeys: 1, lua: INDEX_SCRIPT });
  client.defineCommand('nssUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT });
  return scripted;
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

type Ioredis = Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;

async function loadIoredis(): Promise<Ioredis> {
  try {
    return await import('ioredis');
  } catch {
    throw new Error(SessionMessages.driverMissing('redis', 'ioredis'));
  }
}

function createClient(ioredis: Ioredis, config: RedisStoreConfig): IoredisClient {
  const options: RedisOptions = {
    ...CLIENT_DEFAULTS,
    ...(config.commandTimeout !== undefined && { commandTimeout: config.commandTimeout }),
    ...(config.username !== undefined && { username: config.username }),
    ...(config.password !== undefined && { password: config.password }),
    ...(config.db !== undefined && { db: config.db }),
    ...(config.tls !== undefined && config.tls !== false && { tls: config.tls === true ? {} : config.tls }),
  };
  if (config.cluster) {
    const clusterOptions: ClusterOptions = {
      redisOptions: options,
      enableOfflineQueue: true,
      maxRedirections: 16,
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      slotsRefreshTimeout: 2000,
      // Also learn of failovers and slot moves between requests, not only from a MOVED reply.
      slotsRefreshInterval: 5000,
      clusterRetryStrategy: reconnectDelay,
      enableAutoPipelining: true,
    };
    return new ioredis.Cluster(config.cluster, clusterOptions);
  }
  if (config.sentinels) {
    return new ioredis.Redis({
      ...options,
      sentinels: config.sentinels,
      name: config.name,
      sentinelRetryStrategy: reconnectDelay,
    });
  }
  return new ioredis.Redis(config.url ?? 'redis://127.0.0.1:6379', options);
}
