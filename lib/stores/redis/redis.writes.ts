/**
 * How the Redis store sends a write: as a plain command under `consistency: 'eventual'`, and
 * followed by `WAIT 1` on a connection of its own under `'strong'`.
 */

import { SessionMessages, SessionStoreUnavailableError } from '../../session.errors.js';
import type { StoreWarnings } from '../toolkit/store-runtime.js';
import { closeClient, isCluster, reportErrors } from './redis.client.js';
import type { IoredisClient } from './redis.client.js';
import { defineScripts } from './redis.commands.js';
import type { ScriptCommands, ScriptedClient, WritePipeline } from './redis.commands.js';

export interface RedisWriterOptions {
  /** The store's connection: eventual writes go out on it, and strong writes on a duplicate of it. */
  client: ScriptedClient;
  strong: boolean;
  replicaTimeout: number;
  /** The store's kind, for the errors it throws. */
  kind: string;
  warnings: StoreWarnings;
}

export class RedisWriter {
  /** The connection of strong writes, made on first need and always owned by the store. */
  private writer: ScriptedClient | undefined;
  /** Until then, strong writes fail at once: the last WAIT found no replica. */
  private replicaMissingUntil = 0;

  constructor(private readonly options: RedisWriterOptions) {}

  /**
   * Sends one write, followed in the same round trip by `WAIT 1` when consistency is strong, on
   * the connection (and so the node) that took the write.
   */
  async write<T>(command: (target: ScriptCommands) => unknown): Promise<T> {
    const { client, strong, replicaTimeout, kind } = this.options;
    // Sent as a plain command, so that auto-pipelining can batch it with other requests' commands.
    if (!strong) return (await command(client)) as T;
    const noReplica = SessionMessages.noReplicaAck(replicaTimeout);
    if (Date.now() < this.replicaMissingUntil) throw new SessionStoreUnavailableError(kind, undefined, noReplica);
    const writer = this.strongWriter();
    // A Cluster pipeline answered MOVED/ASK (a failover or a slot migration) wrote nothing: it is
    // sent again once the slot map is fresh. ioredis does not retry a pipeline that ends in WAIT.
    for (let attempt = 1; ; attempt++) {
      const pipeline = writer.pipeline() as WritePipeline;
      command(pipeline);
      pipeline.wait(1, replicaTimeout);
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
      if (!isCluster(writer)) this.replicaMissingUntil = Date.now() + replicaTimeout;
      throw new SessionStoreUnavailableError(kind, undefined, noReplica);
    }
  }

  /** Closes the connection of strong writes, if one was made. */
  async close(): Promise<void> {
    if (this.writer) await closeClient(this.writer);
  }

  /**
   * Strong writes get their own connection: Redis answers one connection's commands in order,
   * so reads queued behind a WAIT would otherwise wait for the replica too.
   */
  private strongWriter(): ScriptedClient {
    if (!this.writer) {
      const client = this.options.client as { duplicate(): IoredisClient };
      this.writer = defineScripts(client.duplicate());
      reportErrors(this.writer, this.options.warnings);
    }
    return this.writer;
  }
}

function firstResult<T>(results: [Error | null, unknown][] | null): T {
  for (const [error] of results ?? []) if (error) throw error;
  return results?.[0]?.[1] as T;
}
