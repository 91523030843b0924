// Growth: how reads and Redis memory grow with what Redis holds, ours (RedisStore) beside
// express-session + connect-redis. Each library's server gets a throwaway redis-server of its
// own, so its keyspace, and its used_memory, hold nothing but this pass's sessions of that library:
//   1. session size: sessions of 2, 20 and 200 top-level fields, signed in over HTTP
//      (POST /login?fields=N); per size, MEMORY USAGE per session and GET /read in interleaved
//      rounds;
//   2. live sessions: 10k, 100k and 1M sessions written straight through each library's store
//      API (sign-ins over HTTP would take many minutes), each count topping up the one before;
//      per count, used_memory growth and GET /read over a sample spread across all of them.
// Pinned as the rest of the run: both servers on the servers' core; both redis-servers, and this
// process (autocannon), on the other. The store writes, which nothing measures, run in one worker
// thread per library, and they and the redis-servers may use both cores meanwhile.
import { randomBytes } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import signature from 'cookie-signature';
import { SECRET } from './apps.js';
import { log, pinProcess, startRedis, startServer } from './infra.js';
import { drive, request, roundOrders, signIn, summarize } from './load.js';
import { sessionMemory, usedMemory } from './redis-stats.js';

const SESSION_SIZES = [2, 20, 200];
const LIVE_COUNTS = [10_000, 100_000, 1_000_000];
/** Sessions a read measurement of the live pass cycles through: a uniform sample of all live ones. */
const READ_SAMPLE = 2000;
/** Sessions whose keys MEMORY USAGE is averaged over. */
const MEMORY_SAMPLE = 200;
/** Store writes in flight at once: enough to keep both clients' pipelines full. */
const WRITE_BATCH = 2000;

/** The two libraries: the server run.js knows by that name, and how to write its sessions directly. */
const LIBRARIES = [
  { name: 'ours-redis', memoryKind: 'ours', writer: oursWriter },
  { name: 'connect-redis', memoryKind: 'anchor', writer: anchorWriter },
];

/**
 * Both passes. `config`: duration, warmup, connections, sessions (per size), growthRounds and
 * growthMax (live counts above it are skipped); `pinning`: `{ server, others }`, each `{ core }`
 * or empty; `specFor(name, redisUrl)`: the spec run.js starts that server with, on that Redis.
 */
export async function measureGrowth(cleanup, config, pinning, specFor) {
  const started = Date.now();
  const sides = [];
  try {
    for (const library of LIBRARIES) {
      const redis = await startRedis(cleanup, pinning.others);
      const spec = specFor(library.name, redis.url);
      const side = { ...library, redis, spec };
      sides.push(side);
      side.server = await startServer(cleanup, `growth-${library.name}`, spec, pinning.server);
      log(`growth: ${library.name} on port ${side.server.port}, its redis-server on ${redis.port}`);
    }
    const sizes = await measureSizes(sides, config);
    const live = await measureLive(sides, config, pinning);
    return {
      sizes,
      live,
      skipped: LIVE_COUNTS.filter((n) => n > config.growthMax),
      sessionsPerSize: config.sessions,
      readSample: READ_SAMPLE,
      rounds: config.growthRounds,
      duration: config.duration,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    // Stopped now rather than at the end of the run: at 1M sessions they hold about a gigabyte.
    for (const side of sides) {
      await side.server?.stop();
      await side.redis.stop();
    }
  }
}

// ---- 1. session size -------------------------------------------------------------------------

async function measureSizes(sides, config) {
  const cells = [];
  for (const [index, fields] of SESSION_SIZES.entries()) {
    for (const side of sides) {
      const cookies = await signIn(side.server, config.sessions, index * 100_000, { fields });
      await assertReads(side, cookies, fields);
      const memory = await sessionMemory(side.redis.admin, side.memoryKind, cookies.slice(0, MEMORY_SAMPLE));
      cells.push({ side, cookies, fields, memory, label: `${fields} fields` });
      log(`growth: ${side.name}, ${config.sessions} sessions of ${fields} fields: ${Math.round(memory.total)} B per session`);
    }
  }
  if (config.warmup > 0) for (const cell of cells) await read(cell, config, config.warmup);
  const reads = await readRounds(cells, config);
  return cells.map((cell, i) => ({ fields: cell.fields, server: cell.side.name, memory: cell.memory, ...reads[i] }));
}

// ---- 2. live sessions ------------------------------------------------------------------------

async function measureLive(sides, config, pinning) {
  const counts = LIVE_COUNTS.filter((n) => n <= config.growthMax);
  const rows = [];
  if (counts.length === 0) return rows;
  try {
    for (const side of sides) {
      // The size pass's sessions go: from here on, the keyspace is the live sessions alone.
      await side.redis.admin.flushall();
      side.baseMemory = await usedMemory(side.redis.admin);
      side.writer = startWriterThread(side);
    }
    // Started (modules loaded, clients connected) before the clock runs for the first top-up.
    await Promise.all(sides.map((side) => side.writer.ask('ready')));
    let live = 0;
    for (const count of counts) {
      const writes = await writeSessions(sides, count, pinning);
      for (const [i, side] of sides.entries()) {
        log(`growth: ${side.name}, ${count - live} sessions written through its store API in ${writes[i].seconds.toFixed(1)} s`);
        await assertReads(side, writes[i].sample);
      }
      live = count;
      const cells = sides.map((side, i) => ({ side, cookies: writes[i].sample, label: `${count} live sessions` }));
      const reads = await readRounds(cells, config);
      for (const [i, side] of sides.entries()) {
        const { admin } = side.redis;
        // After the reads: a dict that doubled during the writes has finished rehashing by now, so
        // its old table is no longer counted.
        const usedMemoryGrowth = (await usedMemory(admin)) - side.baseMemory;
        rows.push({
          count,
          server: side.name,
          usedMemoryGrowth,
          usedMemoryPerSession: usedMemoryGrowth / count,
          keys: await admin.dbsize(),
          memory: await sessionMemory(admin, side.memoryKind, writes[i].sample.slice(0, MEMORY_SAMPLE)),
          writeSeconds: writes[i].seconds,
          ...reads[i],
        });
        log(
          `growth: ${side.name}, ${count} live sessions: used_memory +${Math.round(usedMemoryGrowth / 2 ** 20)} MiB, ${Math.round(usedMemoryGrowth / count)} B per session`,
        );
      }
    }
  } finally {
    for (const side of sides) await side.writer?.close();
  }
  return rows;
}

/**
 * Both libraries' writer threads top up to `count` at once. The store APIs cost tens of µs of
 * JavaScript per session, so a million each would take minutes on one core; nothing is measured
 * meanwhile and the servers are idle, so the threads and both redis-servers may use both cores,
 * and are pinned back before the reads. Per side, the sample of cookies to read with and the
 * seconds its writes took.
 */
async function writeSessions(sides, count, pinning) {
  const pinned = pinning.server.core !== undefined;
  const pids = [process.pid, ...sides.map((side) => side.redis.pid)];
  if (pinned) for (const pid of pids) pinProcess(pid, `${pinning.server.core},${pinning.others.core}`);
  try {
    return await Promise.all(
      sides.map(async (side) => {
        const started = Date.now();
        const sample = await side.writer.ask(count);
        return { sample, seconds: (Date.now() - started) / 1000 };
      }),
    );
  } finally {
    if (pinned) for (const pid of pids) pinProcess(pid, pinning.others.core);
  }
}

/**
 * A worker thread that writes one library's sessions (writerThread below): `ask(count)` tops the
 * live sessions up to `count` and resolves with the sample of cookies, `ask('ready')` once the
 * thread is set up; `close()` ends it.
 */
function startWriterThread(side) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { growthWriter: { name: side.name, spec: side.spec } } });
  let pending = null;
  // A failure while nothing is asked (say, the writer failing to connect) fails the next ask.
  let broken = null;
  const settle = (error, reply) => {
    const asked = pending;
    pending = null;
    if (!asked) broken ??= error;
    else if (error) asked.reject(error);
    else asked.resolve(reply);
  };
  worker.on('message', ({ reply, error }) => settle(error && new Error(`growth writer ${side.name}: ${error}`), reply));
  worker.on('error', (error) => settle(error));
  worker.on('exit', (code) => settle(new Error(`growth writer ${side.name} exited (code ${code})`)));
  const ask = (message) =>
    new Promise((resolve, reject) => {
      if (broken) return reject(broken);
      pending = { resolve, reject };
      worker.postMessage(message);
    });
  return {
    ask,
    close: async () => {
      // A thread that already failed has nothing to close; its failure was reported by then.
      await ask('close').catch(() => {});
      await worker.terminate();
    },
  };
}

/** The worker thread's side of startWriterThread: the library's writer, its live count and sample. */
async function writerThread({ name, spec }) {
  const store = await LIBRARIES.find((library) => library.name === name).writer(spec);
  const side = { store, sample: [], written: 0 };
  parentPort.on('message', async (message) => {
    try {
      if (message === 'ready') {
        parentPort.postMessage({ reply: true });
      } else if (message === 'close') {
        await store.close();
        parentPort.postMessage({ reply: true });
      } else {
        await topUp(side, message);
        parentPort.postMessage({ reply: [...side.sample] });
      }
    } catch (error) {
      parentPort.postMessage({ error: String(error?.stack ?? error) });
    }
  });
}

/** Writes sessions until `count` live, WRITE_BATCH at a time, sampling their cookies for the reads. */
async function topUp(side, count) {
  for (let first = side.written; first < count; first += WRITE_BATCH) {
    const batch = Array.from({ length: Math.min(WRITE_BATCH, count - first) }, (_, k) => first + k);
    // Users as POST /login names them: one per session, zero-padded to 6 digits.
    const ids = await Promise.all(batch.map((n) => side.store.create(`user-${String(n).padStart(6, '0')}`)));
    ids.forEach((id, k) => keepSample(side.sample, first + k, () => side.store.cookie(id)));
  }
  side.written = count;
}

/**
 * Reservoir sampling: after session `index` is offered, `sample` is a uniform pick of READ_SAMPLE
 * of all sessions so far, so reads land across the whole keyspace, old keys and new, at every
 * count. Only kept sessions pay for a signed cookie.
 */
function keepSample(sample, index, cookie) {
  if (index < READ_SAMPLE) sample[index] = cookie();
  else {
    const slot = Math.floor(Math.random() * (index + 1));
    if (slot < READ_SAMPLE) sample[slot] = cookie();
  }
}

/** Ours: the store the server builds from the same config, and the cookie the server would set. */
async function oursWriter(spec) {
  const lib = await import('../dist/lib/index.js');
  const options = lib.resolveSessionOptions({ secret: SECRET, store: spec.store });
  const store = await lib.createSessionStore(options.store);
  const signer = new lib.SessionIdSigner(options.secrets);
  return {
    async create(userId) {
      const id = lib.generateSessionId();
      const now = Date.now();
      // What POST /login makes the pipeline store: a new session, signed in, that expires after
      // the idle timeout (sooner than the absolute one), no client recorded (recordClient is off).
      await store.create({
        id: store.keyOf(id),
        data: { userId, visits: 0 },
        createdAt: now,
        lastSeenAt: now,
        expiresAt: now + options.idleTimeout,
        userId,
        client: null,
      });
      return id;
    },
    cookie: (id) => `${options.cookie.name}=${signer.sign(id)}`,
    close: () => store.onApplicationShutdown(),
  };
}

/** connect-redis: its store on a node-redis client, as server.js sets it up, and express-session's cookie. */
async function anchorWriter(spec) {
  const { default: session } = await import('express-session');
  const { RedisStore } = await import('connect-redis');
  const { createClient } = await import('redis');
  const client = createClient({ url: spec.redisUrl });
  await client.connect();
  const store = new RedisStore({ client });
  return {
    async create(userId) {
      // express-session's ids are uid-safe's 24 random bytes, base64url; what it saves for a new
      // session is its Cookie and the fields the handler set.
      const sid = randomBytes(24).toString('base64url');
      await store.set(sid, { cookie: new session.Cookie(), userId, visits: 0 });
      return sid;
    },
    // `s:` + cookie-signature's `<sid>.<HMAC-SHA256>`, URL-encoded, as express-session sets it.
    cookie: (sid) => `connect.sid=${encodeURIComponent(`s:${signature.sign(sid, SECRET)}`)}`,
    close: () => client.close(),
  };
}

// ---- reads -----------------------------------------------------------------------------------

/** One GET /read measurement of a cell (a server and the cookies it cycles through). */
const read = (cell, config, duration) => drive(cell.side.server, 'read', cell.cookies, { connections: config.connections, duration });

/** growthRounds interleaved rounds over `cells`; a summary per cell, in the cells' order. */
async function readRounds(cells, config) {
  const runs = cells.map(() => []);
  for (const [round, order] of roundOrders(cells, config.growthRounds).entries()) {
    for (const cell of order) {
      if (cell.side.server.exited) throw new Error(`${cell.side.server.name} is not running any more`);
      const m = await read(cell, config, config.duration);
      runs[cells.indexOf(cell)].push(m);
      log(
        `growth round ${round + 1}/${config.growthRounds} ${cell.side.name}, ${cell.label}: ${Math.round(m.rps)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms${m.bad ? `, ⚠️ ${m.bad} non-2xx/errors` : ''}`,
      );
    }
  }
  return runs.map(summarize);
}

/**
 * A few of the cookies read back their session: GET /read answers 200 for a cookie it does not
 * know too (with no userId), so a wrong cookie would otherwise be measured as a fast read.
 * With `fields`, the session must also hold that many fields.
 */
async function assertReads(side, cookies, fields) {
  for (const cookie of [cookies[0], cookies[Math.floor(cookies.length / 2)], cookies.at(-1)]) {
    const res = await request(side.server.port, 'GET', '/read', { cookie });
    if (res.status !== 200 || !JSON.parse(res.body).userId) {
      throw new Error(`growth: ${side.name} did not find a session it should hold (GET /read: ${res.status} ${res.body})`);
    }
    if (fields === undefined) continue;
    const data = JSON.parse((await request(side.server.port, 'GET', '/fields', { cookie })).body);
    if (Object.keys(data).length !== fields) throw new Error(`growth: ${side.name} holds ${Object.keys(data).length} fields, not ${fields}`);
  }
}

if (!isMainThread && workerData?.growthWriter) {
  writerThread(workerData.growthWriter).catch((error) => parentPort.postMessage({ error: String(error?.stack ?? error) }));
}
