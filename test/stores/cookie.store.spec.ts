import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { SessionConfigError, SessionStoreUnsupportedError, SessionTooLargeError } from '../../lib/session.errors.js';
import { CookieStore, createSessionStore, MAX_CREDENTIAL_BYTES } from '../../lib/stores/index.js';
import type { StoredSession } from '../../lib/stores/session-store.js';
import { describeSessionStoreConformance } from '../../lib/testing/index.js';

const SECRET = 'cookie-store-secret-0123456789abcdefgh';
const NEW_SECRET = 'cookie-store-new-secret-9876543210zyxw';
const OTHER_SECRET = 'cookie-store-other-secret-qwertyuiopasdf';
const HOUR = 60 * 60_000;

/**
 * The cookie store as one client sees it: the conformance suite plays a browser holding many
 * cookies. What a stateless store cannot do is declared, and the suite checks it fails clearly.
 */
describeSessionStoreConformance('CookieStore', {
  createStore: async () => (await CookieStore.create({ secret: SECRET })).forClient(),
  // A session of MAX_SESSION_FIELDS fields is far past the 4096 bytes one cookie carries.
  unsupported: ['listByUser', 'destroyByUser', 'concurrentFieldMerge', 'expiryEvents', 'maxSessionFields'],
});

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return {
    id: randomBytes(32).toString('base64url'),
    data: { userId: 'u1', theme: 'dark' },
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + HOUR,
    userId: 'u1',
    ...overrides,
  };
}

/** A client of `store` holding `session`, and the seal its cookie would carry. */
async function sealed(store: CookieStore, session = newSession()): Promise<{ session: StoredSession; seal: string }> {
  const client = store.forClient();
  await client.create(session);
  return { session, seal: client.sealedOf(session.id)! };
}

const segments = (seal: string): string[] => seal.split('.');
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const replaceAt = (text: string, position: number, c: string): string => text.slice(0, position) + c + text.slice(position + 1);
const flipLowestBit = (text: string, position: number): string => replaceAt(text, position, BASE64URL[BASE64URL.indexOf(text[position]) ^ 1]);
const decodeSegment = (segment: string): string => Buffer.from(segment, 'base64url').toString('latin1');

describe('CookieStore', () => {
  describe('sealing', () => {
    it('seals a session as a compact JWE (dir, A256GCM) whose payload cannot be read', async () => {
      const store = await CookieStore.create({ secret: SECRET });
      const { seal } = await sealed(store, newSession({ data: { userId: 'u1', secretNote: 'launch-codes' } }));

      const [header, encryptedKey, iv, ciphertext, tag] = segments(seal);
      expect(JSON.parse(decodeSegment(header))).toMatchObject({ alg: 'dir', enc: 'A256GCM' });
      expect(encryptedKey).toBe('');
      expect([iv, ciphertext, tag].every((part) => part.length > 0)).toBe(true);
      expect(seal).not.toContain('launch-codes');
      expect(decodeSegment(ciphertext)).not.toContain('launch-codes');
    });

    it('is opened by another instance with the same secret: any node opens any session', async () => {
      const { session, seal } = await sealed(await CookieStore.create({ secret: SECRET }));
      const otherNode = (await CookieStore.create({ secret: SECRET })).forClient();

      await expect(otherNode.open(seal)).resolves.toEqual({ id: session.id, stale: false });
      await expect(otherNode.get(session.id)).resolves.toMatchObject({ data: session.data, userId: 'u1' });
    });

    it('is not opened with a different secret', async () => {
      const { seal } = await sealed(await CookieStore.create({ secret: SECRET }));
      const stranger = (await CookieStore.create({ secret: OTHER_SECRET })).forClient();

      await expect(stranger.open(seal)).resolves.toBeNull();
    });

    it('seals with the first secret and opens with every one, marking a seal of an older secret stale', async () => {
      const { session, seal } = await sealed(await CookieStore.create({ secret: SECRET }));
      const rotated = await CookieStore.create({ secret: [NEW_SECRET, SECRET] });
      const client = rotated.forClient();

      await expect(client.open(seal)).resolves.toEqual({ id: session.id, stale: true });
      await client.commit(session.id, { set: {}, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });
      const resealed = client.sealedOf(session.id)!;
      await expect((await CookieStore.create({ secret: NEW_SECRET })).forClient().open(resealed)).resolves.toEqual({
        id: session.id,
        stale: false,
      });
    });

    it('does not open a seal once the secret that made it is removed', async () => {
      const { seal } = await sealed(await CookieStore.create({ secret: SECRET }));
      const retired = (await CookieStore.create({ secret: NEW_SECRET })).forClient();

      await expect(retired.open(seal)).resolves.toBeNull();
    });

    it('does not open an expired seal, whatever the client does with its cookie', async () => {
      const past = Date.now() - HOUR;
      const { seal } = await sealed(
        await CookieStore.create({ secret: SECRET }),
        newSession({ createdAt: past, lastSeenAt: past, expiresAt: Date.now() - 1 }),
      );

      await expect((await CookieStore.create({ secret: SECRET })).forClient().open(seal)).resolves.toBeNull();
    });
  });

  describe('tampering', () => {
    it('opens nothing from a seal with any single character changed, in any of its five parts, spare bits included', async () => {
      const store = await CookieStore.create({ secret: SECRET });
      const { seal } = await sealed(store);
      const client = store.forClient();

      // Every segment boundary and a spread of positions inside each segment. Flipping the
      // lowest bit of a part's last character changes only base64url's spare bits: still refused.
      const positions = new Set<number>();
      for (let i = 0; i < seal.length; i += 7) positions.add(i);
      for (const [i, c] of [...seal].entries()) if (c === '.') [i - 1, i + 1].forEach((p) => positions.add(p));
      positions.add(seal.length - 1);
      for (const position of positions) {
        if (seal[position] === '.') continue;
        for (const tampered of [flipLowestBit(seal, position), replaceAt(seal, position, seal[position] === 'A' ? 'w' : 'A')]) {
          await expect(client.open(tampered)).resolves.toBeNull();
        }
      }
    });

    it('opens nothing from a truncated seal, swapped parts, or parts of two seals spliced together', async () => {
      const store = await CookieStore.create({ secret: SECRET });
      const first = (await sealed(store)).seal;
      const second = (await sealed(store, newSession({ userId: 'u2', data: { userId: 'u2' } }))).seal;
      const client = store.forClient();
      const [h, k, iv, c, t] = segments(first);
      const other = segments(second);

      const forgeries = [
        first.slice(0, -1),
        first.slice(0, first.length / 2),
        [h, k, iv, t, c].join('.'),
        [h, k, c, iv, t].join('.'),
        [h, k, iv, other[3], t].join('.'),
        [h, k, other[2], c, t].join('.'),
        [h, k, iv, c, other[4]].join('.'),
        `${first}.`,
        [h, k, iv, c].join('.'),
      ];
      for (const forgery of forgeries) await expect(client.open(forgery)).resolves.toBeNull();
    });

    it('opens nothing from a seal whose header names another algorithm, and nothing from garbage', async () => {
      const store = await CookieStore.create({ secret: SECRET });
      const { seal } = await sealed(store);
      const client = store.forClient();
      const [header, ...rest] = segments(seal);
      const headerWith = (fields: object) => Buffer.from(JSON.stringify({ ...JSON.parse(decodeSegment(header)), ...fields })).toString('base64url');

      for (const fields of [{ alg: 'none' }, { enc: 'A128GCM' }, { alg: 'A256KW' }, { kid: 'someone' }, { zip: 'DEF' }]) {
        await expect(client.open([headerWith(fields), ...rest].join('.'))).resolves.toBeNull();
      }
      for (const garbage of ['', '....', 'not-a-seal', 'a.b.c.d.e', `${'A'.repeat(40)}.${'B'.repeat(40)}`]) {
        await expect(client.open(garbage)).resolves.toBeNull();
      }
    });
  });

  describe('size', () => {
    it('refuses to seal a session larger than a cookie can carry, with a 413 that says so, holding nothing', async () => {
      const client = (await CookieStore.create({ secret: SECRET })).forClient();
      const session = newSession({ data: { blob: 'x'.repeat(MAX_CREDENTIAL_BYTES) } });

      const creating = client.create(session);

      await expect(creating).rejects.toBeInstanceOf(SessionTooLargeError);
      await expect(creating).rejects.toMatchObject({ status: 413, message: expect.stringContaining('4096-byte limit') });
      await expect(client.get(session.id)).resolves.toBeNull();
    });

    it('leaves the session as it was when a commit would make it too large', async () => {
      const client = (await CookieStore.create({ secret: SECRET })).forClient();
      const session = newSession();
      await client.create(session);
      const before = client.sealedOf(session.id);

      const committing = client.commit(session.id, {
        set: { blob: 'y'.repeat(5000) },
        unset: [],
        expiresAt: session.expiresAt,
        lastSeenAt: Date.now(),
      });

      await expect(committing).rejects.toBeInstanceOf(SessionTooLargeError);
      expect(client.sealedOf(session.id)).toBe(before);
      await expect(client.get(session.id)).resolves.toMatchObject({ data: session.data });
    });
  });

  describe('construction', () => {
    it('needs secrets of at least 32 characters, naming the fix', async () => {
      await expect(CookieStore.create({ secret: 'short' })).rejects.toBeInstanceOf(SessionConfigError);
      await expect(CookieStore.create({ secret: 'short' })).rejects.toThrow(/at least 32 characters/);
    });

    it('is made by createSessionStore from { type: "cookie" } with the module secrets, and refuses without them', async () => {
      await expect(createSessionStore({ type: 'cookie' }, [SECRET])).resolves.toBeInstanceOf(CookieStore);
      await expect(createSessionStore({ type: 'cookie' })).rejects.toThrow(/needs the module's secret/);
    });

    it('holds no sessions on the shared instance: its data calls reject, saying to take a client view', async () => {
      const store = await CookieStore.create({ secret: SECRET });

      await expect(store.get(newSession().id)).rejects.toBeInstanceOf(SessionStoreUnsupportedError);
      await expect(store.create(newSession())).rejects.toThrow(/forClient\(\)/);
    });
  });
});
