// What the Redis-backed servers cost Redis: commands per request (INFO commandstats, split into
// client→Redis commands and commands run inside Lua scripts with MONITOR) and memory per session
// (MEMORY USAGE of each key a session uses). Only ever on the benchmark's own redis-server.
import { createHash } from 'node:crypto';
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

/** The id each library's Redis keys use for the session a cookie names. */
export const sessionIdOf = {
  // sid=<id>.<signature>; the store keys it by the id's SHA-256 (base64url)
  ours: (cookie) =>
    createHash('sha256')
      .update(cookie.slice(cookie.indexOf('=') + 1).split('.')[0])
      .digest('base64url'),
  // connect.sid=s%3A<id>.<signature>
  anchor: (cookie) =>
    decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
      .slice(2)
      .split('.')[0],
};

/**
 * Memory of each signed-in session, averaged over `cookies`: per key kind, and in total; and each
 * key kind's OBJECT ENCODING, counted (a hash stays a compact listpack only while its values are
 * short: `hash-max-listpack-value`, 64 bytes by default).
 * Ours: the hash `sess:{<id>}` and the user's index (no expiry marker: `expiryEvents` is off by default)
 * `sess:user:{<userId>}` divided by its entries (one session per user here, so all of it). The
 * index is named by what the hash's `~u` holds: the user id, or with `encryptionKeys` its token.
 * Anchor: `sess:<id>`, its only key.
 */
export async function sessionMemory(admin, kind, cookies) {
  const totals = {};
  const encodings = {};
  for (const cookie of cookies) {
    const id = sessionIdOf[kind](cookie);
    // key kind → [key, how many sessions share it]
    const parts = {};
    if (kind === 'ours') {
      parts[`sess:{<id>}`] = [`sess:{${id}}`, 1];
      const indexKey = `sess:user:{${await admin.hget(`sess:{${id}}`, '~u')}}`;
      // A signed-in session is always indexed: a missing index means the key is not built the
      // way the store builds it, which would silently leave the index out of the total.
      parts[`sess:user:{<userId>} ÷ entries`] = [indexKey, await admin.zcard(indexKey)];
    } else {
      parts[`sess:<id>`] = [`sess:${id}`, 1];
    }
    for (const [label, [key, sharedBy]] of Object.entries(parts)) {
      const bytes = await memoryUsage(admin, key);
      if (!bytes || !sharedBy) throw new Error(`${kind}: ${key} (session ${id}) not found in Redis`);
      totals[label] = (totals[label] ?? 0) + bytes / sharedBy;
      const encoding = await admin.call('OBJECT', 'ENCODING', key);
      encodings[label] ??= {};
      encodings[label][encoding] = (encodings[label][encoding] ?? 0) + 1;
    }
  }
  const keys = Object.fromEntries(Object.entries(totals).map(([key, bytes]) => [key, bytes / cookies.length]));
  return { keys, encodings, total: Object.values(keys).reduce((a, b) => a + b, 0), sessions: cookies.length };
}
