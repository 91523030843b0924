// Side-by-side benchmark: nestjs-session-sync ("ours", from ../dist/lib) against express-session
// with connect-redis, connect-pg-simple and session-file-store ("anchors"), and a NestJS app with
// no session at all ("baseline"). Writes BENCHMARKS.md and prints the same tables.
//
// Usage: npm run bench   (= npm run build && node benchmarks/run.js; knobs: see config below)
//
// Structure of one run (progress on stderr):
//   0. CPU pinning (BENCH_PIN): this process, hence autocannon, on one core, and every server
//      under test on another, so the rounds do not depend on where the scheduler put them;
//   1. infrastructure: a throwaway redis-server, a fresh database on the local PostgreSQL, temp
//      dirs for the file stores (infra.js), each undone in a finally, on SIGINT/SIGTERM, and by a
//      watchdog process should this one be killed outright;
//   2. one child process per server (server.js, apps.js), BENCH_SESSIONS sign-ins each; the
//      "-encrypted" servers are their twins with `encryptionKeys` (one random key per run);
//   3. Redis pass: commands per request (login, read, change) and memory per session, one server
//      at a time on fresh sessions (redis-stats.js);
//   4. throughput: warm-up, then rounds × (servers × workloads) in a rotating order, autocannon
//      driving one server at a time (load.js);
//   5. lost-update demonstration on two extra server processes;
//   6. MemoryStore heap in child processes (heap.js), ours with and without encryption at rest;
//   7. growth (BENCH_GROWTH): reads and Redis memory of ours-redis and connect-redis as sessions
//      grow in fields and in number, on throwaway redis-servers of their own (growth.js);
//      then BENCHMARKS.md (report.js).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { affinityOf, Cleanup, cpuSeconds, createDatabase, log, pinningPlan, pinProcess, startRedis, startServer, tempDir } from './infra.js';
import { measureGrowth } from './growth.js';
import { drive, median, request, roundOrders, signIn, summarize, WORKLOADS } from './load.js';
import { countCommands, sessionMemory, usedMemory } from './redis-stats.js';
import { renderReport } from './report.js';

const started = Date.now();
/** The knobs: environment variable → [default, meaning] (BENCHMARKS.md lists them from here). */
export const KNOBS = {
  BENCH_DURATION: [3, 'seconds per measurement'],
  BENCH_ROUNDS: [4, 'interleaved rounds'],
  BENCH_WARMUP: [1, 'seconds of warm-up per server and workload'],
  BENCH_SESSIONS: [500, 'signed-in sessions per server'],
  BENCH_CONNECTIONS: [32, 'autocannon connections'],
  BENCH_COUNT_REQUESTS: [2000, 'requests per Redis command-counting pass'],
  BENCH_COUNT_SESSIONS: [1000, 'fresh sessions for the Redis counting and memory passes'],
  BENCH_HEAP_SESSIONS: [100_000, 'sessions in the MemoryStore heap measurement'],
  BENCH_LOST_REQUESTS: [100, 'concurrent requests per lost-update trial'],
  BENCH_LOST_TRIALS: [3, 'lost-update trials'],
  BENCH_GROWTH: [
    1,
    'the growth pass: ours-redis and connect-redis with sessions of 2, 20 and 200 fields and with 10k, 100k and 1M live sessions (about 4 min on a quiet machine, half of it writing the 1M sessions); 0: skip it',
  ],
  BENCH_GROWTH_MAX: [1_000_000, 'largest live-session count of the growth pass; larger counts are skipped'],
  BENCH_GROWTH_ROUNDS: [3, 'interleaved rounds of each growth read measurement'],
  BENCH_PIN: [
    1,
    'pin the server under test to one core and everything else the bench starts (autocannon, redis-server) to another with taskset; on when taskset and ≥ 2 cores are there; 0: off',
  ],
  BENCH_SERVERS: ['', 'comma-separated subset of server names (baseline always runs); empty: all'],
  BENCH_PG_URL: ['postgres://postgres@127.0.0.1:5432/postgres', 'PostgreSQL server (admin URL) the throwaway database is created on'],
};
const env = (name) => (process.env[name] === undefined || process.env[name] === '' ? KNOBS[name][0] : process.env[name]);
const config = {
  duration: Number(env('BENCH_DURATION')),
  rounds: Number(env('BENCH_ROUNDS')),
  warmup: Number(env('BENCH_WARMUP')),
  sessions: Number(env('BENCH_SESSIONS')),
  connections: Number(env('BENCH_CONNECTIONS')),
  countRequests: Number(env('BENCH_COUNT_REQUESTS')),
  countSessions: Number(env('BENCH_COUNT_SESSIONS')),
  heapSessions: Number(env('BENCH_HEAP_SESSIONS')),
  lostRequests: Number(env('BENCH_LOST_REQUESTS')),
  lostTrials: Number(env('BENCH_LOST_TRIALS')),
  growth: String(env('BENCH_GROWTH')) !== '0',
  growthMax: Number(env('BENCH_GROWTH_MAX')),
  growthRounds: Number(env('BENCH_GROWTH_ROUNDS')),
  pin: String(env('BENCH_PIN')) !== '0',
  pgAdminUrl: env('BENCH_PG_URL'),
  only: String(env('BENCH_SERVERS'))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
};

/**
 * The servers, in table order. `anchor`: the express-session store ours is compared with.
 * `encrypts`: the unencrypted server this one is a copy of, with `encryptionKeys` added, so the
 * cost of encryption at rest is a ratio of two servers measured in the same rounds. `twin`: a
 * second process of the same server, so the report can show how far two identical processes
 * land apart (the run's process-to-process noise).
 */
const SERVERS = [
  { name: 'baseline', kind: 'baseline', storeLabel: '— (no session)' },
  { name: 'noop-middleware', kind: 'noop-middleware', storeLabel: '— (one no-op app.use middleware)' },
  { name: 'ours-memory', kind: 'ours', storeLabel: 'memory', needs: [] },
  { name: 'ours-memory-twin', kind: 'ours', storeLabel: 'memory (a second process)', twin: 'ours-memory', needs: [] },
  { name: 'ours-memory-encrypted', kind: 'ours', storeLabel: 'memory, encrypted', encrypts: 'ours-memory', needs: [] },
  { name: 'connect-redis', kind: 'express-session', storeLabel: 'Redis', needs: ['redis'] },
  { name: 'ours-redis', kind: 'ours', storeLabel: 'Redis', anchor: 'connect-redis', needs: ['redis'] },
  { name: 'ours-redis-encrypted', kind: 'ours', storeLabel: 'Redis, encrypted', anchor: 'connect-redis', encrypts: 'ours-redis', needs: ['redis'] },
  { name: 'connect-pg-simple', kind: 'express-session', storeLabel: 'PostgreSQL', needs: ['postgres'] },
  { name: 'ours-postgres', kind: 'ours', storeLabel: 'PostgreSQL', anchor: 'connect-pg-simple', needs: ['postgres'] },
  { name: 'session-file-store', kind: 'express-session', storeLabel: 'files', needs: ['files'] },
  { name: 'ours-file', kind: 'ours', storeLabel: 'files', anchor: 'session-file-store', needs: ['files'] },
];

/** The encrypted servers' key: one per run, fresh random bytes as the option's docs generate it. */
const ENCRYPTION_KEY = randomBytes(32).toString('base64url');

/** What each server process is told to build (see server.js). */
function specOf(server, infra) {
  if (server.twin)
    return specOf(
      SERVERS.find((s) => s.name === server.twin),
      infra,
    );
  if (server.encrypts) {
    const plain = SERVERS.find((s) => s.name === server.encrypts);
    return { ...specOf(plain, infra), encryptionKeys: [ENCRYPTION_KEY] };
  }
  switch (server.name) {
    case 'baseline':
      return { kind: 'baseline' };
    case 'noop-middleware':
      return { kind: 'noop-middleware' };
    case 'ours-memory':
      return { kind: 'ours', store: { type: 'memory' } };
    case 'connect-redis':
      return { kind: 'express-session', name: server.name, store: 'redis', redisUrl: infra.redis.url };
    case 'ours-redis':
      return { kind: 'ours', store: { type: 'redis', url: infra.redis.url } };
    case 'connect-pg-simple':
      return { kind: 'express-session', name: server.name, store: 'postgres', pgUrl: infra.db.url };
    case 'ours-postgres':
      return { kind: 'ours', store: { type: 'postgres', connectionString: infra.db.url, createTable: true } };
    case 'session-file-store':
      return { kind: 'express-session', name: server.name, store: 'file', dir: `${infra.files}/session-file-store` };
    case 'ours-file':
      return { kind: 'ours', store: { type: 'file', directory: `${infra.files}/ours` } };
    default:
      throw new Error(server.name);
  }
}

// Pinned before anything is spawned: the watchdog, redis-server and heap.js children inherit the
// others' core from this process (redis-server is started through taskset all the same, so it
// is on that core whatever this process's own affinity turns out to be).
const pinning = pinningPlan(config.pin);
if (!pinning.off) {
  try {
    pinProcess(process.pid, pinning.others);
  } catch (error) {
    pinning.off = `taskset failed: ${error.message}`;
  }
}
log(
  pinning.off
    ? `not pinned: ${pinning.off}`
    : `pinned: servers on core ${pinning.server}, this process (autocannon) and the rest on core ${pinning.others}`,
);
/** Where a spawned process goes: `{ core }` for startServer/startRedis, empty when not pinned. */
const serverCore = pinning.off ? {} : { core: pinning.server };
const othersCore = pinning.off ? {} : { core: pinning.others };

const cleanup = new Cleanup();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every server, redis-server, database and temp dir`);
    await cleanup.run();
    process.exit(130);
  });
}

const loadBefore = os
  .loadavg()
  .map((n) => n.toFixed(2))
  .join(' / ');

async function main() {
  // ---- 1. infrastructure --------------------------------------------------------------------
  let selected = config.only.length ? SERVERS.filter((s) => s.name === 'baseline' || config.only.includes(s.name)) : SERVERS;
  const needs = new Set(selected.flatMap((s) => s.needs ?? []));
  const infra = {};
  const machineInfo = { redis: '—', postgres: '—' };
  if (needs.has('redis')) {
    infra.redis = await startRedis(cleanup, othersCore);
    machineInfo.redis = /redis_version:(\S+)/.exec(await infra.redis.admin.info('server'))?.[1];
    log(`redis-server ${machineInfo.redis} on port ${infra.redis.port}, cores ${affinityOf(infra.redis.pid).join(',') || '?'}`);
  }
  if (needs.has('postgres')) {
    try {
      infra.db = await createDatabase(cleanup, config.pgAdminUrl);
      machineInfo.postgres = await postgresVersion(infra.db.url);
      log(`database ${infra.db.name} created (PostgreSQL ${machineInfo.postgres})`);
    } catch (error) {
      log(`PostgreSQL at ${config.pgAdminUrl} not usable (${error.message}): skipping the PostgreSQL servers`);
      selected = selected.filter((s) => !s.needs?.includes('postgres'));
    }
  }
  if (needs.has('files')) infra.files = tempDir(cleanup, 'files');

  const cells = selected.length * Object.keys(WORKLOADS).length;
  const estimate = cells * (config.rounds * (config.duration + 0.3) + config.warmup + 0.3) + 60 + (config.growth ? 240 : 0);
  log(
    `${selected.length} servers × ${Object.keys(WORKLOADS).length} workloads × ${config.rounds} rounds × ${config.duration} s; about ${Math.round(estimate / 60)} min`,
  );

  // ---- 2. servers and their sessions --------------------------------------------------------
  const servers = [];
  for (const server of selected) {
    const running = Object.assign(await startServer(cleanup, server.name, specOf(server, infra), serverCore), server);
    servers.push(running);
    // Read back from /proc rather than trusted: the report says where the server actually ran.
    log(`started ${server.name} on port ${running.port}, pid ${running.child.pid}, cores ${affinityOf(running.child.pid).join(',') || '?'}`);
  }
  const cookies = {};
  for (const server of servers) {
    cookies[server.name] = await signIn(server, config.sessions, 0);
    log(`${server.name}: ${config.sessions} sessions signed in`);
  }

  // ---- 3. Redis: commands per request, memory per session -----------------------------------
  let redis;
  // Every Redis-backed server gets the pass (the report compares ours-redis with connect-redis,
  // and ours-redis-encrypted with ours-redis, whichever of them ran).
  const redisServers = servers.filter((s) => s.needs?.includes('redis'));
  if (redisServers.length > 0) {
    redis = { countRequests: config.countRequests, countSessions: config.countSessions, servers: {} };
    const { admin } = infra.redis;
    for (const server of redisServers) {
      const kind = server.kind === 'ours' ? 'ours' : 'anchor';
      const stats = {};
      const before = await usedMemory(admin);
      let fresh;
      stats.login = await countCommands(admin, async () => {
        fresh = await signIn(server, config.countSessions, 100_000);
        return config.countSessions;
      });
      stats.usedMemoryPerSession = ((await usedMemory(admin)) - before) / config.countSessions;
      stats.memory = await sessionMemory(admin, kind, fresh.slice(0, 200));
      for (const workload of ['read', 'change']) {
        stats[workload] = await countCommands(admin, async () => {
          const m = await drive(server, workload, fresh, { connections: config.connections, amount: config.countRequests });
          if (m.bad) log(`⚠️ ${server.name} ${workload}: ${m.bad} non-2xx/errors while counting`);
          return m.total;
        });
      }
      redis.servers[server.name] = stats;
      log(
        `${server.name}: commands/request login ${stats.login.commandsPerRequest.toFixed(2)}, read ${stats.read.commandsPerRequest.toFixed(2)} ` +
          `(${stats.read.roundTripsPerRequest.toFixed(2)} round trips), change ${stats.change.commandsPerRequest.toFixed(2)} ` +
          `(${stats.change.roundTripsPerRequest.toFixed(2)} round trips); ${Math.round(stats.memory.total)} B per session`,
      );
    }
  }

  // ---- 4. throughput ------------------------------------------------------------------------
  const workloads = Object.keys(WORKLOADS);
  // Workload-major, so one server's cells are not neighbours (a store busy after a write-heavy
  // cell, say PostgreSQL's WAL writer or autovacuum, does not always land on the same server).
  const order = workloads.flatMap((workload) => servers.map((server) => ({ server, workload })));
  const samples = Object.fromEntries(servers.map((s) => [s.name, Object.fromEntries(workloads.map((w) => [w, []]))]));
  const measure = async ({ server, workload }, duration) => {
    if (server.exited) throw new Error(`${server.name} is not running any more`);
    // The server process's own CPU per request: what a change in it (encryption at rest) costs,
    // whatever the load generator and the store on the same cores were doing.
    const cpuBefore = cpuSeconds(server.child.pid);
    const m = await drive(server, workload, cookies[server.name], { connections: config.connections, duration });
    return { ...m, cpuPerRequest: (cpuSeconds(server.child.pid) - cpuBefore) / m.total };
  };
  if (config.warmup > 0) {
    log(`warm-up: ${config.warmup} s per server and workload`);
    for (const cell of order) await measure(cell, config.warmup);
  }
  for (const [round, rotated] of roundOrders(order, config.rounds).entries()) {
    for (const [i, cell] of rotated.entries()) {
      const m = await measure(cell, config.duration);
      samples[cell.server.name][cell.workload].push(m);
      log(
        `round ${round + 1}/${config.rounds} [${i + 1}/${rotated.length}] ${cell.server.name} ${cell.workload}: ` +
          `${Math.round(m.rps)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms${m.bad ? `, ⚠️ ${m.bad} non-2xx/errors` : ''}`,
      );
    }
  }
  const results = {};
  for (const server of servers) {
    results[server.name] = {};
    for (const workload of workloads) {
      const runs = samples[server.name][workload];
      results[server.name][workload] = { ...summarize(runs), cpuPerRequest: median(runs.map((m) => m.cpuPerRequest)) };
    }
  }

  // How steady the run was, over every server × workload: a reader sees at once whether the
  // differences in the tables are bigger than the machine's own movement.
  const spreads = Object.entries(results).flatMap(([name, byWorkload]) =>
    Object.entries(byWorkload).map(([workload, m]) => ({ name, workload, spread: m.spread })),
  );
  const widest = spreads.reduce((a, b) => (b.spread > a.spread ? b : a));
  const spreadSummary = {
    count: spreads.length,
    median: median(spreads.map((s) => s.spread)),
    max: widest.spread,
    widest: `${widest.name} ${widest.workload}`,
  };
  log(
    `spread over ${spreadSummary.count} measurements: median ${(spreadSummary.median * 100).toFixed(1)} %, max ${(spreadSummary.max * 100).toFixed(1)} % (${spreadSummary.widest})`,
  );

  // ---- 5. lost updates ----------------------------------------------------------------------
  const lostUpdates = [];
  for (const [name, label] of [
    ['connect-redis', 'express-session + connect-redis'],
    ['ours-redis', 'ours (RedisStore)'],
    ['connect-pg-simple', 'express-session + connect-pg-simple'],
    ['ours-postgres', 'ours (PostgresStore)'],
    ['session-file-store', 'express-session + session-file-store'],
    ['ours-file', 'ours (FileStore)'],
  ]) {
    const nodeA = servers.find((s) => s.name === name);
    if (!nodeA) continue;
    const nodeB = await startServer(cleanup, `${name}-node-b`, specOf(nodeA, infra), serverCore);
    try {
      const trials = [];
      for (let t = 0; t < config.lostTrials; t++) trials.push(await lostUpdateTrial(nodeA, nodeB, 900_000 + t));
      lostUpdates.push({ name, label, requests: config.lostRequests, trials });
      log(`lost updates, ${label}: fields kept ${trials.map((t) => `${t.survived}/${config.lostRequests}`).join(', ')}`);
    } finally {
      await nodeB.stop();
    }
  }

  // ---- 6. stop the servers; MemoryStore heap ------------------------------------------------
  for (const server of servers) await server.stop();
  const heap = [];
  for (const store of ['ours', 'ours-encrypted', 'express-session']) {
    heap.push(await heapOf(store, config.heapSessions));
    log(`heap, ${store} MemoryStore: ${Math.round(heap.at(-1).perSession)} B per session`);
  }

  // ---- 7. growth ----------------------------------------------------------------------------
  let growth;
  if (config.growth) {
    // The same servers as ours-redis and connect-redis above, each on a redis-server of its own.
    const specFor = (name, url) => specOf(SERVERS.find((s) => s.name === name) ?? { name }, { redis: { url } });
    growth = await measureGrowth(cleanup, config, { server: serverCore, others: othersCore }, specFor);
    log(`growth pass took ${Math.round(growth.seconds)} s`);
  }

  // ---- the report ---------------------------------------------------------------------------
  const report = renderReport({
    config,
    knobs: KNOBS,
    servers,
    results,
    spreadSummary,
    pinning: pinning.off ? pinning : { ...pinning, redis: Boolean(infra.redis), postgres: Boolean(infra.db) },
    redis,
    heap,
    lostUpdates,
    growth,
    wallSeconds: (Date.now() - started) / 1000,
    machine: {
      cpus: { count: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown CPU' },
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      loadBefore,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      ...machineInfo,
    },
  });
  writeFileSync(new URL('../BENCHMARKS.md', import.meta.url), report);
  console.log(report);
  log(`BENCHMARKS.md written; benchmark took ${Math.round((Date.now() - started) / 1000)} s (plus the build)`);
}

/**
 * One session signed in on node A, then `lostRequests` concurrent PUT /field/<n>, alternating
 * between nodes A and B, then the fields read back from node A.
 */
async function lostUpdateTrial(nodeA, nodeB, user) {
  const [cookie] = await signIn(nodeA, 1, user);
  const agent = new http.Agent({ keepAlive: false, maxSockets: config.lostRequests });
  try {
    const answers = await Promise.all(
      Array.from({ length: config.lostRequests }, (_, n) => request((n % 2 ? nodeB : nodeA).port, 'PUT', `/field/${n}`, { cookie, agent })),
    );
    const bad = answers.filter((a) => a.status >= 300).length;
    const read = await request(nodeA.port, 'GET', '/fields', { cookie });
    const data = JSON.parse(read.body);
    const survived = Array.from({ length: config.lostRequests }, (_, n) => data[`f_${n}`] === 1).filter(Boolean).length;
    return { survived, bad };
  } finally {
    agent.destroy();
  }
}

/** Runs heap.js in a child process with --expose-gc. */
function heapOf(store, count) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', new URL('./heap.js', import.meta.url).pathname, store, String(count)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.tell('+', 'pid', child.pid);
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      cleanup.tell('-', 'pid', child.pid);
      if (code === 0) resolve(JSON.parse(out));
      else reject(new Error(`heap.js ${store} exited with code ${code}`));
    });
  });
}

async function postgresVersion(url) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('SHOW server_version')).rows[0].server_version.split(' ')[0];
  } finally {
    await client.end();
  }
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  log(`benchmark failed: ${error?.stack ?? error}`);
} finally {
  if (!interrupted) await cleanup.run();
}
// autocannon and the HTTP agents may hold handles for a moment; nothing is left to wait for.
process.exit(exitCode);
