import { randomBytes } from 'node:crypto';
import { sealedAtRest } from '../stores/sealed-at-rest.js';
import type { SessionStore, StoredSession } from '../stores/session-store.js';
import type { ConformanceFramework } from './test-framework.js';

/**
 * What a reader of a store's storage sees (SPEC §3.11): the cases {@link describeSessionStoreConformance}
 * adds for a store given a `dump` hook. They write through the module's sealed-at-rest view of the
 * store, as the module does, then read the store's whole storage back through the hook and look
 * for what must not be there: the session id a client holds, and, with `encryptionKeys`, any
 * field value, user id or client record in the clear. They also check key rotation: a session
 * written back under the new key outlives the old key; one never written back reads as absent.
 */

/** Everything a store holds, as text: every key and value, row, file name and file content. */
export type StoreDump = (store: SessionStore) => Promise<string>;

/** What the at-rest cases need from the suite around them. */
export interface AtRestContext {
  framework: ConformanceFramework;
  store: () => SessionStore;
  dump: StoreDump;
  lifetime: number;
  /** Whether the store reports expiries (not declared `unsupported: ['expiryEvents']`), and how soon a short-lived session expires and is reported. */
  expiries: { reported: boolean; shortLifetime: number; deadline: number };
}

/** The warnings of unreadable sessions are expected here: the cases check the reads themselves. */
const quiet = { log: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
const newKey = (): Buffer => randomBytes(32);
const newId = (): string => randomBytes(32).toString('base64url');
/** A value no store could hold by chance: finding it in a dump means it is there in the clear. */
const marker = (what: string): string => `${what}-${randomBytes(12).toString('hex')}`;
/** What a read-back session of a store shows besides its data: hidden here, the cases compare data. */
const dataOf = (session: StoredSession | null): unknown => session?.data ?? null;

export function describeAtRestCases({ framework, store, dump, lifetime, expiries }: AtRestContext): void {
  const { describe, it, expect } = framework;

  /** A session as the pipeline would create it: the id the client holds, stored under its key. */
  function sessionFor(target: SessionStore, id: string, data: Record<string, unknown>, userId: string | null): StoredSession {
    const now = Date.now();
    return { id: target.keyOf(id), data, createdAt: now, lastSeenAt: now, expiresAt: now + lifetime, userId, client: null };
  }

  describe('at rest', () => {
    it('keeps no session id, only its key, wherever it keeps the session and its user', async () => {
      const plain = sealedAtRest(store(), [], quiet);
      const id = newId();
      const session = sessionFor(plain, id, { visits: 1 }, marker('user'));
      await plain.create(session);

      const everything = await dump(store());

      // The dump must see the session at all, or the next check proves nothing.
      expect(everything).toContain(session.id);
      expect(everything).not.toContain(id);
      expect(session.id).not.toBe(id);
      await plain.destroy(session.id);
    });

    it('with encryptionKeys, keeps no field value, user id or client record in the clear, and reads them back whole', async () => {
      const sealed = sealedAtRest(store(), [newKey()], quiet);
      const [secret, nested, added, userId, userAgent] = ['secret', 'nested', 'added', 'user', 'agent'].map(marker);
      const session = { ...sessionFor(sealed, newId(), { secret, profile: { nested } }, userId), client: { userAgent, ip: '198.51.100.23' } };
      await sealed.create(session);
      await sealed.commit(session.id, { set: { added }, unset: [], expiresAt: session.expiresAt, lastSeenAt: Date.now() });

      const everything = await dump(store());

      expect(everything).toContain(session.id);
      for (const clear of [secret, nested, added, userId, userAgent, '198.51.100.23']) expect(everything).not.toContain(clear);
      const read = await sealed.get(session.id);
      expect(read).toMatchObject({ data: { secret, profile: { nested }, added }, userId, client: { userAgent, ip: '198.51.100.23' } });
      expect((await sealed.listByUser(userId)).map((summary) => [summary.id, summary.client])).toEqual([
        [session.id, { userAgent, ip: '198.51.100.23' }],
      ]);
      await sealed.destroy(session.id);
    });

    it('reads as absent a sealed value moved to another session, without an error', async () => {
      const sealed = sealedAtRest(store(), [newKey()], quiet);
      const from = sessionFor(sealed, newId(), { role: 'admin' }, null);
      const to = sessionFor(sealed, newId(), { role: 'guest' }, null);
      await sealed.create(from);
      await sealed.create(to);
      const moved = (await store().get(from.id))!.data.role;

      await store().commit(to.id, { set: { role: moved }, unset: [], expiresAt: to.expiresAt, lastSeenAt: Date.now() });

      await expect(sealed.get(to.id)).resolves.toBeNull();
      expect(dataOf(await sealed.get(from.id))).toEqual({ role: 'admin' });
      await sealed.destroy(from.id);
      await sealed.destroy(to.id);
    });

    it('reads as absent, without keys, a session written with encryptionKeys', async () => {
      const sealed = sealedAtRest(store(), [newKey()], quiet);
      const session = sessionFor(sealed, newId(), { isAdmin: false }, null);
      await sealed.create(session);

      await expect(sealedAtRest(store(), [], quiet).get(session.id)).resolves.toBeNull();
      await sealed.destroy(session.id);
    });

    if (expiries.reported) {
      it('with encryptionKeys, reports an expiry with the user id in the clear, though the store keeps only its token', async () => {
        const sealed = sealedAtRest(store(), [newKey()], quiet);
        const userId = marker('user');
        const session = { ...sessionFor(sealed, newId(), { visits: 1 }, userId), expiresAt: Date.now() + expiries.shortLifetime };
        const reported: Array<{ id: string; userId: string | null }> = [];
        const stop = sealed.watchExpiry((expired) => {
          if (expired.id === session.id) reported.push(expired);
        });
        try {
          await sealed.create(session);
          const deadline = Date.now() + expiries.deadline;
          while (reported.length === 0 && Date.now() < deadline) {
            // A read past the expiry is how some stores notice it; it must find nothing either way.
            if (Date.now() > session.expiresAt) expect(await sealed.get(session.id)).toBeNull();
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect(reported).toEqual([{ id: session.id, userId }]);
        } finally {
          stop();
        }
      });
    }

    it('rotates keys: a session written back under the new key outlives the old one, one never written back reads as absent', async () => {
      const [oldKey, newKeyBytes] = [newKey(), newKey()];
      const before = sealedAtRest(store(), [oldKey], quiet);
      const during = sealedAtRest(store(), [newKeyBytes, oldKey], quiet);
      const after = sealedAtRest(store(), [newKeyBytes], quiet);
      const userId = marker('user');
      const used = sessionFor(before, newId(), { cart: ['a'] }, userId);
      // Created first: once `used` is indexed under the new key, a listing must still put it first.
      const idle = { ...sessionFor(before, newId(), { cart: ['b'] }, userId), createdAt: Date.now() - 1_000 };
      await before.create(used);
      await before.create(idle);

      const read = await during.get(used.id);
      expect(read).toMatchObject({ data: { cart: ['a'] }, userId, reseal: true });
      expect((await during.listByUser(userId)).map((summary) => summary.id).sort()).toEqual([used.id, idle.id].sort());
      // What the request pipeline writes back for a session read with `reseal`: everything.
      await during.commit(used.id, { set: read!.data, unset: [], userId, expiresAt: used.expiresAt, lastSeenAt: Date.now() });
      // One listing across both keys' indexes, oldest first, as a listing always is.
      expect((await during.listByUser(userId)).map((summary) => summary.id)).toEqual([idle.id, used.id]);

      const reread = await after.get(used.id);
      expect(reread).toMatchObject({ data: { cart: ['a'] }, userId });
      expect(reread!.reseal).toBeUndefined();
      await expect(after.get(idle.id)).resolves.toBeNull();
      expect((await after.listByUser(userId)).map((summary) => summary.id)).toEqual([used.id]);
      await during.destroyByUser(userId);
      await expect(during.listByUser(userId)).resolves.toEqual([]);
    });
  });
}
