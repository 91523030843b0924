import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import type { Response, Test } from 'supertest';
import { createFixtureApp, requireSid, setCookieLine } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { pollUntil, RawClients, sessionKeyOf, sleep, withSid } from '../fixtures/redis-apps.js';
import { startClusterTopology, startSentinelTopology } from '../support/redis-topology.js';
import type { ClusterTopology, RedisEndpoint, RedisServer, SentinelTopology } from '../support/redis-topology.js';

/**
 * `consistency: 'strong'` through a failover (SPEC §3.1 and §3.7 together). A write the app
 * acknowledged is on a replica, so it survives the master's death, and a write no replica took
 * is never acknowledged. While the failover runs every request gets a 200 or a bounded 503,
 * never a 500 or a hang. Afterwards the same app, not restarted, reads every acknowledged write
 * back, keeps serving reads while strong writes have no replica, and writes again once one is
 * back.
 *
 * Within each topology the tests run in order on one app: failover, read-back, no replica,
 * replica back.
 *
 * On Express only: what is tested here happens between the store and Redis, and the HTTP
 * platform takes no part in it (the pipeline on both platforms is pipeline.e2e-spec's). Run
 * twice, these minute-long failovers would double the suite's slowest file for nothing.
 */

/** Sessions written before the failover. */
const N = 20;
/** storeTimeout: the longest a request waits on the store before its 503. */
const STORE_TIMEOUT = 3_000;
/** A request that takes longer than this is a hang and fails the test. */
const HANG = STORE_TIMEOUT + 5_000;

const raw = new RawClients();

interface Written {
  cookie: string;
  value: string;
}

/** Creates `count` sessions through the app, each holding a distinct `v`, all acknowledged. */
async function writeSessions(app: FixtureApp, count: number): Promise<Written[]> {
  const written: Written[] = [];
  for (let i = 0; i < count; i++) {
    const value = `value-${i}-${Math.random().toString(36).slice(2)}`;
    const res = await app.http().post('/set').send({ v: value }).timeout(HANG).expect(200);
    written.push({ cookie: requireSid(res), value });
  }
  return written;
}

/**
 * Writes `count` new sessions once the topology has settled, each retried while it answers 503
 * (a replica still resyncing after a reconfiguration fails a strong write) for up to `withinMs`:
 * what is shown is that writes work again without restarting the app, not which instant they do.
 */
async function writeSessionsOnceSettled(app: FixtureApp, count: number, withinMs = 10_000): Promise<Written[]> {
  const written: Written[] = [];
  const deadline = Date.now() + withinMs;
  while (written.length < count) {
    const value = `value-${written.length}-${Math.random().toString(36).slice(2)}`;
    const res = await app.http().post('/set').send({ v: value }).timeout(HANG);
    if (res.status === 503 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    expect(res.status).toBe(200);
    written.push({ cookie: requireSid(res), value });
  }
  return written;
}

/** One request the prober made: what, to which session, when it was sent and what came back. */
interface Outcome {
  kind: 'read' | 'write';
  session: number;
  sentAt: number;
  /** The HTTP status, or what went wrong instead of an answer. */
  status: string;
  /** For a write, the field and value it set. */
  field?: string;
  value?: string;
}

/**
 * Keeps reads and writes going through the app on every written session while a failover runs,
 * and records every outcome; a request that gets no answer within {@link HANG} is recorded as a
 * hang. Reads that answer 200 with the wrong data are collected apart.
 */
class Prober {
  readonly outcomes: Outcome[] = [];
  readonly wrongReads: string[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly app: FixtureApp,
    private readonly sessions: readonly Written[],
  ) {}

  start(workers = 4): void {
    this.loops = Array.from({ length: workers }, (_, worker) => this.loop(worker, workers));
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** How often each status came back, e.g. `{ '200': 52, '503': 24 }`. */
  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const { status } of this.outcomes) counts[status] = (counts[status] ?? 0) + 1;
    return counts;
  }

  /** Every outcome other than 200 and 503, with how often it happened. */
  unexpected(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.counts()).filter(([status]) => status !== '200' && status !== '503'));
  }

  /** Writes the app acknowledged. */
  acks(): Outcome[] {
    return this.outcomes.filter((o) => o.kind === 'write' && o.status === '200');
  }

  /** Writes sent after `time` to one of `sessions`. */
  writesSentAfter(time: number, sessions: readonly number[]): Outcome[] {
    return this.outcomes.filter((o) => o.kind === 'write' && o.sentAt > time && sessions.includes(o.session));
  }

  private async loop(worker: number, workers: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const session = (worker + n * workers) % this.sessions.length;
      const { cookie, value } = this.sessions[session];
      if (n % 2 === 0) {
        const res = await this.send({ kind: 'read', session }, withSid(this.app.http().get('/read'), cookie));
        if (res?.status === 200 && res.body?.data?.v !== value) this.wrongReads.push(`session ${session}: ${JSON.stringify(res.body)}`);
      } else {
        const field = `w${worker}_${n}`;
        await this.send({ kind: 'write', session, field, value: String(n) }, withSid(this.app.http().post(`/field/${field}/${n}`), cookie));
      }
      await sleep(20);
    }
  }

  private async send(what: Omit<Outcome, 'sentAt' | 'status'>, req: Test): Promise<Response | undefined> {
    const sentAt = Date.now();
    try {
      const res = await req.timeout(HANG);
      this.outcomes.push({ ...what, sentAt, status: String(res.status) });
      return res;
    } catch (error) {
      const e = error as { timeout?: number; code?: string; message?: string };
      this.outcomes.push({ ...what, sentAt, status: e.timeout ? `no answer within ${HANG} ms` : `request error ${e.code ?? e.message}` });
      return undefined;
    }
  }
}

/** Reads each listed session back through the app: its value and every acknowledged write to it. */
async function expectReadable(
  app: FixtureApp,
  sessions: readonly Written[],
  indexes: readonly number[],
  acks: readonly Outcome[] = [],
): Promise<void> {
  for (const i of indexes) {
    const { cookie, value } = sessions[i];
    const res = await withSid(app.http().get('/read'), cookie).timeout(HANG);
    const expected = Object.fromEntries([['v', value], ...acks.filter((a) => a.session === i).map((a) => [a.field, a.value])]);
    expect({ session: i, status: res.status, data: res.body.data }).toEqual({
      session: i,
      status: 200,
      data: expect.objectContaining(expected),
    });
  }
}

const indexesOf = (list: readonly unknown[]): number[] => list.map((_, i) => i);

/** Polls until a read of `session` through the app answers 200 with its value. */
function waitForService(app: FixtureApp, session: Written, timeoutMs: number): Promise<true> {
  return pollUntil(
    'a session read through the app to succeed after the promotion',
    async () => {
      const res = await withSid(app.http().get('/read'), session.cookie).timeout(HANG);
      return res.status === 200 && res.body.data?.v === session.value ? true : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/**
 * Polls until a write to `session` (`after: 'accepted'`) is acknowledged: writes refused while
 * no replica was there may still be queued in Redis ahead of it.
 */
function waitForAcknowledgedWrite(app: FixtureApp, session: Written, timeoutMs: number): Promise<true> {
  return pollUntil(
    'a strong write to be acknowledged once a replica is back',
    async () => ((await withSid(app.http().post('/field/after/accepted'), session.cookie).timeout(HANG)).status === 200 ? true : undefined),
    { timeoutMs, intervalMs: 200 },
  );
}

/** Polls until `server` is a replica of `master` with its replication link up. */
async function waitForReplica(server: RedisServer, master: RedisEndpoint, timeoutMs: number): Promise<void> {
  const client = raw.server(server);
  await pollUntil(
    `${server.port} to replicate ${master.port}`,
    async () => {
      const info = await client.info('replication');
      const ok = /role:slave/.test(info) && info.includes(`master_port:${master.port}`) && /master_link_status:up/.test(info);
      return ok ? true : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/**
 * Sends `count` strong writes at once (new sessions: a create needs no read first, so every one
 * of them reaches Redis and waits there for a replica) and, 100 ms later, reads the sessions at
 * `indexes`. Reads need no replica: they must be served whatever the writes are waiting for.
 */
async function createBurstWithReads(
  app: FixtureApp,
  count: number,
  sessions: readonly Written[],
  indexes: readonly number[],
): Promise<{ creates: Response[]; reads: Response[] }> {
  const creates = Array.from({ length: count }, (_, n) =>
    app
      .http()
      .post('/set')
      .send({ burst: n })
      .timeout(HANG)
      .then((res) => res),
  );
  await sleep(100);
  const reads = indexes.map((i) =>
    withSid(app.http().get('/read'), sessions[i].cookie)
      .timeout(HANG)
      .then((res) => res),
  );
  return { creates: await Promise.all(creates), reads: await Promise.all(reads) };
}

/** Diagnostics for anyone tuning the failover settings: `NSS_E2E_REPORT=1` prints the statuses seen. */
function report(topology: string, prober: Prober): void {
  if (process.env.NSS_E2E_REPORT) {
    process.stderr.write(`[redis-failover] ${topology}: ${JSON.stringify(prober.counts())}, ${prober.acks().length} writes acknowledged\n`);
  }
}

describe('consistency: strong through a Sentinel failover', () => {
  let topology: SentinelTopology;
  let app: FixtureApp;
  let sessions: Written[];
  let prober: Prober;
  let promoted: RedisEndpoint;

  beforeAll(async () => {
    topology = await startSentinelTopology();
    app = await createFixtureApp({
      store: {
        type: 'redis',
        sentinels: topology.sentinelEndpoints,
        name: topology.masterName,
        consistency: 'strong',
        commandTimeout: 1_000,
        replicaTimeout: 500,
      },
      storeTimeout: STORE_TIMEOUT,
    });
    sessions = await writeSessions(app, N);
  });

  afterAll(async () => {
    await app?.close();
    raw.closeAll();
    await topology?.stop();
  });

  it('answers only 200 or 503 while the master dies and a replica is promoted, and acknowledges no write after the death', async () => {
    prober = new Prober(app, sessions);
    prober.start();
    await sleep(300);

    // Killed here rather than by the harness, to know when it died; the harness then waits.
    await topology.master.kill();
    const killedAt = Date.now();
    promoted = await topology.killMasterAndWaitForFailover();
    await prober.stop();
    report('sentinel', prober);
    await waitForService(app, sessions[0], 20_000);

    expect(prober.unexpected()).toEqual({});
    expect(prober.wrongReads).toEqual([]);
    // No replica exists after the death (the promoted one has none): nothing can be acknowledged.
    const late = prober.writesSentAfter(killedAt, indexesOf(sessions));
    expect(late.length).toBeGreaterThan(0);
    expect(late.filter((w) => w.status === '200')).toEqual([]);
  });

  it('loses no acknowledged write: every session and every acknowledged field reads back through the same app', async () => {
    await expectReadable(app, sessions, indexesOf(sessions), prober.acks());
  });

  it('keeps serving reads while strong writes find no replica to acknowledge them', async () => {
    const { creates, reads } = await createBurstWithReads(app, 5, sessions, [0, 1, 2, 3, 4]);

    // No replica: every write is refused, and no cookie names a session the store did not keep.
    expect(creates.map((res) => [res.status, setCookieLine(res)])).toEqual(Array(5).fill([503, undefined]));
    expect(reads.map((res) => [res.status, res.body.data?.v])).toEqual([0, 1, 2, 3, 4].map((i) => [200, sessions[i].value]));
  });

  it('writes again once the crashed master is back as a replica of the promoted one', async () => {
    await topology.master.restart();
    await waitForReplica(topology.master, promoted, 25_000);
    await waitForAcknowledgedWrite(app, sessions[0], 20_000);

    const fresh = await writeSessionsOnceSettled(app, 3);

    await expectReadable(app, fresh, indexesOf(fresh));
    const old = await withSid(app.http().get('/read'), sessions[0].cookie).timeout(HANG).expect(200);
    expect(old.body.data).toMatchObject({ v: sessions[0].value, after: 'accepted' });
  }, 40_000);
});

describe('consistency: strong through a Cluster failover', () => {
  let topology: ClusterTopology;
  let app: FixtureApp;
  let sessions: Written[];
  /** The sessions whose slots the master that dies serves. */
  let affected: number[];
  let victim: RedisServer;
  let prober: Prober;
  let promoted: RedisEndpoint;

  beforeAll(async () => {
    topology = await startClusterTopology();
    app = await createFixtureApp({
      store: { type: 'redis', cluster: topology.startupNodes, consistency: 'strong', commandTimeout: 1_000, replicaTimeout: 500 },
      storeTimeout: STORE_TIMEOUT,
    });
    // A new Cluster's replicas may still be finishing their first sync, and until then a strong
    // write's WAIT 1 gets no acknowledgement (503): the sessions are written once it does.
    sessions = await writeSessionsOnceSettled(app, N);
    const node = raw.server(topology.nodes[0]);
    const owners = await Promise.all(sessions.map(({ cookie }) => masterOf(node, topology, sessionKeyOf(cookie))));
    victim = owners[0];
    affected = indexesOf(sessions).filter((i) => owners[i] === victim);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    raw.closeAll();
    await topology?.stop();
  });

  it('answers only 200 or 503 while the master of a session slot dies, and acknowledges no write to its slots after the death', async () => {
    prober = new Prober(app, sessions);
    prober.start();
    await sleep(300);

    // Killed here rather than by the harness, to know when it died; the harness then waits.
    await victim.kill();
    const killedAt = Date.now();
    promoted = await topology.killMasterOfKeyAndWaitForFailover(sessionKeyOf(sessions[0].cookie));
    // A fast failover can end before a worker's turn came to write to one of the dead master's
    // sessions: keep probing until one did (the promoted master has no replica yet either).
    await pollUntil(
      'a write to a session of the dead master',
      async () => (prober.writesSentAfter(killedAt, affected).length > 0 ? true : undefined),
      {
        timeoutMs: 15_000,
      },
    );
    await prober.stop();
    report('cluster', prober);
    await waitForService(app, sessions[0], 20_000);

    expect(prober.unexpected()).toEqual({});
    expect(prober.wrongReads).toEqual([]);
    const late = prober.writesSentAfter(killedAt, affected);
    expect(late.length).toBeGreaterThan(0);
    expect(late.filter((w) => w.status === '200')).toEqual([]);
  });

  it('loses no acknowledged write: every session and every acknowledged field reads back through the same app', async () => {
    await expectReadable(app, sessions, indexesOf(sessions), prober.acks());
  });

  it('keeps serving reads on the promoted master while strong writes to it find no replica', async () => {
    // About a third of the new sessions land on the promoted master's slots, and wait there.
    const { creates, reads } = await createBurstWithReads(app, 24, sessions, affected);

    expect(reads.map((res) => [res.status, res.body.data?.v])).toEqual(affected.map((i) => [200, sessions[i].value]));
    expect(creates.filter((res) => res.status !== 200 && res.status !== 503)).toEqual([]);
    // A session the app acknowledged was kept by a master that has a replica, never the promoted one.
    const node = raw.server(promoted);
    const acknowledged = creates.filter((res) => res.status === 200).map((res) => sessionKeyOf(requireSid(res)));
    for (const key of acknowledged) expect((await masterOf(node, topology, key)).port).not.toBe(promoted.port);
  });

  it('writes to those slots again once the crashed node is back as a replica', async () => {
    await victim.restart();
    await waitForReplica(victim, promoted, 20_000);
    await waitForAcknowledgedWrite(app, sessions[0], 20_000);
    const fresh = await writeSessionsOnceSettled(app, 10);

    await expectReadable(app, fresh, indexesOf(fresh));
    const old = await withSid(app.http().get('/read'), sessions[0].cookie).timeout(HANG).expect(200);
    expect(old.body.data).toMatchObject({ v: sessions[0].value, after: 'accepted' });
  });

  it('follows a graceful failover (CLUSTER FAILOVER) at once: strong writes to the moved slots are acknowledged', async () => {
    // The crashed node, now a replica of the promoted one, takes its slots back: no outage, no
    // lost write, both nodes up, so nothing justifies a 503.
    const replica = raw.server(victim);
    let nextAttempt = 0;
    await pollUntil(
      'a graceful failover (CLUSTER FAILOVER) to complete',
      async () => {
        if (((await replica.call('ROLE')) as unknown[])[0] === 'master') return true;
        // The masters refuse to vote again for these slots within 2 × node-timeout of the last
        // failover, and a manual failover gives up after 5 s: then ask again.
        if (Date.now() >= nextAttempt) {
          await replica.call('CLUSTER', 'FAILOVER');
          nextAttempt = Date.now() + 6_000;
        }
        return undefined;
      },
      { timeoutMs: 20_000 },
    );
    const demoted = topology.nodes.find((n) => n.port === promoted.port)!;
    await waitForReplica(demoted, victim, 10_000);

    // New sessions only: a create reads nothing first, so it meets the moved slots with a write.
    const creates = await Promise.all(Array.from({ length: 24 }, (_, n) => app.http().post('/set').send({ graceful: n }).timeout(HANG)));

    expect(creates.map((res) => res.status)).toEqual(Array(24).fill(200));
    for (const [n, res] of creates.entries()) {
      const read = await withSid(app.http().get('/read'), requireSid(res)).timeout(HANG).expect(200);
      expect(read.body.data).toEqual({ graceful: n });
    }
  });
});

/** The node, as the topology started it, that is master of `key`'s slot right now, as the live `node` sees it. */
async function masterOf(node: Redis, topology: ClusterTopology, key: string): Promise<RedisServer> {
  const slot = Number(await node.call('CLUSTER', 'KEYSLOT', key));
  const slots = (await node.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
  const owner = slots.find(([from, to]) => slot >= from && slot <= to);
  const server = topology.nodes.find((n) => n.port === owner?.[2][1]);
  if (!server) throw new Error(`no node of the topology serves slot ${slot} (${JSON.stringify(slots)})`);
  return server;
}
