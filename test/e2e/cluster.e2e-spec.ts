import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import type { Response } from 'supertest';
import { pollUntil } from '../../sample/cluster-demo/processes.js';
import { SERVED_BY_HEADER, startRoundRobinProxy, type RoundRobinProxy } from '../../sample/cluster-demo/round-robin-proxy.js';
import { requireSid } from '../fixtures/cookies.js';
import { PLATFORMS } from '../fixtures/platforms.js';
import { startRedisServer, type RedisServer } from '../support/redis-topology.js';
import { compileOnce, startSampleProcess, stopAllSampleProcesses, type SampleProcess } from '../support/sample-process.js';

/**
 * What `npm run demo:cluster` shows, as a test: the sample application as THREE OS PROCESSES on
 * one throwaway Redis, behind the demo's round-robin proxy (started in this process). A session
 * signed in through the proxy is served by every node in turn, concurrent writes spread over the
 * nodes all survive, and a node killed with SIGKILL (no shutdown hook runs) takes nothing with it:
 * the proxy moves on to the survivors and every session and field is still there, through the
 * proxy and on each surviving node directly.
 *
 * The tests run in order and build on one another: alice's session lives through all of them.
 */

/** One secret for every node, as a real deployment shares it. */
const SECRET = 'cluster-e2e-secret-0123456789abcdefghijklmn';
const FIELDS = 30;
const USERS = ['user-1', 'user-2', 'user-3', 'user-4', 'user-5'];

const servedBy = (res: Response): string => String(res.headers[SERVED_BY_HEADER.toLowerCase()]);
const withSid = <T extends { set(name: string, value: string): T }>(req: T, cookie: string): T =>
  req.set('Cookie', `sid=${encodeURIComponent(cookie)}`);
/** The 30 fields the concurrent writes set: `pref:k0` = 0 … `pref:k29` = 29. */
const allFields = (): Record<string, number> => Object.fromEntries(Array.from({ length: FIELDS }, (_, i) => [`pref:k${i}`, i]));

describe('three sample nodes on one Redis behind a round-robin proxy, on Express and on Fastify', () => {
  let redis: RedisServer;
  let nodes: SampleProcess[];
  let proxy: RoundRobinProxy;
  let alice: string;
  /** Nodes the proxy gave up on and moved past, in order. */
  const failovers: string[] = [];
  const names = ['node-1', 'node-2', 'node-3'];
  const viaProxy = () => request(proxy.url);

  beforeAll(async () => {
    // The compile is the slow part; start it while Redis comes up.
    const compiling = compileOnce();
    redis = await startRedisServer();
    await compiling;
    const env = { SESSION_STORE: 'redis', REDIS_URL: redis.url, SESSION_SECRET: SECRET };
    // Node 2 runs on Fastify, the others on Express: one fleet, both platforms.
    nodes = await Promise.all(names.map((_, i) => startSampleProcess({ ...env, HTTP_ADAPTER: PLATFORMS[i % 2] })));
    proxy = await startRoundRobinProxy(
      nodes.map((node, i) => ({ name: names[i], url: node.url })),
      { onFailover: (node) => failovers.push(node.name) },
    );

    alice = requireSid(await viaProxy().post('/auth/login').send({ username: 'alice', password: 'demo' }).expect(200));
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await stopAllSampleProcesses();
    await redis?.stop();
  });

  it('serves 30 reads of /profile from all three nodes in turn, each 200 for the signed-in user', async () => {
    expect(nodes.map((node) => node.pid)).toHaveLength(3);
    expect(new Set(nodes.map((node) => node.pid)).size).toBe(3);

    const served: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await withSid(viaProxy().get('/profile'), alice).expect(200, { userId: 'alice' });
      served.push(servedBy(res));
    }

    for (const name of names) expect(served).toContain(name);
    expect(served.every((name) => names.includes(name))).toBe(true);
  });

  it('keeps all 30 concurrent field writes made through the proxy, whichever node took each', async () => {
    const writes = await Promise.all(
      Array.from({ length: FIELDS }, (_, i) =>
        withSid(viaProxy().put(`/prefs/k${i}`), alice)
          .send({ value: i })
          .expect(200),
      ),
    );

    expect(new Set(writes.map(servedBy))).toEqual(new Set(names));
    const { body } = await withSid(viaProxy().get('/session'), alice).expect(200);
    expect(body.data).toEqual({ userId: 'alice', ...allFields() });
  });

  it('keeps every session and field when a node is killed', async () => {
    // Five more users, signed in and each writing a field through the proxy before the crash.
    const cookies = new Map<string, string>();
    for (const user of USERS) {
      const cookie = requireSid(await viaProxy().post('/auth/login').send({ username: user, password: 'demo' }).expect(200));
      await withSid(viaProxy().put('/prefs/owner'), cookie).send({ value: user }).expect(200);
      cookies.set(user, cookie);
    }

    // SIGKILL: no shutdown hook, no store close, as when a machine dies.
    const [first, victim, third] = nodes;
    process.kill(victim.pid, 'SIGKILL');
    await pollUntil(
      async (note) => {
        try {
          const res = await victim.http().get('/health').timeout(1_000);
          note(`still answers ${res.status}`);
          return false;
        } catch (error) {
          note(String((error as NodeJS.ErrnoException).code ?? error));
          return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
        }
      },
      { timeoutMs: 10_000, what: 'the killed node to refuse connections' },
    );

    // Through the proxy: no request fails, the dead node serves none, the survivors share them.
    const served: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await withSid(viaProxy().get('/profile'), alice).expect(200, { userId: 'alice' });
      served.push(servedBy(res));
    }
    expect(served).not.toContain('node-2');
    expect(served).toContain('node-1');
    expect(served).toContain('node-3');
    // …because the proxy did try the dead node, and moved each such request on to a survivor.
    expect(failovers).toContain('node-2');
    expect(new Set(failovers)).toEqual(new Set(['node-2']));
    const { body } = await withSid(viaProxy().get('/session'), alice).expect(200);
    expect(body.data).toEqual({ userId: 'alice', ...allFields() });

    // On each surviving node directly: the same session, every field.
    for (const node of [first, third]) {
      await withSid(node.http().get('/profile'), alice).expect(200, { userId: 'alice' });
      const direct = await withSid(node.http().get('/session'), alice).expect(200);
      expect(direct.body.data).toEqual({ userId: 'alice', ...allFields() });
    }

    // Every other user's session too, through the proxy and on each survivor.
    for (const [user, cookie] of cookies) {
      await withSid(viaProxy().get('/profile'), cookie).expect(200, { userId: user });
      for (const node of [first, third]) {
        await withSid(node.http().get('/session'), cookie).expect(200, { data: { userId: user, 'pref:owner': user } });
      }
    }
  });
});
