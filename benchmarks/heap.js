// Heap used by N small sessions in a memory store, in a process of its own:
//   node --expose-gc benchmarks/heap.js ours|ours-encrypted|express-session N
// Prints one JSON line: { store, sessions, bytes, perSession }.
// Each session: two fields, { userId: 'user-NNNNNN', visits: 0 }, a distinct user each (so ours
// also keeps one per-user index entry per session), created directly through the store API.
// ours-encrypted: the same MemoryStore behind the view the module puts in front of it when
// `encryptionKeys` is set (dist's sealed-at-rest.js), so what the heap holds is sealed.
import { randomBytes } from 'node:crypto';

const [kind, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 100_000);
if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');

function heapUsed() {
  for (let i = 0; i < 3; i++) global.gc();
  return process.memoryUsage().heapUsed;
}

let store;
let create;
const now = Date.now();
if (kind === 'ours' || kind === 'ours-encrypted') {
  const { MemoryStore, generateSessionId } = await import('../dist/lib/index.js');
  store = new MemoryStore();
  if (kind === 'ours-encrypted') {
    // Not exported from the package: the module applies it (session.module.ts).
    const { sealedAtRest } = await import('../dist/lib/stores/sealed-at-rest.js');
    const quiet = { log() {}, warn() {}, error() {} };
    store = sealedAtRest(store, [randomBytes(32)], quiet);
  }
  create = (userId) =>
    store.create({
      id: generateSessionId(),
      data: { userId, visits: 0 },
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + 30 * 60_000,
      userId,
      client: null,
    });
} else if (kind === 'express-session') {
  // For reference: express-session's own MemoryStore keeps each session as a JSON string,
  // including the cookie object express-session adds (ids: uid-safe's 24 bytes, base64url).
  const { default: session } = await import('express-session');
  store = new session.MemoryStore();
  create = (userId) =>
    new Promise((resolve, reject) => {
      const cookie = new session.Cookie();
      store.set(randomBytes(24).toString('base64url'), { cookie, userId, visits: 0 }, (error) => (error ? reject(error) : resolve()));
    });
} else {
  throw new Error(`unknown store ${kind}`);
}

// Warm up the code paths (and whatever they allocate once) before the first measurement.
await create('user-warmup');
const before = heapUsed();
for (let i = 0; i < count; i++) await create(`user-${String(i).padStart(6, '0')}`);
const after = heapUsed();
process.stdout.write(`${JSON.stringify({ store: kind, sessions: count, bytes: after - before, perSession: (after - before) / count })}\n`);
// The store's sweeper timer is unref'd; exit anyway, without waiting on anything else.
process.exit(0);
