/**
 * Throwaway Redis topologies for tests: a standalone server, master + replica + 3 sentinels, and a
 * 6-node cluster, each started from the machine's `redis-server` on free ports, in fresh temp
 * directories, and stopped afterwards.
 *
 * Every process binds 127.0.0.1, persists nothing (`--save "" --appendonly no`), publishes the
 * keyevent notifications of expired keys promptly (`--notify-keyspace-events Ex --hz 100`, every
 * data node of every topology; sentinels hold no keys) and logs to `redis.log` in its own directory, whose tail is quoted in every start-up or failover error.
 * The developer's shared Redis on 127.0.0.1:6379 is never started, connected to or flushed.
 *
 * Nothing outlives the test run: `stop()` ends a topology, an 'exit' handler kills what a
 * forgotten `afterAll` left behind, and a detached watchdog kills the servers if the test process
 * itself dies without running exit handlers (SIGKILL, a jest worker force-exited).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { hostProcess, startWatchdog } from './host-process.js';

export { freePort } from './ports.js';

const REDIS_SERVER = 'redis-server';
const REDIS_CLI = 'redis-cli';
const HOST = '127.0.0.1';
const SHARED_REDIS_PORT = 6379;
const SENTINEL_MASTER_NAME = 'mymaster';
const CLUSTER_SIZE = 6;

/** Where a Redis server (or sentinel) can be reached. */
export interface RedisEndpoint {
  host: string;
  port: number;
}

/**
 * One `redis-server` (or `redis-server --sentinel`) process owned by the test run.
 *
 * `kill()` simulates a crash and keeps the directory, so `restart()` brings the server back as a
 * crashed one would come back (a cluster node with its `nodes.conf`, a sentinel with the config it
 * rewrote); data is gone either way, since nothing is persisted. `stop()` is the clean end of a
 * test: it also deletes the directory, and a `restart()` after it starts from a fresh directory.
 */
export interface RedisServer extends RedisEndpoint {
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** Whether the process is alive right now. */
  readonly running: boolean;
  /** The process id while running. */
  readonly pid: number | undefined;
  /** This server's own temp directory (its `--dir`, config files and log). */
  readonly dir: string;
  /** The file that receives the process's stdout and stderr. */
  readonly logFile: string;
  /** The last `lines` lines of the log, for error messages. */
  logTail(lines?: number): string;
  /** SIGKILLs the process and waits for it to exit: a crash, not a shutdown. No-op when not running. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after 2 s; waits for the exit and deletes the directory. Idempotent. */
  stop(): Promise<void>;
  /**
   * Starts the server again on the same port with the same arguments (killing it first if it is
   * running) and resolves once it answers PING.
   */
  restart(): Promise<void>;
}

/** Options of {@link startRedisServer}. */
export interface StartRedisServerOptions {
  /**
   * Extra `redis-server` arguments, appended after the harness's own (`--port`, `--bind`, `--dir`,
   * `--save ""`, `--appendonly no`, `--repl-diskless-sync-delay 0`, `--notify-keyspace-events Ex`,
   * `--hz 100`), so later ones win: `['--notify-keyspace-events', '']` starts a server that publishes no
   * keyspace events. Do not pass `--port`, `--bind` or `--dir`.
   */
  args?: string[];
}

/** Master + replica watched by three sentinels, as started by {@link startSentinelTopology}. */
export interface SentinelTopology {
  /** The name the sentinels monitor the master under: `'mymaster'`. */
  readonly masterName: string;
  /**
   * The server that was master at start-up. After a failover, `master.restart()` brings it back
   * empty and still a master; the sentinels demote it to a replica of the new master only about
   * 10 s later (Redis 7.0 waits for it to report the wrong role for a while), so wait for
   * `role:slave` before relying on it.
   */
  readonly master: RedisServer;
  /** The server that was replica at start-up. */
  readonly replica: RedisServer;
  /** The three sentinels. */
  readonly sentinels: RedisServer[];
  /** The sentinels' addresses, in the shape ioredis' `sentinels` option takes. */
  readonly sentinelEndpoints: RedisEndpoint[];
  /** The current master as the sentinels see it. */
  currentMaster(): Promise<RedisEndpoint>;
  /**
   * SIGKILLs the current master process and resolves once every running sentinel reports the same
   * different master, and that server answers ROLE with `master` (timeout 20 s).
   */
  killMasterAndWaitForFailover(): Promise<RedisEndpoint>;
  /** Stops every process of the topology. Idempotent. */
  stop(): Promise<void>;
}

/** A 3-master, 3-replica Redis Cluster, as started by {@link startClusterTopology}. */
export interface ClusterTopology {
  /** The 6 nodes, in start order (their roles change with failovers). */
  readonly nodes: RedisServer[];
  /** Every node's address, for ioredis' `new Cluster(startupNodes)`. */
  readonly startupNodes: RedisEndpoint[];
  /** Master endpoints right now (CLUSTER NODES: masters that own slots and are not failed). */
  masters(): Promise<RedisEndpoint[]>;
  /**
   * SIGKILLs the master serving `key`'s slot and resolves once its replica has been promoted and
   * CLUSTER INFO says cluster_state:ok on every survivor (timeout 30 s). Returns the new master.
   */
  killMasterOfKeyAndWaitForFailover(key: string): Promise<RedisEndpoint>;
  /** Stops every node. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Orphan protection

interface Registry {
  children: Set<ChildProcess>;
  dirs: Set<string>;
  /** Sends a line to this process's watchdog. */
  tellWatchdog: (line: string) => void;
}

/**
 * The watchdog reads "+pid N", "-pid N", "+dir P", "-dir P" lines on stdin; when stdin closes
 * (the test process is gone, however it died) it SIGKILLs the redis processes still listed and
 * deletes the directories. It checks /proc before killing so that a recycled pid is left alone.
 */
const WATCHDOG_SCRIPT = `
const fs = require('fs');
const pids = new Set(), dirs = new Set();
let pending = '', done = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let nl = pending.indexOf('\\n'); nl >= 0; nl = pending.indexOf('\\n')) {
    const line = pending.slice(0, nl); pending = pending.slice(nl + 1);
    const space = line.indexOf(' '), op = line.slice(0, space), arg = line.slice(space + 1);
    if (op === '+pid') pids.add(Number(arg)); else if (op === '-pid') pids.delete(Number(arg));
    else if (op === '+dir') dirs.add(arg); else if (op === '-dir') dirs.delete(arg);
  }
});
const hasProc = fs.existsSync('/proc/self');
const isRedis = (pid) => {
  if (!hasProc) return true;
  try { return fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').includes('redis'); } catch { return false; }
};
const cleanUp = () => {
  if (done) return; done = true;
  for (const pid of pids) if (isRedis(pid)) { try { process.kill(pid, 'SIGKILL'); } catch {} }
  setTimeout(() => {
    for (const dir of dirs) { try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch {} }
    process.exit(0);
  }, 300);
};
process.stdin.on('end', cleanUp); process.stdin.on('close', cleanUp); process.stdin.on('error', cleanUp);
`;

const REGISTRY_KEY = Symbol.for('nestjs-session-sync/test/redis-topology');

/** One registry per OS process, shared by every test file jest runs in it. */
function registry(): Registry {
  const host = hostProcess() as NodeJS.Process & { [REGISTRY_KEY]?: Registry };
  const existing = host[REGISTRY_KEY];
  if (existing) return existing;

  const created: Registry = { children: new Set(), dirs: new Set(), tellWatchdog: startWatchdog(WATCHDOG_SCRIPT) };
  host[REGISTRY_KEY] = created;
  host.on('exit', () => {
    for (const child of created.children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const dir of created.dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  return created;
}

function tellWatchdog(line: string): void {
  registry().tellWatchdog(line);
}

function trackChild(child: ChildProcess): void {
  registry().children.add(child);
  if (child.pid !== undefined) tellWatchdog(`+pid ${child.pid}`);
}

function untrackChild(child: ChildProcess): void {
  registry().children.delete(child);
  if (child.pid !== undefined) tellWatchdog(`-pid ${child.pid}`);
}

function trackDir(dir: string): void {
  registry().dirs.add(dir);
  tellWatchdog(`+dir ${dir}`);
}

function untrackDir(dir: string): void {
  registry().dirs.delete(dir);
  tellWatchdog(`-dir ${dir}`);
}

// ---------------------------------------------------------------------------------------------
// Polling helpers

/** Thrown by a wait condition that is not met yet; its message says what is still missing. */
class NotYet extends Error {}

function notYet(reason: string): never {
  throw new NotYet(reason);
}

function assertNotShared(endpoint: RedisEndpoint): void {
  if (endpoint.port === SHARED_REDIS_PORT) {
    throw new Error(`redis-topology: refusing to talk to ${endpoint.host}:${endpoint.port}, the shared Redis.`);
  }
}

/**
 * Runs `fn` with a short-lived client that never retries, never queues and never waits more than
 * a couple of seconds, so that a poll against a dead server fails at once instead of hanging.
 */
async function withClient<T>(endpoint: RedisEndpoint, fn: (client: Redis) => Promise<T>): Promise<T> {
  assertNotShared(endpoint);
  const client = new Redis({
    host: endpoint.host,
    port: endpoint.port,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1_000,
    commandTimeout: 2_000,
    disconnectTimeout: 200,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    // disconnect() on a client whose connection already failed arms a timer that nothing clears
    // (the socket's 'close' has been and gone), keeping jest alive for disconnectTimeout.
    if (client.status !== 'end') client.disconnect();
  }
}

/** `INFO`-style `key:value` lines (also CLUSTER INFO) as a record. */
function parseInfo(text: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  for (const line of String(text).split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) record[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return record;
}

/** A flat `[key, value, key, value…]` reply (SENTINEL replicas / sentinels) as a record. */
function pairsToRecord(reply: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  const items = Array.isArray(reply) ? reply : [];
  for (let i = 0; i + 1 < items.length; i += 2) record[String(items[i])] = String(items[i + 1]);
  return record;
}

async function roleOf(endpoint: RedisEndpoint): Promise<string> {
  const reply = await withClient(endpoint, (client) => client.call('ROLE'));
  return Array.isArray(reply) ? String(reply[0]) : String(reply);
}

interface WaitOptions {
  timeoutMs: number;
  /** Log tails to quote when giving up. */
  logs: () => string;
}

/**
 * Calls `check` every 50–250 ms until it returns a value; `check` throws (`notYet()` or any error)
 * while the condition is not met. Gives up after `timeoutMs` with the last reason and the logs.
 */
async function waitFor<T>(what: string, check: () => Promise<T>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = 50;
  let lastReason = 'never checked';
  for (;;) {
    try {
      return await check();
    } catch (error) {
      lastReason = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() + delay > deadline) {
      throw new Error(
        `redis-topology: ${what} did not happen within ${options.timeoutMs / 1000} s ` + `(last check: ${lastReason}).\n${options.logs()}`,
      );
    }
    await sleep(delay);
    delay = Math.min(250, Math.round(delay * 1.5));
  }
}

function logsOf(servers: readonly ManagedRedisServer[], lines = 20): string {
  return servers.map((server) => server.describeLog(lines)).join('\n');
}

// ---------------------------------------------------------------------------------------------
// One server process

const ADDRESS_IN_USE = /Address already in use/i;

class ManagedRedisServer implements RedisServer {
  readonly host = HOST;
  private child: ChildProcess | undefined;
  private alive = false;
  private exited: Promise<void> = Promise.resolve();
  private dirRemoved = false;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    private readonly args: readonly string[],
    /** Files written into a fresh directory (a sentinel's config) before the first start. */
    private readonly files: Readonly<Record<string, string>>,
  ) {}

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.alive;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  get logFile(): string {
    return join(this.dir, 'redis.log');
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log written)';
    }
  }

  describeLog(lines = 30): string {
    const state = this.alive ? `running, pid ${this.child?.pid}` : 'not running';
    return `--- ${this.name} ${this.host}:${this.port} (${state}), last ${lines} lines of ${this.logFile} ---\n${this.logTail(lines)}`;
  }

  async writeFiles(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const [name, content] of Object.entries(this.files)) await writeFile(join(this.dir, name), content);
  }

  /** Spawns the process and waits for PING; on failure the process is killed and the error quotes the log. */
  async start(): Promise<void> {
    if (this.alive) return;
    if (this.dirRemoved) {
      await this.writeFiles();
      trackDir(this.dir);
      this.dirRemoved = false;
    }
    this.spawnProcess();
    try {
      await this.waitUntilAnswering();
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  private spawnProcess(): void {
    const log = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(REDIS_SERVER, [...this.args], { cwd: this.dir, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.alive = true;
    // A forgotten server must not keep jest alive; the exit handler and the watchdog end it.
    child.unref();
    trackChild(child);
    this.exited = new Promise<void>((resolve) => {
      const onGone = (): void => {
        if (this.child === child) this.alive = false;
        untrackChild(child);
        resolve();
      };
      child.once('exit', onGone);
      child.once('error', onGone);
    });
  }

  private async waitUntilAnswering(): Promise<void> {
    const deadline = Date.now() + 10_000;
    let delay = 25;
    let lastError = 'never tried';
    for (;;) {
      if (!this.alive) {
        throw new Error(`redis-topology: ${REDIS_SERVER} (${this.name}) exited during start-up.\n${this.describeLog()}`);
      }
      try {
        const reply = await withClient(this, (client) => client.ping());
        if (reply === 'PONG') return;
        lastError = `PING answered ${String(reply)}`;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
      }
      if (Date.now() + delay > deadline) {
        throw new Error(
          `redis-topology: ${this.name} on ${this.host}:${this.port} did not answer PING within 10 s ` +
            `(last error: ${lastError}).\n${this.describeLog()}`,
        );
      }
      await sleep(delay);
      delay = Math.min(250, Math.round(delay * 1.5));
    }
  }

  async kill(): Promise<void> {
    if (this.alive) this.child?.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.alive) {
      this.child?.kill('SIGTERM');
      // An unref'd timer: the race's loser must not keep jest alive for 2 s.
      await Promise.race([this.exited, sleep(2_000, undefined, { ref: false })]);
      if (this.alive) this.child?.kill('SIGKILL');
    }
    await this.exited;
    if (!this.dirRemoved) {
      this.dirRemoved = true;
      await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
      untrackDir(this.dir);
    }
  }

  async restart(): Promise<void> {
    await this.kill();
    // The port was ours a moment ago, but another process may have bound it since.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (error) {
        if (attempt >= 20 || !(error instanceof Error) || !ADDRESS_IN_USE.test(error.message)) throw error;
        await sleep(100);
      }
    }
  }
}

/** The harness's own `redis-server` arguments, then `extra`. */
function serverArgs(port: number, dir: string, extra: readonly string[] = []): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    // Redis 7 waits 5 s before a diskless full sync by default; replicas should sync at once.
    '--repl-diskless-sync-delay',
    '0',
    // Keyevent notifications of expired keys, which the Redis store reports session expiries from.
    '--notify-keyspace-events',
    'Ex',
    // Redis publishes the expiry of a key nobody reads when its expiry cycle reclaims it, and that
    // cycle runs hz times a second, checking some 20 keys each time: at the default 10, a
    // 150 ms session among a suite's few hundred keys is reported seconds late; at 100, promptly.
    '--hz',
    '100',
    ...extra,
  ];
}

interface Recipe {
  args: string[];
  files?: Record<string, string>;
}

/**
 * Starts one server on a fresh port and directory. A port taken between `freePort()` and the bind
 * is retried with a new port.
 */
async function launch(name: string, recipe: (port: number, dir: string) => Recipe | Promise<Recipe>): Promise<ManagedRedisServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), `nss-redis-${name}-`));
    trackDir(dir);
    let recipeResult: Recipe;
    try {
      recipeResult = await recipe(port, dir);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      untrackDir(dir);
      throw error;
    }
    const { args, files = {} } = recipeResult;
    const server = new ManagedRedisServer(name, port, dir, args, files);
    try {
      await server.writeFiles();
      await server.start();
      return server;
    } catch (error) {
      await server.stop();
      if (attempt >= 3 || !(error instanceof Error) || !ADDRESS_IN_USE.test(error.message)) throw error;
    }
  }
}

/** Stops all servers even if some fail to stop, then reports the first failure. */
async function stopAll(servers: readonly RedisServer[]): Promise<void> {
  const results = await Promise.allSettled(servers.map((server) => server.stop()));
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Runs `body` with a list to register started servers in; if `body` fails they are all stopped. */
async function cleaningUpOnFailure<T>(body: (started: ManagedRedisServer[]) => Promise<T>): Promise<T> {
  const started: ManagedRedisServer[] = [];
  try {
    return await body(started);
  } catch (error) {
    await stopAll(started).catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Standalone

/**
 * Starts a standalone `redis-server` on a free port of 127.0.0.1 and resolves once it answers
 * PING (fails after 10 s with the tail of its log).
 *
 * @example
 * let redis: RedisServer;
 * beforeAll(async () => { redis = await startRedisServer(); });
 * afterAll(() => redis.stop());
 * it('survives a Redis crash', async () => {
 *   const client = new Redis(redis.url);
 *   await redis.kill();
 *   await redis.restart();
 *   expect(await client.ping()).toBe('PONG');
 * });
 */
export function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServer> {
  return launch('standalone', (port, dir) => ({ args: serverArgs(port, dir, options.args) }));
}

// ---------------------------------------------------------------------------------------------
// Sentinel

class SentinelTopologyImpl implements SentinelTopology {
  readonly masterName = SENTINEL_MASTER_NAME;

  constructor(
    readonly master: ManagedRedisServer,
    readonly replica: ManagedRedisServer,
    readonly sentinels: ManagedRedisServer[],
  ) {}

  get sentinelEndpoints(): RedisEndpoint[] {
    return this.sentinels.map(({ host, port }) => ({ host, port }));
  }

  private get all(): ManagedRedisServer[] {
    return [this.master, this.replica, ...this.sentinels];
  }

  private async masterAccordingTo(sentinel: RedisEndpoint): Promise<RedisEndpoint> {
    const reply = await withClient(sentinel, (client) => client.call('SENTINEL', 'get-master-addr-by-name', this.masterName));
    if (!Array.isArray(reply) || reply.length < 2) {
      notYet(`sentinel ${sentinel.port} does not know master "${this.masterName}"`);
    }
    return { host: String(reply[0]), port: Number(reply[1]) };
  }

  async currentMaster(): Promise<RedisEndpoint> {
    const reasons: string[] = [];
    for (const sentinel of this.sentinels.filter((s) => s.running)) {
      try {
        return await this.masterAccordingTo(sentinel);
      } catch (error) {
        reasons.push(`${sentinel.port}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    throw new Error(`redis-topology: no sentinel named the current master (${reasons.join('; ') || 'none running'}).`);
  }

  async killMasterAndWaitForFailover(): Promise<RedisEndpoint> {
    const old = await this.currentMaster();
    const victim = this.all.find((server) => server.port === old.port);
    if (!victim) throw new Error(`redis-topology: the sentinels name ${old.host}:${old.port} as master, which this topology did not start.`);
    await victim.kill();

    return waitFor(
      `a sentinel failover away from ${old.host}:${old.port}`,
      async () => {
        const running = this.sentinels.filter((s) => s.running);
        if (running.length === 0) notYet('no sentinel is running');
        const views = await Promise.all(running.map((sentinel) => this.masterAccordingTo(sentinel)));
        const ports = new Set(views.map((view) => view.port));
        if (ports.has(old.port)) notYet(`a sentinel still names ${old.port} as master (views: ${[...ports].join(', ')})`);
        if (ports.size > 1) notYet(`the sentinels disagree about the master (${[...ports].join(', ')})`);
        const next = views[0];
        const role = await roleOf(next);
        if (role !== 'master') notYet(`${next.port} is named master but reports role ${role}`);
        return next;
      },
      { timeoutMs: 20_000, logs: () => logsOf(this.all) },
    );
  }

  stop(): Promise<void> {
    // Sentinels first, so that they do not react to the data nodes going away.
    return stopAll(this.sentinels).then(() => stopAll([this.replica, this.master]));
  }
}

function sentinelConfig(port: number, dir: string, master: RedisEndpoint): string {
  return [
    `port ${port}`,
    `bind ${HOST}`,
    `dir ${JSON.stringify(dir)}`,
    'sentinel resolve-hostnames no',
    `sentinel monitor ${SENTINEL_MASTER_NAME} ${master.host} ${master.port} 2`,
    `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
    `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
    `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
    '',
  ].join('\n');
}

/**
 * Starts a master, a replica of it and three sentinels monitoring it as `mymaster` (quorum 2,
 * down after 1 s), and resolves once the replica is in sync and every sentinel knows the replica
 * and the two other sentinels, i.e. once a failover can happen.
 *
 * @example
 * const topology = await startSentinelTopology();
 * const client = new Redis({ sentinels: topology.sentinelEndpoints, name: topology.masterName });
 * await topology.killMasterAndWaitForFailover();
 * await client.set('k', 'v'); // reconnects to the promoted replica through the sentinels
 */
export function startSentinelTopology(): Promise<SentinelTopology> {
  return cleaningUpOnFailure(async (started) => {
    const master = await launch('sentinel-master', (port, dir) => ({ args: serverArgs(port, dir) }));
    started.push(master);
    const replica = await launch('sentinel-replica', (port, dir) => ({
      args: serverArgs(port, dir, ['--replicaof', master.host, String(master.port)]),
    }));
    started.push(replica);
    await waitFor(
      `the replica ${replica.port} to sync with master ${master.port}`,
      async () => {
        const info = parseInfo(await withClient(replica, (client) => client.info('replication')));
        if (info.master_link_status !== 'up') notYet(`master_link_status:${info.master_link_status}`);
        return true;
      },
      { timeoutMs: 10_000, logs: () => logsOf(started) },
    );

    const sentinels = await Promise.all(
      [1, 2, 3].map((n) =>
        launch(`sentinel-${n}`, (port, dir) => ({
          args: [join(dir, 'sentinel.conf'), '--sentinel'],
          files: { 'sentinel.conf': sentinelConfig(port, dir, master) },
        })),
      ),
    );
    started.push(...sentinels);

    await waitFor(
      'every sentinel to know the replica and the two other sentinels',
      async () => {
        for (const sentinel of sentinels) {
          await withClient(sentinel, async (client) => {
            const replicas = ((await client.call('SENTINEL', 'replicas', SENTINEL_MASTER_NAME)) as unknown[]).map(pairsToRecord);
            const known = replicas.find((r) => Number(r.port) === replica.port);
            if (!known) notYet(`sentinel ${sentinel.port} does not know the replica yet`);
            if (known['master-link-status'] !== 'ok' || /s_down|disconnected/.test(known.flags ?? '')) {
              notYet(`sentinel ${sentinel.port} sees the replica as ${known.flags}, link ${known['master-link-status']}`);
            }
            const peers = (await client.call('SENTINEL', 'sentinels', SENTINEL_MASTER_NAME)) as unknown[];
            if (peers.length < sentinels.length - 1) {
              notYet(`sentinel ${sentinel.port} knows ${peers.length} of ${sentinels.length - 1} other sentinels`);
            }
          });
        }
        return true;
      },
      { timeoutMs: 15_000, logs: () => logsOf(started) },
    );

    return new SentinelTopologyImpl(master, replica, sentinels);
  });
}

// ---------------------------------------------------------------------------------------------
// Cluster

interface ClusterNodeView {
  id: string;
  host: string;
  port: number;
  flags: string[];
  masterId: string | undefined;
  link: string;
  slots: Array<[number, number]>;
}

/** Parses CLUSTER NODES (`id ip:port@cport[,hostname] flags master ping pong epoch link slot…`). */
function parseClusterNodes(text: unknown): ClusterNodeView[] {
  return String(text)
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, address, flags, master, , , , link, ...slots] = line.trim().split(' ');
      const hostPort = address.split(/[@,]/)[0];
      const colon = hostPort.lastIndexOf(':');
      return {
        id,
        host: hostPort.slice(0, colon),
        port: Number(hostPort.slice(colon + 1)),
        flags: flags.split(','),
        masterId: master === '-' ? undefined : master,
        link,
        slots: slots
          .filter((slot) => !slot.startsWith('['))
          .map((slot): [number, number] => {
            const [from, to = from] = slot.split('-');
            return [Number(from), Number(to)];
          }),
      };
    });
}

function isFailed(node: ClusterNodeView): boolean {
  return node.flags.some((flag) => flag === 'fail' || flag === 'noaddr' || flag === 'handshake');
}

function isLiveMaster(node: ClusterNodeView): boolean {
  return node.flags.includes('master') && !isFailed(node) && node.slots.length > 0;
}

function owns(node: ClusterNodeView, slot: number): boolean {
  return node.slots.some(([from, to]) => slot >= from && slot <= to);
}

class ClusterTopologyImpl implements ClusterTopology {
  constructor(readonly nodes: ManagedRedisServer[]) {}

  get startupNodes(): RedisEndpoint[] {
    return this.nodes.map(({ host, port }) => ({ host, port }));
  }

  private async view(): Promise<ClusterNodeView[]> {
    const reasons: string[] = [];
    for (const node of this.nodes.filter((n) => n.running)) {
      try {
        return parseClusterNodes(await withClient(node, (client) => client.call('CLUSTER', 'NODES')));
      } catch (error) {
        reasons.push(`${node.port}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    throw new Error(`redis-topology: no cluster node answered CLUSTER NODES (${reasons.join('; ') || 'none running'}).`);
  }

  async masters(): Promise<RedisEndpoint[]> {
    return (await this.view()).filter(isLiveMaster).map(({ host, port }) => ({ host, port }));
  }

  async killMasterOfKeyAndWaitForFailover(key: string): Promise<RedisEndpoint> {
    const survivor = this.nodes.find((n) => n.running);
    if (!survivor) throw new Error('redis-topology: no cluster node is running.');
    const slot = Number(await withClient(survivor, (client) => client.call('CLUSTER', 'KEYSLOT', key)));
    const owner = (await this.view()).find((node) => isLiveMaster(node) && owns(node, slot));
    if (!owner) throw new Error(`redis-topology: no live master serves slot ${slot} (key "${key}").`);
    const victim = this.nodes.find((node) => node.port === owner.port);
    if (!victim) throw new Error(`redis-topology: slot ${slot} is served by ${owner.host}:${owner.port}, which this topology did not start.`);
    await victim.kill();

    return waitFor(
      `a replica to take over slot ${slot} from ${owner.host}:${owner.port}`,
      async () => {
        let agreed: RedisEndpoint | undefined;
        for (const node of this.nodes.filter((n) => n.running)) {
          const [info, nodes] = await withClient(
            node,
            async (client) => [parseInfo(await client.call('CLUSTER', 'INFO')), parseClusterNodes(await client.call('CLUSTER', 'NODES'))] as const,
          );
          if (info.cluster_state !== 'ok') notYet(`node ${node.port} says cluster_state:${info.cluster_state}`);
          const next = nodes.find((n) => isLiveMaster(n) && owns(n, slot));
          if (!next || next.port === owner.port) notYet(`node ${node.port} still sees slot ${slot} on ${next ? next.port : 'nobody'}`);
          if (agreed && agreed.port !== next.port) notYet(`nodes disagree about slot ${slot} (${agreed.port} vs ${next.port})`);
          agreed = { host: next.host, port: next.port };
        }
        if (!agreed) notYet('no cluster node is running');
        const role = await roleOf(agreed);
        if (role !== 'master') notYet(`${agreed.port} owns slot ${slot} but reports role ${role}`);
        return agreed;
      },
      { timeoutMs: 30_000, logs: () => logsOf(this.nodes, 15) },
    );
  }

  stop(): Promise<void> {
    return stopAll(this.nodes);
  }
}

function runRedisCli(args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      // redis-cli colours its output even into a pipe.
      // oxlint-disable-next-line no-control-regex -- the escape character is what is removed
      const output = `${stdout}${stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
      writeFile(logFile, output)
        .catch(() => undefined)
        .then(() => {
          if (error) {
            reject(new Error(`redis-topology: ${REDIS_CLI} ${args.join(' ')} failed: ${error.message}\n${output.split('\n').slice(-20).join('\n')}`));
          } else {
            resolve();
          }
        });
    });
  });
}

/**
 * Starts 6 cluster nodes, joins them with `redis-cli --cluster create … --cluster-replicas 1`
 * (3 masters, each with one replica) and resolves once every node says cluster_state:ok, knows
 * all 6 nodes, and every replica's link to its master is up.
 *
 * @example
 * const topology = await startClusterTopology();
 * const cluster = new Cluster(topology.startupNodes);
 * await cluster.set('{user:1}:a', '1');
 * await topology.killMasterOfKeyAndWaitForFailover('{user:1}:a');
 */
export function startClusterTopology(): Promise<ClusterTopology> {
  return cleaningUpOnFailure(async (started) => {
    const nodes = await Promise.all(
      Array.from({ length: CLUSTER_SIZE }, (_, i) =>
        launch(`cluster-node-${i + 1}`, async (port, dir) => ({
          args: serverArgs(port, dir, [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '1000',
            '--cluster-replica-validity-factor',
            '0',
            // The default bus port, port + 10000, was never checked to be free (nor to be < 65536).
            '--cluster-port',
            String(await freePort()),
          ]),
        })),
      ),
    );
    started.push(...nodes);

    await runRedisCli(
      ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      join(nodes[0].dir, 'cluster-create.log'),
    );

    await waitFor(
      'the cluster to settle (cluster_state:ok everywhere, every master with a synced replica)',
      async () => {
        let view: ClusterNodeView[] = [];
        for (const node of nodes) {
          const [info, replication, nodesText] = await withClient(
            node,
            async (client) =>
              [
                parseInfo(await client.call('CLUSTER', 'INFO')),
                parseInfo(await client.info('replication')),
                await client.call('CLUSTER', 'NODES'),
              ] as const,
          );
          if (info.cluster_state !== 'ok') notYet(`node ${node.port} says cluster_state:${info.cluster_state}`);
          if (Number(info.cluster_known_nodes) !== CLUSTER_SIZE) notYet(`node ${node.port} knows ${info.cluster_known_nodes} nodes`);
          if (replication.role === 'slave' && replication.master_link_status !== 'up') {
            notYet(`replica ${node.port} has master_link_status:${replication.master_link_status}`);
          }
          view = parseClusterNodes(nodesText);
        }
        const masters = view.filter(isLiveMaster);
        if (masters.length !== CLUSTER_SIZE / 2) notYet(`${masters.length} masters own slots`);
        for (const master of masters) {
          const replica = view.find((n) => n.masterId === master.id && !isFailed(n) && n.link === 'connected');
          if (!replica) notYet(`master ${master.port} has no connected replica`);
        }
        return true;
      },
      { timeoutMs: 20_000, logs: () => logsOf(started, 15) },
    );

    return new ClusterTopologyImpl(nodes);
  });
}
