/**
 * The driver objects an application hands to a store, as the public types name them. Were they
 * ioredis's and pg's own types, the published declarations would import both packages, and the
 * type check of every application without them (one on the memory store, say) would fail with
 * "Cannot find module 'ioredis'" unless it set `skipLibCheck`. So they list only members the
 * stores call, which an ioredis `Redis` or `Cluster` and a pg `Pool` have as they are; inside,
 * the stores work with the drivers' own types. The options validation checks the same members at
 * start-up.
 */

/** An ioredis client you created: a standalone or Sentinel-backed `Redis`, or a `Cluster`. */
export interface RedisClient {
  /** ioredis's connection state: 'ready', 'reconnecting', 'end'… */
  readonly status: string;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  duplicate(): unknown;
  quit(): Promise<unknown>;
}

/** A pg `Pool` you created. */
export interface PostgresPool {
  query(text: string, values?: unknown[]): Promise<unknown>;
  connect(): Promise<unknown>;
  end(): Promise<void>;
}
