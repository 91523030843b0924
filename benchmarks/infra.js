// Everything the benchmark starts and must stop again: temp dirs, a throwaway redis-server, a
// throwaway database on the local PostgreSQL, and the NestJS server children.
//
// Every resource registers an undo step in `cleanup`; run.js calls `cleanup.run()` in a finally
// block and on SIGINT/SIGTERM. A detached watchdog process also gets the pids, dirs and database
// name, and undoes them if this process dies without running its finally (SIGKILL, OOM).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Redis } from 'ioredis';

export const HOST = '127.0.0.1';
const SHARED_REDIS_PORT = 6379;

export const log = (...parts) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${parts.join(' ')}\n`);

// ---------------------------------------------------------------------------------------------
// Cleanup registry and watchdog

const WATCHDOG = `
const { execFileSync } = require('child_process');
const fs = require('fs');
const pids = new Set(), dirs = new Set(), dbs = new Map();
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let nl = pending.indexOf('\\n'); nl >= 0; nl = pending.indexOf('\\n')) {
    const line = pending.slice(0, nl); pending = pending.slice(nl + 1);
    const [op, kind, ...rest] = line.split(' '); const value = rest.join(' ');
    const set = kind === 'pid' ? pids : kind === 'dir' ? dirs : null;
    if (kind === 'db') { if (op === '+') { const [name, url] = value.split(' '); dbs.set(name, url); } else dbs.delete(value); }
    else if (set) op === '+' ? set.add(value) : set.delete(value);
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch {} }
  for (const dir of dirs) { try { fs.rmSync(dir, { recursive: true, force: true }); } catch {} }
  for (const [name, url] of dbs) {
    try { execFileSync('psql', [url, '-c', 'DROP DATABASE IF EXISTS "' + name + '" WITH (FORCE)'], { stdio: 'ignore', timeout: 10000 }); } catch {}
  }
  process.exit(0);
});
`;

export class Cleanup {
  #steps = [];
  #watchdog;
  #ran = false;

  constructor() {
    this.#watchdog = spawn(process.execPath, ['-e', WATCHDOG], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    this.#watchdog.unref();
    this.#watchdog.stdin.on('error', () => {});
  }

  /** Tells the watchdog about a resource: tell('+', 'pid', 123), tell('-', 'dir', '/tmp/x'). */
  tell(op, kind, value) {
    if (!this.#watchdog.stdin.destroyed) this.#watchdog.stdin.write(`${op} ${kind} ${value}\n`);
  }

  /** Registers an undo step; steps run last-registered first. */
  add(name, step) {
    this.#steps.push({ name, step });
  }

  async run() {
    if (this.#ran) return;
    this.#ran = true;
    for (const { name, step } of this.#steps.reverse()) {
      try {
        await step();
      } catch (error) {
        log(`cleanup: ${name} failed: ${error?.message ?? error}`);
      }
    }
    // Everything is undone: the watchdog finds nothing left when its stdin closes.
    this.#watchdog.stdin.end();
  }
}

// ---------------------------------------------------------------------------------------------
// CPU pinning

/** The cores a process may run on, from /proc/<pid>/status (`Cpus_allowed_list`, e.g. "0-3,6"). */
export function affinityOf(pid) {
  try {
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
    return list.split(',').flatMap((part) => {
      const [from, to = from] = part.split('-').map(Number);
      return Number.isInteger(from) ? Array.from({ length: to - from + 1 }, (_, i) => from + i) : [];
    });
  } catch {
    return [];
  }
}

/**
 * Which cores to pin to, or why not. Unpinned, the scheduler moves the server, autocannon and
 * redis-server between the cores from one moment to the next, so a round measures where they
 * happened to land as much as the server; pinned, the server under test has a core to itself and
 * everything else the bench starts shares the other. `{ server, others }` or `{ off: reason }`.
 */
export function pinningPlan(wanted) {
  if (!wanted) return { off: 'BENCH_PIN=0' };
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    return { off: 'taskset (util-linux) not found' };
  }
  const cores = affinityOf(process.pid);
  if (cores.length < 2) return { off: `only ${cores.length || 'an unknown number of'} core(s) available` };
  return { server: cores[0], others: cores[1] };
}

/**
 * Moves a running process and all its threads (`-a`: Node's V8 and libuv threads exist from its
 * start, and `taskset -p` alone would move only the main thread) to one core.
 */
export function pinProcess(pid, core) {
  execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
}

/** `[command, args]` to spawn, started on `core` through taskset when a core is given. */
const onCore = (core, command, args) => (core === undefined ? [command, args] : ['taskset', ['-c', String(core), command, ...args]]);

// ---------------------------------------------------------------------------------------------
// Temp dirs and ports

export function tempDir(cleanup, label) {
  const dir = mkdtempSync(join(tmpdir(), `nss-bench-${label}-`));
  cleanup.tell('+', 'dir', dir);
  cleanup.add(`rm ${dir}`, () => {
    rmSync(dir, { recursive: true, force: true });
    cleanup.tell('-', 'dir', dir);
  });
  return dir;
}

/** A port nobody listens on right now (never 6379, the shared Redis). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(0));
      server.listen({ host: HOST, port: 0, exclusive: true }, () => {
        const bound = server.address().port;
        server.close(() => resolve(bound));
      });
    });
    if (port && port !== SHARED_REDIS_PORT) return port;
  }
}

// ---------------------------------------------------------------------------------------------
// Throwaway redis-server

/**
 * Starts a redis-server on a free port in its own temp dir (on `core` if given); resolves once it
 * answers PING. Stopped by `cleanup`, or earlier by the `stop()` it returns.
 */
export async function startRedis(cleanup, { core } = {}) {
  const dir = tempDir(cleanup, 'redis');
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const child = spawn(
    ...onCore(core, 'redis-server', ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', logFile]),
    { cwd: dir, stdio: 'ignore' },
  );
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', (error) => log(`redis-server: ${error.message}`));
  cleanup.tell('+', 'pid', child.pid);
  const stop = () => stopProcess(child, 'redis-server').then(() => cleanup.tell('-', 'pid', child.pid));
  cleanup.add(`stop redis-server :${port}`, stop);

  const url = `redis://${HOST}:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`redis-server exited at start-up: ${tail(logFile)}`);
    const probe = new Redis(port, HOST, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING: ${tail(logFile)}`);
      await sleep(50);
    }
  }
  // The benchmark's own admin connection: INFO, MEMORY USAGE, MONITOR. Never the shared Redis.
  const admin = new Redis(port, HOST, { maxRetriesPerRequest: 1 });
  cleanup.add('close redis admin connection', () => admin.disconnect());
  // `stop` for a pass that is done with its redis-server before the run ends (the memory it holds).
  const stopAll = () => {
    admin.disconnect();
    return stop();
  };
  return { port, url, admin, dir, pid: child.pid, stop: stopAll };
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// Throwaway PostgreSQL database

/**
 * Creates `nss_bench_<hex>` on the local server (as the given admin URL's user) and returns its
 * connection string; dropped in cleanup (WITH (FORCE), after the servers are gone).
 */
export async function createDatabase(cleanup, adminUrl) {
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  await admin.connect();
  const name = `nss_bench_${randomBytes(6).toString('hex')}`;
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  cleanup.tell('+', 'db', `${name} ${adminUrl}`);
  cleanup.add(`drop database ${name}`, async () => {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await client.end();
    }
    cleanup.tell('-', 'db', name);
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

// ---------------------------------------------------------------------------------------------
// Server children

const SERVER_SCRIPT = new URL('./server.js', import.meta.url);

/**
 * Starts one NestJS server (benchmarks/server.js) in its own process, on `core` if given; resolves
 * with its port once it listens. `spec` is passed as JSON in BENCH_SERVER_SPEC.
 */
export async function startServer(cleanup, name, spec, { core } = {}) {
  // taskset execs node in place: child.pid is the server's pid, and the IPC channel is inherited.
  const child = spawn(...onCore(core, process.execPath, [SERVER_SCRIPT.pathname]), {
    env: { ...process.env, BENCH_SERVER_SPEC: JSON.stringify(spec), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const server = { name, child, port: 0, exited: false, stopping: false };
  server.stop = async () => {
    server.stopping = true;
    await stopProcess(child, name);
    cleanup.tell('-', 'pid', child.pid);
  };
  cleanup.tell('+', 'pid', child.pid);
  cleanup.add(`stop server ${name}`, server.stop);
  child.on('exit', (code, signal) => {
    server.exited = true;
    if (!server.stopping) log(`server ${name} exited unexpectedly (code ${code}, signal ${signal})`);
  });
  server.port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server ${name} did not start within 20 s`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${name} exited during start-up (code ${code})`));
    });
    child.on('message', (message) => {
      if (message?.type === 'ready') {
        clearTimeout(timer);
        resolve(message.port);
      } else if (message?.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`server ${name} failed to start: ${message.error}`));
      }
    });
  });
  return server;
}

/**
 * CPU time (user + system, in seconds) a process has used so far, all its threads, from
 * /proc/<pid>/stat; NaN where there is no /proc. Its clock ticks are USER_HZ, 1/100 s on Linux.
 */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command name, which may hold spaces: field 3 (state) onwards; utime is field 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** SIGTERM, SIGKILL after 3 s; resolves once the process is gone. */
export async function stopProcess(child, name) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  try {
    child.kill('SIGTERM');
  } catch {
    return;
  }
  const killed = await Promise.race([gone.then(() => true), sleep(3000).then(() => false)]);
  if (!killed) {
    log(`${name} ignored SIGTERM; killing it`);
    child.kill('SIGKILL');
    await gone;
  }
}
