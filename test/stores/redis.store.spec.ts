/**
 * RedisStore on a standalone server the test starts: what it keeps in Redis (read back with a raw
 * client), how many commands each operation costs, how it treats data it cannot read, which
 * clients it closes, and how it behaves while its server is down.
 *
 * Commands are counted on the server, never with MONITOR: each I/O case runs on a throwaway
 * server with `slowlog-log-slower-than 0`, so the slow log lists every top-level command with its
 * arguments and the connection that sent it (commands a script runs show as the Lua client, `?:0`),
 * and `INFO commandstats` / `INFO stats` give the totals.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { MAX_SESSION_FIELDS } from '../../lib/session.constants.js';
import { SessionFieldNotJsonError } from '../../lib/session.errors.js';
import { RedisStore } from '../../lib/stores/redis/index.js';
import { timesField } from '../../lib/stores/redis/redis.codec.js';
import type { StoredSession } from '../../lib/stores/session-store.js';
import type { RedisStoreConfig } from '../../lib/stores/store-config.js';
import { startRedisServer, type RedisServer } from '../support/redis-topology.js';
import { settlesWithin } from '../support/waiting.js';

const HOUR = 60 * 60_000;
const PROBE = 'probe';

const newId = (): string => randomBytes(32).toString('base64url');
const newUserId = (): string => `user-${randomBytes(9).toString('base64url')}`;

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { visits: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

/** `count` data fields `f0`, `f1`…, each with its own value. */
const manyFields = (count: number): Record<string, string> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`f${i}`, `v${i}`]));

const sessionKey = (id: string, prefix = 'sess:'): string => `${prefix}{${id}}`;
/** The session's expiry marker: its user, for the node that reports the session expired. */
const markerKey = (id: string, prefix = 'sess:'): string => `${sessionKey(id, prefix)}:x`;
/** How much longer the marker lives than its session. */
const MARKER_GRACE = 60 * 60_000;
const indexKey = (userId: string, prefix = 'sess:'): string => `${prefix}user:{${userId}}`;

// ---- Resources: every client and store opened here is closed in the afterAll of its describe.

const clients: Redis[] = [];
const stores: RedisStore[] = [];

/** A raw client on a harness server, named so the slow log can tell its commands apart. */
function rawClient(server: RedisServer, connectionName = PROBE): Redis {
  const client = new Redis(server.url, { connectionName, maxRetriesPerRequest: 1, retryStrategy: () => 100, disconnectTimeout: 100 });
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

async function openStore(config: Omit<RedisStoreConfig, 'type' | 'problems'>): Promise<RedisStore> {
  const store = await RedisStore.fromConfig({ type: 'redis', ...config } as RedisStoreConfig);
  stores.push(store);
  return store;
}

async function closeAll(): Promise<void> {
  await Promise.all(stores.splice(0).map((store) => store.onApplicationShutdown()));
  for (const client of clients.splice(0)) if (client.status !== 'end') client.disconnect();
}

/** The client a store created for itself: private, read here only to see whether it was closed. */
const clientOf = (store: RedisStore): Redis => (store as unknown as { client: Redis }).client;

// ---- Helpers

/** Retries `check` (which throws while its condition is unmet) for up to `timeoutMs`. */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/**
 * The error `promise` rejects with. Fails if it resolves, or if it is still pending after
 * `limitMs`: a guard against a hang, not a speed measurement.
 */
async function rejectionOf(promise: Promise<unknown>, limitMs = 5_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms: the call hangs instead of failing`)), limitMs);
  });
  try {
    const value = await Promise.race([
      promise.then(
        (v) => ({ resolved: v }),
        (error: unknown) => ({ error }),
      ),
      hung,
    ]);
    if ('resolved' in value) throw new Error(`expected a rejection, but it resolved with ${JSON.stringify(value.resolved)}`);
    return value.error;
  } finally {
    clearTimeout(timer);
  }
}

type SlowlogEntry = [id: number, time: number, micros: number, args: unknown[], addr: string, name: string];

interface Measured {
  /** Top-level commands the store's connection sent, oldest first, with their arguments. */
  sent: string[][];
  /** `INFO commandstats` calls per command (script-internal ones included), without the probe's own. */
  stats: Record<string, number>;
  /** `total_net_input_bytes`: every byte the server received meanwhile, the probe's few included. */
  inputBytes: number;
}

/** Runs `action` between a reset and a read of the server's slow log and statistics. */
async function measure(probe: Redis, action: () => Promise<unknown>): Promise<Measured> {
  await probe.config('RESETSTAT');
  await probe.call('SLOWLOG', 'RESET');
  await action();
  const inputBytes = Number(/total_net_input_bytes:(\d+)/.exec(await probe.info('stats'))?.[1]);
  const log = (await probe.call('SLOWLOG', 'GET', '1000')) as SlowlogEntry[];
  const commandstats = await probe.info('commandstats');

  const sent = log
    .filter(([, , , , addr, name]) => name !== PROBE && /^\d+\.\d+\.\d+\.\d+:\d+$/.test(addr))
    .reverse()
    .map(([, , , args]) => args.map(String))
    .map(([command, ...args]) => [command.toUpperCase(), ...args]);
  const stats: Record<string, number> = {};
  for (const [, command, calls] of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!/^(config|slowlog|info)\b/.test(command)) stats[command] = Number(calls);
  }
  return { sent, stats, inputBytes };
}

/** Number of open TCP handles of this process. */
const openSockets = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length;

describe('RedisStore', () => {
  afterAll(closeAll);

  describe('data model', () => {
    let server: RedisServer;
    let probe: Redis;
    let store: RedisStore;
    /** A store with expiryEvents on, which keeps an expiry marker beside each session. */
    let marking: RedisStore;

    beforeAll(async () => {
      server = await startRedisServer();
      probe = rawClient(server);
      store = await openStore({ url: server.url });
      marking = await openStore({ url: server.url, expiryEvents: true });
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    it("keeps one hash per session at <prefix>{<id>}: its times in '', ~u, and one JSON field per data field under its name, and no other key of its own", async () => {
      const userId = newUserId();
      const session = newSession({
        userId,
        createdAt: Date.now() - 5_000,
        data: { cart: ['a', { qty: 2 }], n: 1, name: 'Ada — 🎉', off: false, none: null, '~u': 'mine', '': 'empty' },
      });

      await store.create(session);

      expect(await probe.keys(`*${session.id}*`)).toEqual([sessionKey(session.id)]);
      expect(await probe.type(sessionKey(session.id))).toBe('hash');
      expect(await probe.hgetall(sessionKey(session.id))).toEqual({
        '': timesField(session.createdAt, session.lastSeenAt, session.expiresAt),
        '~u': userId,
        cart: '["a",{"qty":2}]',
        n: '1',
        name: '"Ada — 🎉"',
        off: 'false',
        none: 'null',
        // Names metadata could take get a `~` in front.
        '~~u': '"mine"',
        '~': '"empty"',
      });
      await expect(store.get(session.id)).resolves.toEqual(session);
    });

    it('writes the times as base 62 creation time, then signed differences, and reads back any times, negative differences included', async () => {
      expect(timesField(62, 62, 62 + 63)).toBe('10+0+11');
      const cases = [
        { createdAt: Date.now(), lastSeenAt: Date.now() + 61, expiresAt: Date.now() + HOUR },
        { createdAt: Date.now(), lastSeenAt: Date.now() - 1_000, expiresAt: Date.now() - 500 + HOUR },
        { createdAt: 0, lastSeenAt: 0, expiresAt: Number.MAX_SAFE_INTEGER },
      ];
      for (const times of cases) {
        const session = newSession(times);
        await store.create(session);
        await expect(store.get(session.id)).resolves.toMatchObject(times);
      }
    });

    it("keeps a data field that holds the user's id as a reference to ~u, and reads it back as the id", async () => {
      const userId = newUserId();
      const session = newSession({ userId, data: { userId, alias: userId, visits: 0, other: `${userId}!` } });

      await store.create(session);

      const hash = await probe.hgetall(sessionKey(session.id));
      expect(hash).toMatchObject({ '~u': userId, userId: '', alias: '', visits: '0', other: JSON.stringify(`${userId}!`) });
      await expect(store.get(session.id)).resolves.toMatchObject({ userId, data: { userId, alias: userId, visits: 0, other: `${userId}!` } });
    });

    it('gives the fields that referred to the old user its JSON back when a commit changes or clears the user', async () => {
      const alice = `${newUserId()}/"é"`;
      const bob = newUserId();
      const session = newSession({ userId: alice, data: { userId: alice, previous: alice } });
      await store.create(session);

      await store.commit(session.id, { set: { userId: bob }, unset: [], userId: bob, expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      expect(await probe.hgetall(sessionKey(session.id))).toMatchObject({ '~u': bob, userId: '' });
      expect(JSON.parse((await probe.hget(sessionKey(session.id), 'previous'))!)).toBe(alice);
      await expect(store.get(session.id)).resolves.toMatchObject({ userId: bob, data: { userId: bob, previous: alice } });

      await store.commit(session.id, { set: {}, unset: ['userId'], userId: null, expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      expect(await probe.hexists(sessionKey(session.id), '~u')).toBe(0);
      const read = await store.get(session.id);
      expect(read).toMatchObject({ userId: null });
      expect(read!.data).toEqual({ previous: alice });
    });

    it('keeps the references when a commit names the same user again', async () => {
      const userId = newUserId();
      const session = newSession({ userId, data: { userId, alias: userId } });
      await store.create(session);

      await store.commit(session.id, { set: { visits: 1 }, unset: [], userId, expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      expect(await probe.hgetall(sessionKey(session.id))).toMatchObject({ userId: '', alias: '', visits: '1' });
      await expect(store.get(session.id)).resolves.toMatchObject({ data: { userId, alias: userId, visits: 1 } });
    });

    it('stores no ~u field for a session without a user', async () => {
      const session = newSession({ userId: null });

      await store.create(session);

      expect(await probe.hexists(sessionKey(session.id), '~u')).toBe(0);
    });

    it('with expiryEvents, keeps an expiry marker <prefix>{<id>}:x holding the user, living a grace period longer than the session, through commits', async () => {
      const userId = newUserId();
      const session = newSession({ userId, expiresAt: Date.now() + 10 * 60_000 });
      await marking.create(session);

      expect(await probe.get(markerKey(session.id))).toBe(userId);
      expect(await probe.pexpiretime(markerKey(session.id))).toBe(session.expiresAt + MARKER_GRACE);

      const later = session.expiresAt + HOUR;
      const other = newUserId();
      await marking.commit(session.id, { set: {}, unset: [], expiresAt: later, lastSeenAt: Date.now(), userId: other });

      expect(await probe.get(markerKey(session.id))).toBe(other);
      expect(await probe.pexpiretime(markerKey(session.id))).toBe(later + MARKER_GRACE);

      await marking.commit(session.id, { set: {}, unset: [], expiresAt: later, lastSeenAt: Date.now(), userId: null });

      expect(await probe.get(markerKey(session.id))).toBe('');
    });

    it('with expiryEvents, marks an anonymous session with an empty user, and writes no marker for a commit to a missing session', async () => {
      const session = newSession({ userId: null });
      await marking.create(session);
      const missing = newId();

      await expect(marking.commit(missing, { set: { n: 1 }, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() })).resolves.toBe(false);

      expect(await probe.get(markerKey(session.id))).toBe('');
      expect(await probe.exists(markerKey(missing))).toBe(0);
    });

    it('with expiryEvents, deletes the marker with its session on destroy and on revocation by user', async () => {
      const userId = newUserId();
      const destroyed = newSession({ userId });
      const revoked = newSession({ userId });
      await marking.create(destroyed);
      await marking.create(revoked);

      await marking.destroy(destroyed.id);
      await expect(marking.destroyByUser(userId)).resolves.toEqual([revoked.id]);

      expect(await probe.exists(sessionKey(destroyed.id), markerKey(destroyed.id))).toBe(0);
      expect(await probe.exists(sessionKey(revoked.id), markerKey(revoked.id))).toBe(0);
    });

    it("expires the key exactly at expiresAt, and a commit moves the key's expiry with it", async () => {
      const session = newSession({ expiresAt: Date.now() + 10 * 60_000 });
      await store.create(session);

      expect(await probe.pexpiretime(sessionKey(session.id))).toBe(session.expiresAt);

      const later = session.expiresAt + HOUR;
      await store.commit(session.id, { set: {}, unset: [], expiresAt: later, lastSeenAt: Date.now() });

      expect(await probe.pexpiretime(sessionKey(session.id))).toBe(later);
      await expect(store.get(session.id)).resolves.toMatchObject({ expiresAt: later });
    });

    it('changes only the named fields on a delta commit: every other raw value stays byte-identical', async () => {
      const userId = newUserId();
      const session = newSession({ userId, data: { a: 1, b: { deep: ['x', 'y'] }, c: 'drop me', text: 'héllo 🎉 "q"' } });
      await store.create(session);
      const before = await probe.hgetallBuffer(sessionKey(session.id));
      const lastSeenAt = session.lastSeenAt + 1_000;
      const expiresAt = session.expiresAt + 60_000;

      await store.commit(session.id, { set: { a: 2, added: true }, unset: ['c'], expiresAt, lastSeenAt });

      const after = await probe.hgetallBuffer(sessionKey(session.id));
      expect(Object.keys(after).sort()).toEqual(['', 'a', 'added', 'b', 'text', '~u']);
      expect(after.a.toString()).toBe('2');
      expect(after.added.toString()).toBe('true');
      expect(after[''].toString()).toBe(timesField(session.createdAt, lastSeenAt, expiresAt));
      for (const untouched of ['b', 'text', '~u']) {
        expect(Buffer.compare(after[untouched], before[untouched])).toBe(0);
      }
    });

    it('does not rewrite a field it was not asked to change, even one another node changed meanwhile', async () => {
      const session = newSession({ data: { mine: 1, theirs: 'original' } });
      await store.create(session);
      // Another node's write, straight into the hash.
      await probe.hset(sessionKey(session.id), 'theirs', '{"changedBy":"another node"}');

      await store.commit(session.id, { set: { mine: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      expect(await probe.hget(sessionKey(session.id), 'theirs')).toBe('{"changedBy":"another node"}');
      expect(await probe.hget(sessionKey(session.id), 'mine')).toBe('2');
    });

    it('leaves no key under the old id after a rotation', async () => {
      const userId = newUserId();
      const old = newSession({ userId, data: { cart: ['a'] } });
      await store.create(old);
      const next = newSession({ userId, data: { cart: ['a'] }, createdAt: old.createdAt });

      await expect(store.rotate(old.id, next)).resolves.toBe(true);

      expect(await probe.exists(sessionKey(old.id))).toBe(0);
      expect(await probe.keys(`*${old.id}*`)).toEqual([]);
      expect(await probe.type(sessionKey(next.id))).toBe('hash');
      expect(await probe.hget(sessionKey(next.id), 'cart')).toBe('["a"]');
      expect(await probe.keys(`*${next.id}*`)).toEqual([sessionKey(next.id)]);
    });

    it('indexes a user in a sorted set <prefix>user:{<userId>} scored by creation time, living at least as long as its sessions', async () => {
      const userId = newUserId();
      const now = Date.now();
      const shortLived = newSession({ userId, createdAt: now - 2_000, expiresAt: now + 10 * 60_000 });
      const longLived = newSession({ userId, createdAt: now - 1_000, expiresAt: now + 2 * HOUR });
      await store.create(shortLived);
      await store.create(longLived);
      const key = indexKey(userId);

      expect(await probe.type(key)).toBe('zset');
      expect(await probe.zrange(key, '0', '-1', 'WITHSCORES')).toEqual([
        shortLived.id,
        String(shortLived.createdAt),
        longLived.id,
        String(longLived.createdAt),
      ]);
      expect(await probe.pexpiretime(key)).toBeGreaterThanOrEqual(longLived.expiresAt);

      // A commit that keeps the user and outlives the index's lifetime so far (twice the
      // longest session's remaining time, 4 h): the index follows it.
      const later = now + 5 * HOUR;
      await store.commit(shortLived.id, { set: { n: 1 }, unset: [], expiresAt: later, lastSeenAt: Date.now() });

      await eventually(async () => expect(await probe.pexpiretime(key)).toBeGreaterThanOrEqual(later));
    });

    it('treats a field committed as undefined as removed, as JSON would, and the session stays readable', async () => {
      const session = newSession({ data: { kept: 1, gone: 'x' } });
      await store.create(session);

      await store.commit(session.id, { set: { gone: undefined, kept: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      await expect(store.get(session.id)).resolves.toMatchObject({ data: { kept: 2 } });
      expect(await probe.hexists(sessionKey(session.id), 'gone')).toBe(0);
    });

    it('rejects a committed value JSON cannot carry with SessionFieldNotJsonError naming the field, and writes nothing', async () => {
      const session = newSession({ data: { visits: 1 } });
      await store.create(session);
      const before = await probe.hgetall(sessionKey(session.id));

      const commit = store.commit(session.id, {
        set: { visits: 2, big: 10n },
        unset: [],
        expiresAt: session.expiresAt + 1,
        lastSeenAt: Date.now(),
      });

      await expect(commit).rejects.toBeInstanceOf(SessionFieldNotJsonError);
      await expect(commit).rejects.toMatchObject({ field: 'big' });
      expect(await probe.hgetall(sessionKey(session.id))).toEqual(before);
    });

    it('rejects a created session holding a value JSON cannot carry with SessionFieldNotJsonError, and writes nothing', async () => {
      const session = newSession({ data: { big: 10n } });

      await expect(store.create(session)).rejects.toBeInstanceOf(SessionFieldNotJsonError);

      expect(await probe.exists(sessionKey(session.id))).toBe(0);
    });

    it("creates, commits and rotates a session of 5,000 fields, past the ~8,000 values Lua's unpack() returns, each in one call", async () => {
      // Beyond what the pipeline lets a session grow to (MAX_SESSION_FIELDS): the scripts have no limit of their own.
      const fields = manyFields(5_000);
      const session = newSession({ data: fields });
      const change = { expiresAt: session.expiresAt, lastSeenAt: Date.now() };

      await store.create(session);
      expect((await store.get(session.id))?.data).toEqual(fields);
      await expect(store.commit(session.id, { ...change, set: {}, unset: Object.keys(fields) })).resolves.toBe(true);
      expect((await store.get(session.id))?.data).toEqual({});
      await expect(store.commit(session.id, { ...change, set: fields, unset: [] })).resolves.toBe(true);
      const next = newSession({ data: fields });
      await expect(store.rotate(session.id, next)).resolves.toBe(true);
      expect((await store.get(next.id))?.data).toEqual(fields);
      // The data fields and the times.
      expect(await probe.hlen(sessionKey(next.id))).toBe(5_000 + 1);
    });

    it('keeps sessions and user indexes under a custom prefix, apart from the default one', async () => {
      const tenant = await openStore({ url: server.url, prefix: 'tenant-a:' });
      const userId = newUserId();
      const session = newSession({ userId });

      await tenant.create(session);

      expect(await probe.keys(`*${session.id}*`)).toEqual([sessionKey(session.id, 'tenant-a:')]);
      expect(await probe.type(indexKey(userId, 'tenant-a:'))).toBe('zset');
      expect(await probe.exists(indexKey(userId))).toBe(0);
      await expect(tenant.get(session.id)).resolves.toMatchObject({ id: session.id, userId });
      await expect(store.get(session.id)).resolves.toBeNull();
    });
  });

  describe('I/O per operation', () => {
    let server: RedisServer;
    let probe: Redis;
    let store: RedisStore;

    beforeAll(async () => {
      server = await startRedisServer({ args: ['--slowlog-log-slower-than', '0', '--slowlog-max-len', '1000'] });
      probe = rawClient(server);
      store = await openStore({ url: server.url });
      // ioredis sends a script as EVAL the first time on a connection, EVALSHA afterwards.
      const warmUp = newSession();
      await store.create(warmUp);
      await store.commit(warmUp.id, { set: { warm: true }, unset: [], expiresAt: warmUp.expiresAt, lastSeenAt: Date.now() });
      await store.get(warmUp.id);
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    it('reads a session with one command: HGETALL of its key', async () => {
      const session = newSession({ data: { visits: 3 } });
      await store.create(session);

      const { sent, stats } = await measure(probe, () => store.get(session.id));

      expect(sent).toEqual([['HGETALL', sessionKey(session.id)]]);
      expect(stats).toEqual({ hgetall: 1 });
    });

    it('commits a change to an anonymous session with one command: EVALSHA of the commit script', async () => {
      const session = newSession({ data: { visits: 1 } });
      await store.create(session);

      const { sent, stats } = await measure(probe, () =>
        store.commit(session.id, { set: { visits: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() }),
      );

      expect(sent.map(([command]) => command)).toEqual(['EVALSHA']);
      expect(sent[0]).toContain(sessionKey(session.id));
      expect(stats.evalsha).toBe(1);
      expect(stats.eval).toBeUndefined();
      expect(await probe.hget(sessionKey(session.id), 'visits')).toBe('2');
    });

    it(`writes a session of MAX_SESSION_FIELDS (${MAX_SESSION_FIELDS}) fields with one command per call: its creation, a commit setting every field, one removing every field`, async () => {
      const fields = manyFields(MAX_SESSION_FIELDS);
      const full = newSession({ data: fields });
      const filled = newSession({ data: {} });
      await store.create(filled);
      const change = { expiresAt: filled.expiresAt, lastSeenAt: Date.now() };

      const calls = [
        await measure(probe, () => store.create(full)),
        await measure(probe, () => store.commit(filled.id, { ...change, set: fields, unset: [] })),
      ];
      expect(await probe.hlen(sessionKey(filled.id))).toBe(MAX_SESSION_FIELDS + 1);
      calls.push(await measure(probe, () => store.commit(filled.id, { ...change, set: {}, unset: Object.keys(fields) })));

      for (const { sent } of calls) expect(sent.map(([command]) => command)).toEqual(['EVALSHA']);
      // The data fields and the times.
      expect(await probe.hlen(sessionKey(full.id))).toBe(MAX_SESSION_FIELDS + 1);
      expect(await probe.hlen(sessionKey(filled.id))).toBe(1);
    });

    it('sends nothing for a user id it refuses (an unpaired surrogate would reach Redis as U+FFFD, another user id)', async () => {
      const userId = `${newUserId()}\udfff`;
      const session = newSession({ userId });

      const { sent } = await measure(probe, async () => {
        const calls = [
          () => store.create(session),
          () => store.listByUser(userId),
          () => store.destroyByUser(userId),
          () => store.withUserLock(userId, async () => 'ran'),
        ];
        for (const call of calls) await expect(call()).rejects.toMatchObject({ code: 'SESSION_USER_ID_INVALID' });
      });

      expect(sent).toEqual([]);
    });

    it('touches an unchanged session with one command, carrying no data field', async () => {
      const session = newSession({ data: { visits: 1 } });
      await store.create(session);
      const expiresAt = session.expiresAt + 60_000;

      const { sent, stats } = await measure(probe, () => store.touch(session.id, expiresAt, Date.now()));

      expect(sent.map(([command]) => command)).toEqual(['EVALSHA']);
      expect(sent[0]).not.toContain('visits');
      expect(stats.evalsha).toBe(1);
      expect(await probe.pexpiretime(sessionKey(session.id))).toBe(expiresAt);
    });

    it('sends only the changed fields: a one-field commit next to a 100 kB field sends a few hundred bytes', async () => {
      const blob = 'x'.repeat(100_000);
      const session = newSession({ data: { blob, small: 1 } });
      await store.create(session);

      const { sent, inputBytes } = await measure(probe, () =>
        store.commit(session.id, { set: { small: 2 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() }),
      );

      expect(sent).toHaveLength(1);
      const args = sent[0];
      expect(args).toEqual(expect.arrayContaining(['small', '2']));
      expect(args).not.toContain('blob');
      expect(inputBytes).toBeLessThan(10_000);
      expect((await probe.hget(sessionKey(session.id), 'blob'))?.length).toBe(blob.length + 2);
    });
  });

  describe('unreadable data', () => {
    let server: RedisServer;
    let probe: Redis;
    let store: RedisStore;

    beforeAll(async () => {
      server = await startRedisServer();
      probe = rawClient(server);
      store = await openStore({ url: server.url });
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    const metadata = (): Record<string, string> => {
      const now = Date.now();
      return { '': timesField(now, now, now + HOUR) };
    };

    async function seedHash(id: string, fields: Record<string, string>): Promise<void> {
      await probe.hset(sessionKey(id), fields);
      await probe.pexpire(sessionKey(id), HOUR);
    }

    it('reads a key of another type as no session, and leaves it as it was', async () => {
      const id = newId();
      await probe.set(sessionKey(id), 'not a hash', 'PX', HOUR);

      await expect(store.get(id)).resolves.toBeNull();

      expect(await probe.type(sessionKey(id))).toBe('string');
      expect(await probe.get(sessionKey(id))).toBe('not a hash');
    });

    it.each([
      ['garbage JSON in a data field', { ok: '1', bad: '{not json' }],
      ['no times field', { '': undefined, a: '1' }],
      ['times in the old layout', { '': undefined, '~c': String(Date.now()), '~s': String(Date.now()), '~e': String(Date.now() + HOUR) }],
      ['a times field missing its expiry', { '': timesField(Date.now(), Date.now(), Date.now() + HOUR).replace(/[+-][^+-]*$/, '') }],
      ['a times field that is not base 62', { '': 'yesterday+0+0' }],
      ['an empty times field', { '': '' }],
      ['a reference to the user without a user', { userId: '' }],
      ['a client record that is not JSON', { '~k': '{"ip":' }],
      ['a client record that is not an object', { '~k': '"Mozilla/5.0"' }],
      ['a client record whose ip is not a string', { '~k': '{"ip":127}' }],
    ])('reads a hash with %s as no session, and neither deletes nor changes it', async (_what, overrides) => {
      const id = newId();
      const fields: Record<string, string> = { ...metadata(), visits: '1' };
      for (const [field, value] of Object.entries(overrides)) {
        if (value === undefined) delete fields[field];
        else fields[field] = value;
      }
      await seedHash(id, fields);

      await expect(store.get(id)).resolves.toBeNull();

      expect(await probe.hgetall(sessionKey(id))).toEqual(fields);
      expect(await probe.pttl(sessionKey(id))).toBeGreaterThan(0);
    });

    it('never returns a session whose expiry has passed, even if its key has no TTL', async () => {
      const id = newId();
      const now = Date.now();
      await probe.hset(sessionKey(id), { '': timesField(now - HOUR, now - HOUR, now - 1_000), secret: '"x"' });

      await expect(store.get(id)).resolves.toBeNull();
    });

    it('reads a field named __proto__ as plain data, polluting no prototype, and leaves the hash as it was', async () => {
      const id = newId();
      const fields = { ...metadata(), ['__proto__']: '{"polluted":1}', plain: '"x"' };
      await seedHash(id, fields);

      const session = await store.get(id);

      expect(session).not.toBeNull();
      const data = session!.data;
      expect(Object.keys(data).sort()).toEqual(['__proto__', 'plain']);
      expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ polluted: 1 });
      expect(data.plain).toBe('x');
      expect([Object.prototype, null]).toContain(Object.getPrototypeOf(data));
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(await probe.hgetall(sessionKey(id))).toEqual(fields);
    });
  });

  describe('building and shutting down', () => {
    let server: RedisServer;

    beforeAll(async () => {
      server = await startRedisServer();
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    it('builds from a plain config object, written as its documentation writes it', async () => {
      // A compile-time check as much as a run-time one: `tsc --noEmit` must accept this literal.
      const config: RedisStoreConfig = { type: 'redis', url: server.url, prefix: 'literal:' };

      const store = await RedisStore.fromConfig(config);
      stores.push(store);

      await expect(store.ping()).resolves.toBeUndefined();
    });

    it.each([
      ['new RedisStore({ client })', (client: Redis) => new RedisStore({ client })],
      ["RedisStore.fromConfig({ type: 'redis', client })", (client: Redis) => RedisStore.fromConfig({ type: 'redis', client } as RedisStoreConfig)],
    ])('never closes a client it was given (%s)', async (_how, build) => {
      const client = rawClient(server, 'given');
      const store = await build(client);
      await store.ping();

      await store.onApplicationShutdown();

      expect(client.status).toBe('ready');
      expect(await client.ping()).toBe('PONG');
    });

    it('closes the client it created, once, on shutdown', async () => {
      const store = await openStore({ url: server.url });
      await store.ping();
      const client = clientOf(store);
      expect(client.status).toBe('ready');

      await store.onApplicationShutdown();
      await store.onApplicationShutdown();

      expect(client.status).toBe('end');
    });

    it('shuts down promptly when its server was killed, and neither keeps a socket nor reconnects afterwards', async () => {
      const doomed = await startRedisServer();
      try {
        const socketsBefore = openSockets();
        const store = await openStore({ url: doomed.url, commandTimeout: 300 });
        await store.ping();
        await doomed.kill();

        await settlesWithin(store.onApplicationShutdown());

        await doomed.restart();
        const probe = rawClient(doomed);
        // Longer than the reconnect delays of the first attempts: a reconnect still scheduled would have connected by now.
        await sleep(700);
        const connections = String(await probe.client('LIST'))
          .trim()
          .split('\n');
        expect(connections.filter((line) => !line.includes(`name=${PROBE} `))).toEqual([]);
        expect(openSockets()).toBeLessThanOrEqual(socketsBefore + 1);
      } finally {
        await closeAll();
        await doomed.stop();
      }
    });
  });

  describe('outage', () => {
    let server: RedisServer;
    let store: RedisStore;

    beforeAll(async () => {
      server = await startRedisServer();
      store = await openStore({ url: server.url, commandTimeout: 300 });
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    it('rejects reads and writes while its server is down instead of hanging, and serves again once it is back', async () => {
      const session = newSession();
      await store.create(session);

      await server.kill();

      expect(await rejectionOf(store.get(session.id))).toBeInstanceOf(Error);
      expect(
        await rejectionOf(store.commit(session.id, { set: { n: 1 }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() })),
      ).toBeInstanceOf(Error);

      await server.restart();

      // The same store, reconnected by itself (the restarted server is empty).
      await eventually(() => store.get(session.id), 10_000);
      const after = newSession({ data: { back: true } });
      await store.create(after);
      await expect(store.get(after.id)).resolves.toMatchObject({ data: { back: true } });
    });
  });
});
