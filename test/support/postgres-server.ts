/**
 * Throwaway PostgreSQL for tests: a private cluster (its own temp directory, a free port on
 * 127.0.0.1, trust auth, no fsync) that a test can stop, restart and crash, or, when DATABASE_URL
 * is set, a fresh database on that server. initdb runs once per process; each cluster starts as a
 * copy of that template.
 *
 * PostgreSQL refuses to run as root; when the tests do (containers, CI), `initdb`, `pg_ctl` and the
 * server run as the `postgres` system user through `runuser`, in directories chowned to it.
 *
 * The cluster is started with `pg_ctl start`, so the postmaster is a daemon in a session of its
 * own: it does not share the test's stdio and a Ctrl-C in the terminal does not reach it. Hence
 * nothing outlives the test run by accident: `dispose()` ends a server, an 'exit' handler on the
 * real process stops (`pg_ctl stop -m immediate`) what a forgotten `afterAll` left behind, and a
 * detached watchdog does the same if the test process itself dies without running exit handlers
 * (SIGKILL, a jest worker force-exited). The machine's own PostgreSQL (port 5432) is never started,
 * stopped or connected to, unless DATABASE_URL points to it.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg, { type Client } from 'pg';
import { freePort } from './ports.js';
import { hostProcess, startWatchdog } from './host-process.js';

const HOST = '127.0.0.1';
const SHARED_POSTGRES_PORT = 5432;
/** The superuser initdb creates (`-U`), and the system user the server runs as under root. */
const SUPERUSER = 'postgres';
const SYSTEM_USER = 'postgres';
/** The maintenance database every cluster has, where the run's database is created. */
const MAINTENANCE_DATABASE = 'postgres';
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;
/** Longest unix socket path (sun_path is 108 bytes on Linux, 104 on macOS), minus `/.s.PGSQL.NNNNN`. */
const MAX_SOCKET_DIR_LENGTH = 103 - '/.s.PGSQL.65535'.length;
const INSTALL_HINT =
  'Install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`), ' +
  'or set DATABASE_URL to a server the tests may create databases on.';

/**
 * A PostgreSQL server for tests, as returned by {@link startPostgresServer} (a cluster this
 * harness owns) or {@link postgresForTests} (that, or the server DATABASE_URL points to).
 */
export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /**
   * A connection string to `database` (default: this server's own {@link database}). For an owned
   * server: `postgresql://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable`.
   */
  url(database?: string): string;
  /** A database created for this server (`nss_test_<hex>`), empty at start. */
  readonly database: string;
  /** True when this harness started the cluster, i.e. when stop/restart/kill are available. */
  readonly owned: boolean;
  /**
   * Fast shutdown (SIGINT: open transactions are rolled back, clients disconnected); resolves once
   * the postmaster has exited, so the port refuses connections. No-op when not running.
   */
  stop(): Promise<void>;
  /**
   * Starts the server again on the same port and data directory (stopping it first if it is
   * running) and resolves once it accepts connections. After `kill()`, this is crash recovery.
   */
  restart(): Promise<void>;
  /**
   * A crash: SIGKILLs the postmaster and every process it forked (so clients see their
   * connections reset at once, and nothing of the old server blocks a restart), and resolves once
   * they are gone. Committed data survives; `restart()` replays the WAL. No-op when not running.
   */
  kill(): Promise<void>;
  /**
   * Owned: stops the server and deletes its directory. DATABASE_URL: drops the database created
   * for the run. Idempotent.
   */
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Finding and running the PostgreSQL binaries

let cachedBinDir: string | undefined;

function hasServerBinaries(dir: string): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((tool) => existsSync(join(dir, tool)));
}

/** Major version from `/usr/lib/postgresql/<version>/bin`, for picking the newest. */
function versionOf(name: string): number {
  const number = Number.parseFloat(name);
  return Number.isFinite(number) ? number : -1;
}

/**
 * The directory holding initdb, pg_ctl and postgres: `pg_config --bindir` when that has them
 * (pg_config may come from a client-only package), else the newest `/usr/lib/postgresql/N/bin`
 * (Debian and Ubuntu keep the server binaries off the PATH), else the PATH.
 */
function binDir(): string {
  if (cachedBinDir) return cachedBinDir;
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // No pg_config on the PATH.
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => versionOf(b) - versionOf(a));
    candidates.push(...versions.map((version) => join('/usr/lib/postgresql', version, 'bin')));
  } catch {
    // Not a Debian-style layout.
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  const found = candidates.find((dir) => dir !== '' && hasServerBinaries(dir));
  if (!found) {
    throw new Error(
      'postgres-server: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found in `pg_config --bindir`, ' +
        `/usr/lib/postgresql/*/bin or the PATH. ${INSTALL_HINT}`,
    );
  }
  cachedBinDir = found;
  return found;
}

interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

let cachedRunAs: SystemUser | null | undefined;

/**
 * The user to run PostgreSQL as: undefined when not root (run it as ourselves), else the
 * `postgres` system user, since initdb and postgres refuse to run as root.
 */
function runAs(): SystemUser | undefined {
  if (cachedRunAs !== undefined) return cachedRunAs ?? undefined;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    cachedRunAs = null;
    return undefined;
  }
  const user = systemUser(SYSTEM_USER);
  if (!user) {
    throw new Error(
      `postgres-server: the tests run as root, PostgreSQL refuses to, and there is no "${SYSTEM_USER}" ` +
        'system user to run it as. The postgresql package creates one; else `useradd --system postgres`, ' +
        'or run the tests as another user.',
    );
  }
  cachedRunAs = user;
  return user;
}

/** `name`'s uid and gid, from /etc/passwd (where system users live), else from `id`. */
function systemUser(name: string): SystemUser | undefined {
  try {
    const entry = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .find((fields) => fields[0] === name);
    if (entry) return { name, uid: Number(entry[2]), gid: Number(entry[3]) };
  } catch {
    // No /etc/passwd: ask id.
  }
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { name, uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

/** runuser by absolute path: root's PATH in a container does not always include the sbin directories. */
const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((path) => existsSync(path)) ?? 'runuser';

/** `[file, args]` that run `file` as the user the server runs as: through `runuser` when we are root. */
function asServerUser(file: string, args: readonly string[]): [string, string[]] {
  const user = runAs();
  return user ? [RUNUSER, ['-u', user.name, '--', file, ...args]] : [file, [...args]];
}

/** `[file, args]` that run a PostgreSQL tool (initdb, pg_ctl) as the server's user. */
function toolCommand(tool: string, args: readonly string[]): [string, string[]] {
  return asServerUser(join(binDir(), tool), args);
}

/**
 * The environment for PostgreSQL tools, without the PG* variables (PGDATA, PGPORT, PGOPTIONS…)
 * that could point them at another cluster or change the server's settings.
 */
function toolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  return env;
}

class ToolError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

function runTool(tool: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  return run(toolCommand(tool, args), `${tool} ${args.join(' ')}`, cwd, timeoutMs);
}

/** Runs `[file, argv]`, described as `what` in errors; resolves with its stdout and stderr. */
function run([file, argv]: [string, string[]], what: string, cwd: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd, env: toolEnv(), timeout: timeoutMs }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      if (!error) return resolve(output);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        const hint = file === RUNUSER ? 'runuser (util-linux) runs PostgreSQL as the postgres user when the tests run as root.' : INSTALL_HINT;
        return reject(new ToolError(`postgres-server: could not run ${file} (not found). ${hint}`, output));
      }
      reject(new ToolError(`postgres-server: ${what} failed: ${error.message.split('\n')[0]}\n${output}`, output));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Processes

const hasProcFs = existsSync('/proc/self/stat');

/** `/proc/PID/stat` after the command name: [state, ppid], or undefined if there is no such process. */
function procStat(pid: number): [string, number] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [state, Number(ppid)];
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` runs. A zombie does not count: the postmaster is not our child, and a container's
 * init may never reap it.
 */
function isAlive(pid: number): boolean {
  if (hasProcFs) {
    const stat = procStat(pid);
    return stat !== undefined && stat[0] !== 'Z' && stat[0] !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The processes `pid` forked (Linux; elsewhere none are found). */
function childrenOf(pid: number): number[] {
  if (!hasProcFs) return [];
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat && stat[1] === pid) children.push(Number(entry));
  }
  return children;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Resolves true once none of `pids` runs, false after `timeoutMs`. */
async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) return false;
    await sleep(delay);
    delay = Math.min(100, delay * 2);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Orphan protection

interface TrackedCluster {
  pid: number;
  dataDir: string;
  /** `pg_ctl stop -m immediate` for this cluster, as `[file, args]`. */
  stopCommand: [string, string[]];
}

interface Registry {
  /** Running owned clusters, by data directory. */
  clusters: Map<string, TrackedCluster>;
  dirs: Set<string>;
  /** Sends a line to this process's watchdog. */
  tellWatchdog: (line: string) => void;
  /** The data directory every cluster of this process is copied from, once initdb made it. */
  template: Promise<string> | undefined;
}

/**
 * The watchdog reads "+pg PID DATADIR", "-pg DATADIR", "+dir P", "-dir P" lines on stdin; when
 * stdin closes (the test process is gone, however it died) it asks each listed postmaster for an
 * immediate shutdown (SIGQUIT, which also ends its children), SIGKILLs it after 3 s, then deletes
 * the directories. A pid is only signalled while its command line still names its data directory,
 * so a recycled pid is left alone.
 */
const WATCHDOG_SCRIPT = `
const fs = require('fs');
const clusters = new Map(), dirs = new Set();
let pending = '', done = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let nl = pending.indexOf('\\n'); nl >= 0; nl = pending.indexOf('\\n')) {
    const line = pending.slice(0, nl); pending = pending.slice(nl + 1);
    const space = line.indexOf(' '), op = line.slice(0, space), arg = line.slice(space + 1);
    if (op === '+pg') { const s = arg.indexOf(' '); clusters.set(arg.slice(s + 1), Number(arg.slice(0, s))); }
    else if (op === '-pg') clusters.delete(arg);
    else if (op === '+dir') dirs.add(arg); else if (op === '-dir') dirs.delete(arg);
  }
});
const hasProc = fs.existsSync('/proc/self');
const ours = (pid, dataDir) => {
  if (!hasProc) { try { process.kill(pid, 0); return true; } catch { return false; } }
  try { return fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').includes(dataDir); } catch { return false; }
};
const cleanUp = () => {
  if (done) return; done = true;
  const live = [...clusters].filter(([dataDir, pid]) => ours(pid, dataDir));
  for (const [, pid] of live) { try { process.kill(pid, 'SIGQUIT'); } catch {} }
  const deadline = Date.now() + 3000;
  const poll = () => {
    const left = live.filter(([dataDir, pid]) => ours(pid, dataDir));
    if (left.length > 0 && Date.now() < deadline) return setTimeout(poll, 50);
    for (const [, pid] of left) { try { process.kill(pid, 'SIGKILL'); } catch {} }
    setTimeout(() => {
      for (const dir of dirs) { try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch {} }
      process.exit(0);
    }, left.length > 0 ? 300 : 0);
  };
  poll();
};
process.stdin.on('end', cleanUp); process.stdin.on('close', cleanUp); process.stdin.on('error', cleanUp);
`;

const REGISTRY_KEY = Symbol.for('nestjs-session-sync/test/postgres-server');

/** Synchronous: runs in an 'exit' handler, where nothing asynchronous happens any more. */
function stopLeftoversNow(registry: Registry): void {
  for (const cluster of registry.clusters.values()) {
    if (!isAlive(cluster.pid)) continue;
    const [file, args] = cluster.stopCommand;
    spawnSync(file, args, { stdio: 'ignore', env: toolEnv(), timeout: 10_000 });
    if (isAlive(cluster.pid)) {
      const children = childrenOf(cluster.pid);
      signal(cluster.pid, 'SIGKILL');
      for (const child of children) signal(child, 'SIGKILL');
    }
  }
  registry.clusters.clear();
  for (const dir of registry.dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  registry.dirs.clear();
}

/** One registry per OS process, shared by every test file jest runs in it. */
function registry(): Registry {
  const host = hostProcess() as NodeJS.Process & { [REGISTRY_KEY]?: Registry };
  const existing = host[REGISTRY_KEY];
  if (existing) return existing;

  const created: Registry = { clusters: new Map(), dirs: new Set(), tellWatchdog: startWatchdog(WATCHDOG_SCRIPT), template: undefined };
  host[REGISTRY_KEY] = created;
  host.on('exit', () => stopLeftoversNow(created));
  return created;
}

function tellWatchdog(line: string): void {
  registry().tellWatchdog(line);
}

function trackCluster(cluster: TrackedCluster): void {
  registry().clusters.set(cluster.dataDir, cluster);
  tellWatchdog(`+pg ${cluster.pid} ${cluster.dataDir}`);
}

function untrackCluster(dataDir: string): void {
  registry().clusters.delete(dataDir);
  tellWatchdog(`-pg ${dataDir}`);
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
// Talking to a server

/**
 * Runs `fn` with a short-lived client that gives up connecting after `connectTimeoutMs`, and ends
 * it whatever happened.
 */
async function withClient<T>(url: string, fn: (client: Client) => Promise<T>, connectTimeoutMs = 2_000): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  // A server that goes away under an idle client makes it emit 'error', fatal without a listener.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function freshDatabaseName(): string {
  return `nss_test_${randomBytes(6).toString('hex')}`;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// A cluster this harness owns

type State = 'stopped' | 'running' | 'disposed';

const ADDRESS_IN_USE = /Address already in use|could not create any TCP\/IP sockets/i;
/** Without /proc, kill() cannot find the children; a restart then waits for them to exit. */
const RETRY_RESTART = new RegExp(`${ADDRESS_IN_USE.source}|pre-existing shared memory block`, 'i');

class OwnedPostgresServer implements PostgresServer {
  readonly host = HOST;
  readonly owned = true;
  database = '';
  private state: State = 'stopped';
  private pid = 0;
  /** Operations run one at a time, so a stop() racing a restart() cannot interleave signals. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** The temp directory: holds `data/`, the log and the unix socket. */
    readonly dir: string,
    public port: number,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'postgres.log');
  }

  url(database = this.database): string {
    return `postgresql://${SUPERUSER}@${this.host}:${this.port}/${encodeURIComponent(database)}?sslmode=disable`;
  }

  logTail(lines = 30): string {
    try {
      return tail(readFileSync(this.logFile, 'utf8'), lines);
    } catch {
      return '(no log written)';
    }
  }

  private describe(): string {
    const state = this.state === 'running' ? `running, pid ${this.pid}` : this.state;
    return `--- PostgreSQL ${this.host}:${this.port} (${state}), last lines of ${this.logFile} ---\n${this.logTail()}`;
  }

  private serially<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.queue.then(operation, operation);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * A copy of this process's initdb'd template (`cp -a`, as the server's user: modes and owner
   * kept), then the harness's settings in `postgresql.conf`, so a restart reuses them.
   */
  async initialize(): Promise<void> {
    await giveToServerUser(this.dir);
    const template = await templateDataDir();
    await run(asServerUser('cp', ['-a', template, this.dataDir]), `copying ${template}`, this.dir, 60_000);
    await this.writeSettings();
  }

  /** Appended to `postgresql.conf` (the last setting wins); rewritten when the port changes. */
  async writeSettings(): Promise<void> {
    const file = join(this.dataDir, 'postgresql.conf');
    const marker = '# --- nestjs-session-sync test harness ---';
    const original = (await readFile(file, 'utf8')).split(marker)[0];
    const socketDir = this.dir.length <= MAX_SOCKET_DIR_LENGTH ? this.dir : '';
    const settings = [
      marker,
      `port = ${this.port}`,
      `listen_addresses = '${HOST}'`,
      // Empty (no unix socket) when the temp path is too long for one; the tests use TCP anyway.
      `unix_socket_directories = '${socketDir.replace(/'/g, "''")}'`,
      // Only an OS crash needs fsync and full-page writes; a killed server loses nothing without
      // them. synchronous_commit stays on: off, a commit acknowledged less than wal_writer_delay
      // before kill() would be lost, and outage tests would see data vanish.
      'fsync = off',
      'full_page_writes = off',
      '',
    ].join('\n');
    await writeFile(file, `${original}${settings}`);
    const user = runAs();
    if (user) await chown(file, user.uid, user.gid);
  }

  /** Starts the cluster and waits until the maintenance database answers. */
  private async start(): Promise<void> {
    if (this.state === 'disposed') throw new Error('postgres-server: this server was disposed; start another one.');
    if (this.state === 'running') return;
    const startedAt = Date.now();
    await this.removeStaleLockFiles();
    try {
      const waitSeconds = String(READY_TIMEOUT_MS / 1000);
      const args = ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', waitSeconds, '-s'];
      await runTool('pg_ctl', args, this.dir, READY_TIMEOUT_MS + 5_000);
    } catch (error) {
      await this.killStrayPostmaster();
      const output = error instanceof ToolError ? error.output : String(error);
      throw new ToolError(
        `postgres-server: could not start PostgreSQL on ${this.host}:${this.port}: ${output}\n${this.describe()}`,
        `${output}\n${this.logTail()}`,
      );
    }
    this.pid = await this.readPid();
    this.state = 'running';
    trackCluster({
      pid: this.pid,
      dataDir: this.dataDir,
      stopCommand: toolCommand('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'immediate', '-w', '-t', '5', '-s']),
    });
    await this.waitUntilReady(startedAt + READY_TIMEOUT_MS);
  }

  private async readPid(): Promise<number> {
    const pid = Number((await readFile(join(this.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new Error(`postgres-server: unreadable postmaster.pid in ${this.dataDir}.\n${this.describe()}`);
    }
    return pid;
  }

  /**
   * After a crash, postmaster.pid and the unix socket's lock file still name the dead postmaster.
   * PostgreSQL ignores a lock file whose pid is gone, but not while that pid is a zombie, which it
   * stays until init reaps it (a container's init may take seconds): the new postmaster would
   * refuse to start.
   */
  private async removeStaleLockFiles(): Promise<void> {
    const lockFiles = [join(this.dataDir, 'postmaster.pid'), join(this.dir, `.s.PGSQL.${this.port}.lock`)];
    for (const file of lockFiles) {
      const pid = await readFile(file, 'utf8').then(
        (text) => Number(text.split('\n')[0]),
        () => 0,
      );
      if (pid > 0 && !isAlive(pid)) await rm(file, { force: true });
    }
  }

  /** After a failed `pg_ctl start` (timeout), a postmaster may still be coming up: end it. */
  private async killStrayPostmaster(): Promise<void> {
    const pid = await this.readPid().catch(() => 0);
    if (pid > 0 && isAlive(pid)) {
      signal(pid, 'SIGQUIT');
      if (!(await waitForExit([pid], 5_000))) signal(pid, 'SIGKILL');
    }
  }

  private async waitUntilReady(deadline: number): Promise<void> {
    let delay = 10;
    let lastError = 'never tried';
    for (;;) {
      if (!isAlive(this.pid)) {
        this.markStopped();
        throw new Error(`postgres-server: PostgreSQL exited during start-up.\n${this.describe()}`);
      }
      try {
        await withClient(this.url(MAINTENANCE_DATABASE), (client) => client.query('SELECT 1'), 1_000);
        return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
      }
      if (Date.now() + delay > deadline) {
        await this.halt();
        throw new Error(
          `postgres-server: PostgreSQL on ${this.host}:${this.port} did not accept connections within ` +
            `${READY_TIMEOUT_MS / 1000} s (last error: ${lastError}).\n${this.describe()}`,
        );
      }
      await sleep(delay);
      delay = Math.min(200, delay * 2);
    }
  }

  private markStopped(): void {
    if (this.state !== 'running') return;
    this.state = 'stopped';
    untrackCluster(this.dataDir);
  }

  /**
   * Whether our postmaster still runs. It may have died on its own; then its pid, recycled, must
   * not be signalled, hence the check that the process is a postmaster of our data directory.
   */
  private postmasterRunning(): boolean {
    if (this.state !== 'running' || !isAlive(this.pid)) return false;
    try {
      return !hasProcFs || readFileSync(`/proc/${this.pid}/cmdline`, 'utf8').includes(this.dataDir);
    } catch {
      return false;
    }
  }

  /** Fast shutdown; immediate shutdown, then SIGKILL, if it takes too long. */
  private async halt(): Promise<void> {
    if (!this.postmasterRunning()) return this.markStopped();
    const pid = this.pid;
    signal(pid, 'SIGINT');
    if (!(await waitForExit([pid], STOP_TIMEOUT_MS))) {
      signal(pid, 'SIGQUIT');
      if (!(await waitForExit([pid], 5_000))) await this.crash();
    }
    this.markStopped();
  }

  private async crash(): Promise<void> {
    if (!this.postmasterRunning()) return;
    const pid = this.pid;
    // Stopped, the postmaster cannot fork a backend between the listing and the kill.
    signal(pid, 'SIGSTOP');
    const children = childrenOf(pid);
    signal(pid, 'SIGKILL');
    for (const child of children) signal(child, 'SIGKILL');
    if (!(await waitForExit([pid, ...children], 10_000))) {
      throw new Error(`postgres-server: PostgreSQL processes ${[pid, ...children].join(', ')} survived SIGKILL.`);
    }
  }

  stop(): Promise<void> {
    return this.serially(() => this.halt());
  }

  kill(): Promise<void> {
    return this.serially(async () => {
      await this.crash();
      this.markStopped();
    });
  }

  restart(): Promise<void> {
    return this.serially(async () => {
      await this.halt();
      // The port was ours a moment ago, but another process may have bound it since.
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.start();
        } catch (error) {
          const output = error instanceof ToolError ? error.output : '';
          if (attempt >= 20 || !RETRY_RESTART.test(output)) throw error;
          await sleep(250);
        }
      }
    });
  }

  /** First start: a port taken between `freePort()` and the bind is replaced by another one. */
  launch(): Promise<void> {
    return this.serially(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.start();
        } catch (error) {
          const output = error instanceof ToolError ? error.output : '';
          if (attempt >= 3 || !ADDRESS_IN_USE.test(output)) throw error;
          this.port = await ownPort();
          await this.writeSettings();
        }
      }
    });
  }

  async createDatabase(): Promise<void> {
    const name = freshDatabaseName();
    await withClient(this.url(MAINTENANCE_DATABASE), (client) => client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
    this.database = name;
  }

  dispose(): Promise<void> {
    return this.serially(async () => {
      if (this.state === 'disposed') return;
      await this.halt();
      this.state = 'disposed';
      await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
      untrackDir(this.dir);
    });
  }
}

/** Hands `dir` to the user the server runs as (when we are root), who needs it to be 0700 and its own. */
async function giveToServerUser(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  const user = runAs();
  if (user) await chown(dir, user.uid, user.gid);
}

/**
 * initdb (trust auth, superuser `postgres`, UTF8, C locale) runs once per process, into a temp
 * directory that lives until exit; clusters start as copies of it, which is faster than initdb
 * (about half the time on ext4, next to nothing on a copy-on-write file system).
 */
function templateDataDir(): Promise<string> {
  const shared = registry();
  if (!shared.template) {
    const making = initTemplate();
    shared.template = making;
    making.catch(() => {
      if (shared.template === making) shared.template = undefined;
    });
  }
  return shared.template;
}

async function initTemplate(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nss-pg-template-'));
  trackDir(dir);
  const dataDir = join(dir, 'data');
  try {
    await giveToServerUser(dir);
    await mkdir(dataDir);
    await giveToServerUser(dataDir);
    const output = await runTool('initdb', ['-D', dataDir, '-A', 'trust', '-U', SUPERUSER, '--no-sync', '-E', 'UTF8', '--no-locale'], dir);
    await writeFile(join(dir, 'initdb.log'), output);
    return dataDir;
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw error;
  }
}

/** A free port that is not the machine's own PostgreSQL's. */
async function ownPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port !== SHARED_POSTGRES_PORT) return port;
  }
}

/**
 * Starts a throwaway cluster in a fresh temp directory (a copy of what `initdb -A trust -U postgres
 * -E UTF8 --no-locale` made, once per process), with `pg_ctl start` on a free port of 127.0.0.1,
 * fsync off and the unix socket in that directory, and creates a fresh database in it. Resolves
 * once that database accepts connections; fails after 15 s with the tail of the server's log.
 *
 * @example
 * let postgres: PostgresServer;
 * beforeAll(async () => { postgres = await startPostgresServer(); });
 * afterAll(() => postgres.dispose());
 * it('survives a database restart', async () => {
 *   const pool = new Pool({ connectionString: postgres.url() });
 *   pool.on('error', () => undefined); // idle clients see the server go away
 *   try {
 *     await postgres.stop();
 *     await postgres.restart();
 *     expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
 *   } finally {
 *     await pool.end();
 *   }
 * });
 */
export async function startPostgresServer(): Promise<PostgresServer> {
  binDir();
  runAs();
  const dir = await mkdtemp(join(tmpdir(), 'nss-pg-'));
  trackDir(dir);
  const server = new OwnedPostgresServer(dir, await ownPort());
  try {
    await server.initialize();
    await server.launch();
    await server.createDatabase();
    return server;
  } catch (error) {
    await server.dispose().catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// DATABASE_URL

class ExternalPostgresServer implements PostgresServer {
  readonly owned = false;
  readonly host: string;
  readonly port: number;
  private dropped: Promise<void> | undefined;

  constructor(
    private readonly base: URL,
    readonly database: string,
  ) {
    this.host = base.hostname.replace(/^\[|\]$/g, '') || base.searchParams.get('host') || 'localhost';
    this.port = Number(base.port) || Number(base.searchParams.get('port')) || SHARED_POSTGRES_PORT;
  }

  url(database = this.database): string {
    const url = new URL(this.base.href);
    url.pathname = `/${encodeURIComponent(database)}`;
    return url.href;
  }

  private notOwned(operation: string): Promise<never> {
    return Promise.reject(
      new Error(
        `postgres-server: ${operation}() needs a server this harness started, but DATABASE_URL points to ` +
          `${this.host}:${this.port}, which it must not ${operation}. Outage tests need an owned server: ` +
          'check `server.owned` and start one with startPostgresServer().',
      ),
    );
  }

  stop(): Promise<void> {
    return this.notOwned('stop');
  }

  restart(): Promise<void> {
    return this.notOwned('restart');
  }

  kill(): Promise<void> {
    return this.notOwned('kill');
  }

  dispose(): Promise<void> {
    this.dropped ??= withClient(this.base.href, async (client) => {
      const name = pg.escapeIdentifier(this.database);
      try {
        // WITH (FORCE), PostgreSQL 13+: a pool the test forgot to end must not keep the database.
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch (error) {
        if ((error as { code?: string }).code !== '42601') throw error;
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
      }
    });
    return this.dropped;
  }
}

async function externalServer(databaseUrl: string): Promise<PostgresServer> {
  let base: URL;
  try {
    base = new URL(databaseUrl);
  } catch {
    base = new URL('invalid:');
  }
  if (base.protocol !== 'postgres:' && base.protocol !== 'postgresql:') {
    throw new Error(
      'postgres-server: DATABASE_URL must be a postgres:// or postgresql:// URL ' +
        '(e.g. postgresql://user:password@localhost:5432/postgres); unset it to let the tests start their own PostgreSQL.',
    );
  }
  const name = freshDatabaseName();
  try {
    await withClient(base.href, (client) => client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`), 5_000);
  } catch (error) {
    const where = `${base.hostname || 'localhost'}:${base.port || SHARED_POSTGRES_PORT}`;
    throw new Error(
      `postgres-server: could not create the test database on DATABASE_URL (${where}): ` +
        `${error instanceof Error ? error.message : String(error)}. ` +
        'Check that the server is up and the user may CREATE DATABASE, or unset DATABASE_URL to let the tests ' +
        'start their own PostgreSQL.',
    );
  }
  return new ExternalPostgresServer(base, name);
}

/**
 * The server tests should use: when DATABASE_URL is set, that server, with a fresh database
 * created for this run (`owned` is false: stop/restart/kill reject, outage tests start their own
 * with {@link startPostgresServer}); otherwise a throwaway cluster from `startPostgresServer()`.
 * Either way, `dispose()` cleans up what was created.
 *
 * @example
 * const postgres = await postgresForTests();
 * const store = await createSessionStore({ type: 'postgres', connectionString: postgres.url() });
 * const outage = postgres.owned ? postgres : await startPostgresServer();
 */
export function postgresForTests(): Promise<PostgresServer> {
  const databaseUrl = process.env.DATABASE_URL;
  return databaseUrl ? externalServer(databaseUrl) : startPostgresServer();
}
