import 'reflect-metadata';
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { deriveKey } from '../../lib/crypto/index.js';
import { closeAll, cookieHeader, createFixtureApp, PLATFORMS, requireSid, SECRET } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * Traversal-shaped session ids sent over HTTP to an app on the file store, signed with the app's
 * own secret (as an attacker who knew it could) or not: none reads or creates a file outside the
 * store's directory, and each request is an anonymous session, never a 5xx.
 */

/** A cookie value `id.signature` signed the way the library signs, whatever the id. */
const signedWithSecret = (id: string): string => `${id}.${createHmac('sha256', deriveKey(SECRET, 'signed-id')).update(id).digest('base64url')}`;

const TRAVERSALS = [
  '../outside/decoy',
  '../../outside/decoy',
  '..%2F..%2Foutside%2Fdecoy',
  '/tmp/outside/decoy',
  'sessions/../../outside/decoy',
  '..\\..\\outside\\decoy',
  `${'a'.repeat(40)}/..`,
  `..${'A'.repeat(41)}`,
];

describe.each(PLATFORMS)('FileStore behind HTTP, against traversal-shaped ids (%s)', (platform) => {
  let root: string;
  let directory: string;
  let outside: string;
  let app: FixtureApp;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'nss-traversal-'));
    directory = join(root, 'store');
    outside = join(root, 'outside');
    await mkdir(outside);
    // A decoy that would be read as a session if a path ever escaped the store's directory.
    const decoy = JSON.stringify({ v: 1, c: Date.now(), s: Date.now(), e: Date.now() + 3_600_000, u: 'victim', d: { userId: 'victim' } });
    await writeFile(join(outside, 'decoy'), decoy);
    await writeFile(join(outside, 'decoy.json'), decoy);
    app = await createFixtureApp({ store: { type: 'file', directory } }, { platform });
  });

  afterAll(async () => {
    await closeAll([app]);
    await rm(root, { recursive: true, force: true });
  });

  for (const id of TRAVERSALS) {
    for (const [how, value] of [
      ['signed', signedWithSecret(id)],
      ['unsigned', `${id}.x`],
    ] as const) {
      it(`treats ${how} ${JSON.stringify(id)} as anonymous and touches nothing outside the directory`, async () => {
        const before = await readdir(outside);

        const read = await app
          .http()
          .get('/read')
          .set('Cookie', cookieHeader(encodeURIComponent(value)));
        const guarded = await app
          .http()
          .get('/guarded')
          .set('Cookie', cookieHeader(encodeURIComponent(value)));
        const write = await app
          .http()
          .post('/set')
          .set('Cookie', cookieHeader(encodeURIComponent(value)))
          .send({ a: 1 });

        expect(read.status).toBe(200);
        expect(read.body.data).toEqual({});
        expect(guarded.status).toBe(401);
        expect(write.status).toBe(200);
        // The write started a fresh session with an id of the library's own.
        expect(requireSid(write)).not.toContain(id);
        expect(await readdir(outside)).toEqual(before);
        expect((await readdir(root)).sort()).toEqual(['outside', 'store']);
      });
    }
  }
});
