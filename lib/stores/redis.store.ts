import { Logger } from '@nestjs/common';
import type { OnApplicationShutdown } from '@nestjs/common';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { maskSessionId } from '../crypto/index.js';
import { SessionMessages, SessionStoreUnavailableError } from '../session.errors.js';
import { defineField, encodeFields } from './field-codec.js';
import { COMMIT_SCRIPT, CREATE_SCRIPT, DESTROY_IF_OWNED_SCRIPT, INDEX_SCRIPT } from './redis.scripts.js';
import { SessionStore } from './session-store.js';
import { StoreWarnings } from './store-runtime.js';
import type { SessionChange, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import { REDIS_DEFAULTS } from './store-config.js';
import type { RedisStoreConfig } from './store-config.js';

/** A client the store can use: a standalone or Sentinel-backed `Redis`, or a `Cluster`. */
export type RedisClient = Redis | Cluster;

/** The scripts, as ioredis exposes them once defined on a client. */
interface ScriptCommands {
  nssCommit(key: string, ...args: (string | number)[]): Promise<string | null>;
  nssCreate(key: string, ...args: (string | number)[]): Promise<number>;
  nssDestroyIfOwned(key: string, userId: string): Promise<number>;
  nssIndex(key: string, id: string, score: number, ttl: number): Promise<number>;
}

type ScriptedClient = RedisClient & ScriptCommands;
type WritePipeline = ScriptCommands & ReturnType<RedisClient['pipeline']>;

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
}

const META = { created: '~c', lastSeen: '~s', expires: '~e', user: '~u' } as const;
const DATA_PREFIX = 'd:';
const USER_MODE = { keep: 'k', set: 's', clear: 'c' } as const;

/** Outage policy of the clients the store creates: fail fast, recover by itself. */
const CLIENT_DEFAULTS: RedisOptions = {
  // Bounded command time: a command that gets no answer fails instead of hanging the request.
  commandTimeout: REDIS_DEFAULTS.commandTimeout,
  connectTimeout: 2000,
  // Commands issued while reconnecting wait in the offline queue (bounded by commandTimeout),
  // and are retried once on a new connection, so a short blip or a failover costs no error.
  enableOfflineQueue: true,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
  // Closing a client whose server is gone leaves a timer of this length behind: keep it short.
  disconnectTimeout: 200,
};

/**
 * Sessions in Redis, standalone, behind Sentinel or on a Cluster: what lets an application run
 * on many nodes. One hash per session, expiry by TTL, delta commits by Lua in one round trip, a
 * per-user index (a sorted set, pruned lazily) for listing and revoking a user's sessions.
 *
 * Every key of one session is `<prefix>{<id>}`: the id is the hash tag, so a session's commands
 * go to one Cluster slot, and id rotation writes the new key and deletes the old one instead of
 * a cross-slot RENAME.
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

  private readonly logger = new Logger('SessionModule');
  private readonly warnings = new StoreWarnings('Redis session store');
  private readonly client: ScriptedClient;
  private readonly prefix: string;
  private readonly strong: boolean;
  private readonly replicaTimeout: number;
  private readonly ownsClient: boolean;
  private closed = false;
  /** The connection of strong writes, made on first need and always owned by the store. */
  private writer: ScriptedClient | undefined;
  /** Until then, strong writes fail at once: the last WAIT found no replica. */
  private replicaMissingUntil = 0;

  constructor(options: RedisStoreOptions) {
    super();
    this.client = defineScripts(options.client);
    this.prefix = options.prefix ?? 'sess:';
    this.strong = options.consistency === 'strong';
    this.replicaTimeout = options.replicaTimeout ?? REDIS_DEFAULTS.replicaTimeout;
    this.ownsClient = options.ownsClient ?? false;
  }

  /**
   * Builds a store from a config object, creating (and owning) the ioredis client unless one is
   * given. ioredis is an optional peer dependency, loaded only here.
   */
  static async fromConfig(config: RedisStoreConfig): Promise<RedisStore> {
    const { prefix, consistency, replicaTimeout } = config;
    if (config.client) return new RedisStore({ client: config.client, prefix, consistency, replicaTimeout });
    const client = createClient(await loadIoredis(), config);
    const store = new RedisStore({ client, prefix, consistency, replicaTimeout, ownsClient: true });
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
    const fields = hashFields(session);
    if (session.userId !== null) await this.index(session.userId, session.id, session.createdAt, session.expiresAt);
    await this.write((pipeline) => pipeline.nssCreate(this.key(session.id), session.expiresAt, ...fields));
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    const set: string[] = [];
    const unset = change.unset.map((field) => DATA_PREFIX + field);
    for (const [field, json] of encodeFields(change.set)) {
      if (json === undefined) unset.push(DATA_PREFIX + field);
      else set.push(DATA_PREFIX + field, json);
    }
    // The index is written first: a session a user can be signed in with is always listed.
    if (change.userId) await this.index(change.userId, id, change.lastSeenAt, change.expiresAt);
    const mode = change.userId === undefined ? USER_MODE.keep : change.userId === null ? USER_MODE.clear : USER_MODE.set;
    const user = await this.write<string | null>((pipeline) =>
      pipeline.nssCommit(this.key(id), change.expiresAt, change.lastSeenAt, mode, change.userId ?? '', set.length / 2, ...set, ...unset),
    );
    if (user === null) return false;
    // The index must outlive the session. Refreshed off the request path: the index already
    // lives twice the session's remaining time, so one lost refresh costs nothing.
    if (user) this.index(user, '', 0, change.expiresAt).catch((error) => this.warnings.warn(error));
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    const fields = hashFields(next);
    if (next.userId !== null) await this.index(next.userId, next.id, next.createdAt, next.expiresAt);
    // Write the new key and delete the old one at once (two slots on a Cluster, so two commands
    // rather than a RENAME). If the old one was already gone, it was destroyed meanwhile: the
    // new key is removed again, so the session stays dead.
    const [, deleted] = await Promise.all([
      this.write((pipeline) => pipeline.nssCreate(this.key(next.id), next.expiresAt, ...fields)),
      this.write((pipeline) => pipeline.del(this.key(oldId))),
    ]);
    if (deleted === 1) return true;
    await this.write((pipeline) => pipeline.del(this.key(next.id)));
    return false;
  }

  async destroy(id: string): Promise<void> {
    await this.write((pipeline) => pipeline.del(this.key(id)));
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    const ids = await this.client.zrange(this.indexKey(userId), '0', '-1');
    const rows = await Promise.all(ids.map((id) => this.client.hmget(this.key(id), META.created, META.lastSeen, META.expires, META.user)));
    const now = Date.now();
    const live: SessionSummary[] = [];
    const dead: string[] = [];
    ids.forEach((id, i) => {
      const [created, lastSeen, expires, user] = rows[i];
      const expiresAt = Number(expires);
      if (user !== userId || !(expiresAt > now)) dead.push(id);
      else live.push({ id, createdAt: Number(created), lastSeenAt: Number(lastSeen), expiresAt });
    });
    if (dead.length) await this.client.zrem(this.indexKey(userId), ...dead);
    return live.sort((a, b) => a.createdAt - b.createdAt);
  }

  async destroyByUser(userId: string, exceptId?: string): Promise<number> {
    const ids = (await this.client.zrange(this.indexKey(userId), '0', '-1')).filter((id) => id !== exceptId);
    const deleted = await Promise.all(ids.map((id) => this.write((pipeline) => pipeline.nssDestroyIfOwned(this.key(id), userId))));
    if (ids.length) await this.client.zrem(this.indexKey(userId), ...ids);
    return deleted.filter((n) => n === 1).length;
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writer) await closeClient(this.writer);
    if (this.ownsClient) await closeClient(this.client);
  }

  // ---- Internals ---------------------------------------------------------------------------

  private key(id: string): string {
    return `${this.prefix}{${id}}`;
  }

  private indexKey(userId: string): string {
    return `${this.prefix}user:{${userId}}`;
  }

  /** Adds `id` to the user's index (or, with '', only extends it) to live twice the session's remaining time. */
  private index(userId: string, id: string, score: number, expiresAt: number): Promise<number> {
    const ttl = Math.max(1, 2 * (expiresAt - Date.now()));
    return this.write((pipeline) => pipeline.nssIndex(this.indexKey(userId), id, score, ttl));
  }

  /**
   * Sends one write, followed in the same round trip by `WAIT 1` when consistency is strong, on
   * the connection (and so the node) that took the write.
   */
  private async write<T>(command: (pipeline: WritePipeline) => unknown): Promise<T> {
    if (!this.strong) {
      const pipeline = this.client.pipeline() as WritePipeline;
      command(pipeline);
      return firstResult<T>(await pipeline.exec());
    }
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
      const client = this.client as { duplicate(): RedisClient };
      this.writer = defineScripts(client.duplicate());
      this.reportErrors(this.writer);
    }
    return this.writer;
  }

  private unreadable(id: string, problem: string): null {
    this.logger.warn(`Session ${maskSessionId(id)} in Redis ${problem}; treating it as absent.`);
    return null;
  }

  /** Every client error is handled (an unhandled 'error' event would end the process), and logged without flooding. */
  private reportErrors(client: RedisClient): void {
    client.on('error', (error: unknown) => this.warnings.warn(error));
  }

}

/** The hash fields of a whole session: metadata, then one JSON field per data field. */
function hashFields(session: StoredSession): string[] {
  const fields = [META.created, String(session.createdAt), META.lastSeen, String(session.lastSeenAt), META.expires, String(session.expiresAt)];
  if (session.userId !== null) fields.push(META.user, session.userId);
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
  const data: SessionFields = Object.create(null);
  for (const [field, json] of Object.entries(hash)) {
    if (!field.startsWith(DATA_PREFIX)) continue;
    try {
      defineField(data, field.slice(DATA_PREFIX.length), JSON.parse(json));
    } catch {
      return undefined;
    }
  }
  return { id, data, createdAt, lastSeenAt, expiresAt, userId: hash[META.user] ?? null };
}

/** Closes a client and waits until its socket is closed. */
async function closeClient(client: RedisClient): Promise<void> {
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

function firstResult<T>(results: [Error | null, unknown][] | null): T {
  for (const [error] of results ?? []) if (error) throw error;
  return results?.[0]?.[1] as T;
}

function isCluster(client: RedisClient): client is Cluster {
  return typeof (client as Cluster).refreshSlotsCache === 'function';
}

function defineScripts(client: RedisClient): ScriptedClient {
  const scripted = client as ScriptedClient;
  // Defined once per client, even when several stores share it.
  if (typeof scripted.nssCommit === 'function') return scripted;
  client.defineCommand('nssCommit', { numberOfKeys: 1, lua: COMMIT_SCRIPT });
  client.defineCommand('nssCreate', { numberOfKeys: 1, lua: CREATE_SCRIPT });
  client.defineCommand('nssDestroyIfOwned', { numberOfKeys: 1, lua: DESTROY_IF_OWNED_SCRIPT });
  client.defineCommand('nssIndex', { numberOfKeys: 1, lua: INDEX_SCRIPT });
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

function createClient(ioredis: Ioredis, config: RedisStoreConfig): RedisClient {
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
      clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
    };
    return new ioredis.Cluster(config.cluster, clusterOptions);
  }
  if (config.sentinels) {
    return new ioredis.Redis({
      ...options,
      sentinels: config.sentinels,
      name: config.name,
      sentinelRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
    });
  }
  return new ioredis.Redis(config.url ?? 'redis://127.0.0.1:6379', options);
}
