import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { sign } from 'cookie-signature';
import { startSampleNode } from '../fixtures/redis-apps.js';
import type { SampleNode } from '../fixtures/redis-apps.js';
import { RawClients } from '../fixtures/redis-apps.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';
import { Rng, seedFromEnv } from './prng.js';

/**
 * Forged express-session cookies against the `legacy` option: a genuine old cookie is mangled
 * in every way an attacker can (a character changed, dropped or added anywhere, the id and the
 * signature swapped between two real cookies, other secrets, other encodings, the prefix
 * dropped) and sent to the sample. Whatever the cookie: no 5xx, and no sign-in unless it is
 * byte for byte the genuine one (or decodes to it); the old sessions stay in their store until
 * their own cookies come. Seeded: `FUZZ_SEED=<n>` replays a run.
 */

const SEED = seedFromEnv(process.env, 20_261_204);
const MUTATIONS = Number(process.env.FUZZ_REQUESTS) || 1_500;
const SECRET = 'keyboard cat';

const raw = new RawClients();
let redis: RedisServer;
let node: SampleNode;

interface OldUser {
  user: string;
  id: string;
  /** `s:<id>.<signature>`, before URL encoding. */
  signed: string;
}

async function oldUser(user: string): Promise<OldUser> {
  const id = randomBytes(24).toString('base64url');
  await raw.server(redis).set(`sess:${id}`, JSON.stringify({ cookie: { path: '/' }, userId: user }), 'EX', 3600);
  return { user, id, signed: `s:${sign(id, SECRET)}` };
}

/** One mangled form of `victim`'s signed value (`other` lends its id or signature). */
function mutate(rng: Rng, victim: OldUser, other: OldUser): string {
  const text = victim.signed;
  const at = rng.int(0, text.length - 1);
  const dot = text.lastIndexOf('.');
  return rng.weighted<() => string>([
    [4, () => text.slice(0, at) + rng.otherBase64urlChar(text[at]) + text.slice(at + 1)],
    [2, () => text.slice(0, at) + text.slice(at + 1)],
    [2, () => text.slice(0, at) + rng.base64url(1) + text.slice(at)],
    [2, () => text.slice(0, dot) + other.signed.slice(other.signed.lastIndexOf('.'))],
    [2, () => other.signed.slice(0, other.signed.lastIndexOf('.')) + text.slice(dot)],
    [2, () => `s:${sign(victim.id, rng.pick(['keyboard', 'keyboard cat ', 'Keyboard cat', rng.base64url(12)]))}`],
    [1, () => text.slice(2)],
    [1, () => `S:${text.slice(2)}`],
    [1, () => `${text}=`],
    [1, () => `${text}.${rng.base64url(4)}`],
    [1, () => text.slice(0, rng.int(0, text.length - 1))],
    [1, () => rng.headerText(rng.int(1, 80))],
  ])();
}

beforeAll(async () => {
  redis = await startRedisServer();
  node = await startSampleNode({ SESSION_STORE: 'redis', REDIS_URL: redis.url, SESSION_LEGACY: 'connect-redis', SESSION_LEGACY_SECRET: SECRET });
});

afterAll(async () => {
  await node?.close();
  raw.closeAll();
  await redis?.stop();
});

describe('Forged express-session cookies (seeded)', () => {
  it(`sign nobody in and take no session over: ${MUTATIONS} mangled cookies, seed ${SEED}`, async () => {
    const rng = new Rng(SEED);
    const users = await Promise.all(['victim-a', 'victim-b', 'victim-c'].map(oldUser));
    const genuine = new Set(users.map((u) => u.signed));
    const answers = new Map<number, number>();
    const signedIn: string[] = [];

    for (let n = 0; n < MUTATIONS; n++) {
      const victim = rng.pick(users);
      const forged = mutate(rng, victim, rng.pick(users.filter((u) => u !== victim)));
      // A mutation that lands on a genuine value (a change undone) is no forgery.
      if (genuine.has(forged)) continue;
      const res = await node
        .http()
        .get('/profile')
        .set('Cookie', `connect.sid=${encodeURIComponent(forged)}`);
      answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
      if (res.status === 200) signedIn.push(`${forged} -> ${JSON.stringify(res.body)}`);
    }

    expect(signedIn).toEqual([]);
    expect([...answers.keys()]).toEqual([401]);
    for (const user of users) expect(await raw.server(redis).exists(`sess:${user.id}`)).toBe(1);
    // The genuine cookies still work after all that: the forgeries took nothing.
    for (const user of users) {
      await node
        .http()
        .get('/profile')
        .set('Cookie', `connect.sid=${encodeURIComponent(user.signed)}`)
        .expect(200, { userId: user.user });
    }
  });
});
