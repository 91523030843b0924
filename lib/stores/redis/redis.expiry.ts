/**
 * The Redis store's expiry watch: subscribers to Redis' `expired` keyspace events, and the
 * reporting of each expired session, once across all nodes, from its expiry marker.
 */

import type { LoggerService } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import type { ExpiredSession } from '../session-store.js';
import type { StoreWarnings } from '../toolkit/store-runtime.js';
import { closeSubscriber, isCluster, refreshSlots, reportErrors, SUBSCRIBER_OPTIONS } from './redis.client.js';
import type { IoredisClient } from './redis.client.js';
import type { RedisKeys } from './redis.keys.js';

/** The warning for a server that does not publish expiry events (the store never changes its config). */
const notificationsOff = (where: string, flags: string): string =>
  `Redis session store: ${where} does not publish key expiry events (notify-keyspace-events is "${flags}"), ` +
  'so expired sessions are not reported. Enable them with CONFIG SET notify-keyspace-events Ex ' +
  '(or add E and x to the current flags), or "notify-keyspace-events Ex" in redis.conf; on a Cluster, on every master.';

export interface RedisExpiryWatchOptions {
  /** The store's connection: what the subscribers duplicate, and where markers are taken. */
  client: IoredisClient;
  keys: RedisKeys;
  warnings: StoreWarnings;
  /** The store's logger, asked at each warning: the module may replace it after construction. */
  logger: () => LoggerService;
  /** True while somebody listens to the store's expiries. */
  isWatched: () => boolean;
  /** Hands one expiry to the store's listeners. */
  report: (expired: ExpiredSession) => void;
}

export class RedisExpiryWatch {
  /** Expiry subscribers, always owned by the store: one (key '') or, on a Cluster, one per master (key host:port). */
  private readonly subscribers = new Map<string, Redis>();
  /** Set once the expiry watch started, so a second start (listeners gone, then back) adds nothing. */
  private started = false;
  private closed = false;
  /** Removes the listeners the expiry watch put on a Cluster client. */
  private stopClusterWatch: (() => void) | undefined;
  /** Servers already warned about for having notifications off, so each is named once. */
  private readonly warnedNotificationsOff = new Set<string>();

  constructor(private readonly options: RedisExpiryWatchOptions) {}

  /**
   * Subscribes to Redis' `expired` keyspace events: on a duplicate connection (standalone and
   * Sentinel, which follows failovers by itself), or on one connection per Cluster master, kept in
   * step with the masters the Cluster client knows. Resolves once subscribed where it can be.
   */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    const { client } = this.options;
    try {
      if (isCluster(client)) await this.watchCluster(client);
      else await this.watchServer(client);
    } catch (error) {
      // A subscriber closed by a shutdown meanwhile is no failure to report.
      if (!this.closed) throw error;
    }
  }

  /** Stops following the Cluster's masters and closes every subscriber. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopClusterWatch?.();
    const subscribers = [...this.subscribers.values()];
    this.subscribers.clear();
    await Promise.all(subscribers.map(closeSubscriber));
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
          if (this.subscribers.get(address) === subscriber) this.options.warnings.warn(error);
        }),
      );
    }
    return Promise.all(started);
  }

  /** Checks the server's notification config, then subscribes to its expired events. */
  private async listen(subscriber: Redis, db: number, where: string): Promise<void> {
    reportErrors(subscriber, this.options.warnings);
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
    this.options.logger().warn(notificationsOff(where, flags));
  }

  /**
   * One session key expired: whoever takes its marker (GETDEL, atomic) reports it, so among all
   * the nodes that received the same event exactly one does. Markers of destroyed or rotated
   * sessions are deleted with them, so those are never reported. Only a node with listeners
   * takes the marker, leaving it to one that has.
   */
  private onExpiredKey(key: string): void {
    const { client, keys, isWatched, report, warnings } = this.options;
    const id = keys.sessionIdOf(key);
    if (id === undefined || this.closed || !isWatched()) return;
    client.getdel(keys.marker(id)).then(
      (user) => {
        if (user !== null) report({ id, userId: user === '' ? null : user });
      },
      (error: unknown) => warnings.warn(error),
    );
  }
}
