import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import { PLATFORMS, requireSid } from '../fixtures/index.js';
import { RawClients, startSampleNode, withSid } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';

/**
 * What one HTTP request costs in Redis commands (SPEC §3.3), as the server saw them: no
 * credential, no command; a read that changes nothing, one HGETALL; a change, that read plus one
 * script. MONITOR on the throwaway server reports every command with its source, so commands a
 * script runs inside (source "lua") are told apart from the ones a client sent.
 */

const raw = new RawClients();

describe.each(PLATFORMS)('Redis commands per request on the sample (%s)', (platform) => {
  let server: RedisServer;
  let node: SampleNode;
  let redis: Redis;
  let monitor: Redis;
  const seen: { name: string; args: string[]; source: string }[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    node = await startSampleNode({ SESSION_STORE: 'redis', REDIS_URL: server.url }, platform);
    redis = raw.server(server);
    monitor = await redis.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => seen.push({ name: String(args[0]).toLowerCase(), args, source }));
  });

  afterAll(async () => {
    monitor?.disconnect();
    await node?.close();
    raw.closeAll();
    await server?.stop();
  });

  /** Commands clients sent while `request` ran, by name (the test's own markers left out). */
  async function commandsOf(request: () => Promise<unknown>): Promise<Record<string, number>> {
    const before = await mark();
    await request();
    const after = await mark();
    const calls: Record<string, number> = {};
    for (const { name, source } of seen.slice(before + 1, after)) {
      if (source !== 'lua') calls[name] = (calls[name] ?? 0) + 1;
    }
    return calls;
  }

  /** Sends a uniquely named ECHO and waits until MONITOR reports it: its position in `seen`. */
  async function mark(): Promise<number> {
    const marker = `mark-${Math.random()}`;
    await redis.echo(marker);
    for (let waited = 0; waited < 2000; waited += 10) {
      const at = seen.findIndex(({ name, args }) => name === 'echo' && args[1] === marker);
      if (at >= 0) return at;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('MONITOR did not report the marker');
  }

  it('sends no command for a request without a session cookie', async () => {
    expect(await commandsOf(() => node.http().get('/session').expect(200))).toEqual({});
  });

  it('sends one HGETALL for a request that only reads an anonymous session', async () => {
    const cookie = requireSid(await node.http().post('/visits').expect(200));
    // Scripts travel as EVAL once per connection, EVALSHA afterwards: warm the connection up.
    await withSid(node.http().post('/visits'), cookie).expect(200);

    expect(await commandsOf(() => withSid(node.http().get('/session'), cookie).expect(200))).toEqual({ hgetall: 1 });
  });

  it('sends one HGETALL and one EVALSHA for a request that changes a field', async () => {
    const cookie = requireSid(await node.http().post('/visits').expect(200));
    await withSid(node.http().post('/visits'), cookie).expect(200);

    expect(await commandsOf(() => withSid(node.http().post('/visits'), cookie).expect(200))).toEqual({ hgetall: 1, evalsha: 1 });
  });

  it('sends one HGETALL and one EVALSHA for a change to a signed-in session: the user index needs no refresh yet', async () => {
    const cookie = requireSid(await node.http().post('/auth/login').send({ username: 'changer', password: 'demo' }).expect(200));
    await withSid(node.http().post('/visits'), cookie).expect(200);

    expect(await commandsOf(() => withSid(node.http().post('/visits'), cookie).expect(200))).toEqual({ hgetall: 1, evalsha: 1 });
  });

  it('sends one HGETALL for a guarded read of a signed-in session', async () => {
    const cookie = requireSid(await node.http().post('/auth/login').send({ username: 'counted', password: 'demo' }).expect(200));

    expect(await commandsOf(() => withSid(node.http().get('/profile'), cookie).expect(200))).toEqual({ hgetall: 1 });
  });
});
