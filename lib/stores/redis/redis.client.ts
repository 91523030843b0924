/**
 * The ioredis clients of the Redis store: loading the driver, the connections it creates and how
 * they ride out an outage, and closing them.
 */

import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { SessionMessages } from '../../session.errors.js';
import { REDIS_DEFAULTS } from '../store-config.js';
import type { RedisStoreConfig } from '../store-config.js';
import type { StoreWarnings } from '../toolkit/store-runtime.js';

/** The client the store works with, in ioredis's own types (the public options name a `RedisClient`). */
export type IoredisClient = Redis | Cluster;

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
export const SUBSCRIBER_OPTIONS: RedisOptions = {
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

type Ioredis = Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;

export async function loadIoredis(): Promise<Ioredis> {
  try {
    return await import('ioredis');
  } catch {
    throw new Error(SessionMessages.driverMissing('redis', 'ioredis'));
  }
}

export function createClient(ioredis: Ioredis, config: RedisStoreConfig): IoredisClient {
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

/** Every client error is handled (an unhandled 'error' event would end the process), and logged without flooding. */
export function reportErrors(client: IoredisClient, warnings: StoreWarnings): void {
  client.on('error', (error: unknown) => warnings.warn(error));
}

export function isCluster(client: IoredisClient): client is Cluster {
  return typeof (client as Cluster).refreshSlotsCache === 'function';
}

/** Asks a Cluster client to re-read the slot map (a no-op while one is under way, or once it is closed). */
export function refreshSlots(cluster: Cluster): void {
  if (cluster.status === 'ready') cluster.refreshSlotsCache();
}

/** Closes a client and waits until its socket is closed. */
export async function closeClient(client: IoredisClient): Promise<void> {
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
export async function closeSubscriber(subscriber: Redis): Promise<void> {
  if (subscriber.status === 'end') return;
  const ended = new Promise<void>((resolve) => {
    subscriber.once('end', resolve);
    setTimeout(resolve, 1000).unref();
  });
  subscriber.disconnect();
  await ended;
}
