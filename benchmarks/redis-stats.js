// What the Redis-backed servers cost Redis: commands per request (INFO commandstats, split into
// client→Redis commands and commands run inside Lua scripts with MONITOR) and memory per session
// (MEMORY USAGE of each key a session uses). Only ever on the benchmark's own redis-server.
import { setTimeout as sleep } from 'node:timers/promises';

/** INFO commandstats as { command: calls }. */
export async function commandStats(admin) {
  const stats = {};
  for (const line of (await admin.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match) stats[match[1]] = Number(match[2]);
  }
  return stats;
}

/** The admin connection's own commands, left out of every count. */
const OWN_COMMANDS = new Set(['info', 'monitor', 'memory|usage', 'memory', 'ping']);

/**
 * Runs `work` (which sends `requests` HTTP requests to one server) while counting what Redis
 * executes: the INFO commandstats delta (every command, including those a Lua script calls), and,
 * from MONITOR, which commands clients sent (one round trip each, as both libraries send them
 * one by one) versus which a script ran inside Redis.
 */
export async function countCommands(admin, work) {
  const monitor = await admin.monitor();
  const direct = {};
  const scripted = {};
  monitor.on('monitor', (_time, args, source) => {
    const name = String(args[0]).toLowerCase();
    if (OWN_COMMANDS.has(name)) return;
    const into = source === 'lua' ? scripted : direct;
    into[name] = (into[name] ?? 0) + 1;
  });
  const before = await commandStats(admin);
  const requests = await work();
  // Let commands a library sends after the response (fire-and-forget) arrive.
  await sleep(300);
  const after = await commandStats(admin);
  monitor.disconnect();
  const stats = {};
  for (const [name, calls] of Object.entries(after)) {
    const delta = calls - (before[name] ?? 0);
    if (delta > 0 && !OWN_COMMANDS.has(name)) stats[name] = delta;
  }
  const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
  const perRequest = (counts) => Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / requests]));
  return {
    requests,
    commandsPerRequest: sum(stats) / requests,
    roundTripsPerRequest: sum(direct) / requests,
    scriptedPerRequest: sum(scripted) / requests,
    stats: perRequest(stats),
    direct: perRequest(direct),
    scripted: perRequest(scripted),
  };
}

/** MEMORY USAGE (bytes, SAMPLES 0: exact for these small values) of one key; 0 when absent. */
export async function memoryUsage(admin, key) {
  return (await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0;
}

/** INFO memory used_memory, after letting the server settle. */
export async function usedMemory(admin) {
  await sleep(200);
  const match = /used_memory:(\d+)/.exec(await admin.info('memory'));
  return Number(match[1]);
}

/** The session id inside each library's cookie. */
export const sessionIdOf = {
  // sid=<id>.<signature>
  ours: (cookie) => cookie.slice(cookie.indexOf('=') + 1).split('.')[0],
  // connect.sid=s%3A<id>.<signature>
  anchor: (cookie) =>
    decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
      .slice(2)
      .split('.')[0],
};

/**
 * Memory of each signed-in session, averaged over `cookies`: per key kind, and in total.
 * Ours: the hash `sess:{<id>}` and the user's index (no expiry marker: `expiryEvents` is off by default)
 * `sess:user:{<userId>}` divided by its entries (one session per user here, so all of it).
 * Anchor: `sess:<id>`, its only key.
 */
export async function sessionMemory(admin, kind, cookies) {
  const totals = {};
  for (const cookie of cookies) {
    const id = sessionIdOf[kind](cookie);
    const parts = {};
    if (kind === 'ours') {
      parts[`sess:{<id>}`] = await memoryUsage(admin, `sess:{${id}}`);
      const userId = await admin.hget(`sess:{${id}}`, '~u');
      const indexKey = `sess:user:{${userId}}`;
      const entries = await admin.zcard(indexKey);
      parts[`sess:user:{<userId>} ÷ entries`] = entries ? (await memoryUsage(admin, indexKey)) / entries : 0;
    } else {
      parts[`sess:<id>`] = await memoryUsage(admin, `sess:${id}`);
    }
    if (Object.values(parts).some((bytes, i) => i === 0 && bytes === 0)) throw new Error(`${kind}: session ${id} not found in Redis`);
    for (const [key, bytes] of Object.entries(parts)) totals[key] = (totals[key] ?? 0) + bytes;
  }
  const keys = Object.fromEntries(Object.entries(totals).map(([key, bytes]) => [key, bytes / cookies.length]));
  return { keys, total: Object.values(keys).reduce((a, b) => a + b, 0), sessions: cookies.length };
}
