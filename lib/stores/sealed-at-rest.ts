import type { LoggerService } from '@nestjs/common';
import { AtRestCipher } from '../crypto/at-rest-cipher.js';
import type { SealedPart } from '../crypto/at-rest-cipher.js';
import { SessionMessages } from '../session.errors.js';
import { assertUserIdKeepable, SessionStore } from './session-store.js';
import type { ExpiryListener, SessionChange, SessionClient, SessionFields, SessionSummary, StoredSession } from './session-store.js';
import { wrapStoreMethods } from './bounded-store.js';
import { CLIENT_MEMBERS, defineField, encodeFields } from './toolkit/field-codec.js';

/**
 * The module's store as the pipeline sees it, with what every server-side store keeps at rest
 * sealed (`encryptionKeys`, see crypto/at-rest-cipher.ts): each data field and client member
 * becomes a sealed text bound to its session and name, each user id a token, on the way in;
 * the reverse on the way out. The wrapped store keeps working on what it is given: fields are
 * still written one by one (delta writes), indexes and locks are still named by one string per
 * user, and "only if it still exists" is still the store's own atomic step.
 *
 * Without keys, the view only refuses to read a session holding sealed values (one written while
 * keys were set): read as plain strings, they would be data the application never wrote (a
 * sealed `isAdmin: false` is a truthy string).
 *
 * A session that does not open whole (a key no longer configured, a value altered or moved)
 * reads as absent, with a warning naming its key: nothing of it is half-read. One sealed under an
 * older key reads with {@link StoredSession.reseal} set, so the request writes it back under the
 * first key.
 *
 * The view is the same Proxy as the metrics' and the bounds' (wrapStoreMethods()): to everything
 * but the calls it changes, it is the store itself (`instanceof`, `kind`, its own fields and
 * methods, called on the store).
 */
export function sealedAtRest(store: SessionStore, keys: readonly Buffer[] | undefined, logger: LoggerService): SessionStore {
  const cipher = keys && keys.length > 0 ? new AtRestCipher(keys) : null;
  return viewOf(store, cipher ? new Sealing(store, cipher, logger) : new RefusingSealed(store, logger));
}

/** A call of the view, as wrapStoreMethods() hands it out. */
type StoreCall = ReturnType<Parameters<typeof wrapStoreMethods>[1]>;
/** The calls a view changes; every other member is the store's own, called on the store. */
type Overrides = Partial<
  Pick<SessionStore, 'get' | 'create' | 'commit' | 'rotate' | 'listByUser' | 'destroyByUser' | 'withUserLock' | 'watchExpiry' | 'forRequest'>
>;

function viewOf(store: SessionStore, overrides: Overrides & { rewrap(store: SessionStore): SessionStore }): SessionStore {
  const own = new Map<string, StoreCall>();
  for (const name of ['get', 'create', 'commit', 'rotate', 'listByUser', 'destroyByUser', 'withUserLock', 'watchExpiry'] as const) {
    const override = overrides[name];
    if (override) own.set(name, override.bind(overrides) as StoreCall);
  }
  // A store with per-request views (a custom one) has each view sealed alike.
  own.set('forRequest', () => {
    const view = store.forRequest();
    return view && overrides.rewrap(view);
  });
  return wrapStoreMethods(store, (method, name) => own.get(name) ?? ((...args) => method.apply(store, args)));
}

/** Without keys: reads a session only when nothing in it is sealed. */
class RefusingSealed implements Overrides {
  constructor(
    private readonly store: SessionStore,
    private readonly logger: LoggerService,
  ) {}

  async get(key: string): Promise<StoredSession | null> {
    const session = await this.store.get(key);
    if (session === null || !holdsSealedValues(session)) return session;
    this.logger.warn(SessionMessages.sealedAtRestUnreadable(key, 'it was written with "encryptionKeys", and none is configured'));
    return null;
  }

  rewrap(store: SessionStore): SessionStore {
    return viewOf(store, new RefusingSealed(store, this.logger));
  }
}

function holdsSealedValues(session: StoredSession): boolean {
  for (const name of Object.keys(session.data)) if (AtRestCipher.isSealed(session.data[name])) return true;
  return CLIENT_MEMBERS.some((member) => AtRestCipher.isSealed(session.client?.[member]));
}

/** With keys: seals on the way in, opens on the way out. */
class Sealing implements Overrides {
  constructor(
    private readonly store: SessionStore,
    private readonly cipher: AtRestCipher,
    private readonly logger: LoggerService,
  ) {}

  rewrap(store: SessionStore): SessionStore {
    return viewOf(store, new Sealing(store, this.cipher, this.logger));
  }

  async get(key: string): Promise<StoredSession | null> {
    const session = await this.store.get(key);
    return session && this.openSession(session);
  }

  create(session: StoredSession): Promise<void> {
    return this.store.create(this.sealSession(session));
  }

  rotate(oldKey: string, next: StoredSession): Promise<boolean> {
    // Sealed anew: every value is bound to the key it lives under.
    return this.store.rotate(oldKey, this.sealSession(next));
  }

  commit(key: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    const sealed: SessionChange = { ...change, set: this.sealFields(key, change.set) };
    if (typeof change.userId === 'string') sealed.userId = this.cipher.userToken(change.userId);
    if (change.client) sealed.client = this.sealClient(key, change.client);
    return this.store.commit(key, sealed);
  }

  /** The user's sessions, wherever an index under some configured key holds them, oldest first. */
  async listByUser(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    const lists = await Promise.all(this.cipher.userTokens(userId).map((token) => this.store.listByUser(token)));
    const sessions = lists.flat().map((summary) => {
      const opened = summary.client ? this.openClient(summary.id, summary.client) : null;
      // A listing shows what it can: a client record that does not open is left out, not fatal.
      return { ...summary, client: opened?.client ?? null };
    });
    return lists.length > 1 ? sessions.sort((a, b) => a.createdAt - b.createdAt) : sessions;
  }

  async destroyByUser(userId: string, exceptKey?: string): Promise<string[]> {
    assertUserIdKeepable(userId);
    const destroyed = await Promise.all(this.cipher.userTokens(userId).map((token) => this.store.destroyByUser(token, exceptKey)));
    return destroyed.flat();
  }

  withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    assertUserIdKeepable(userId);
    return this.store.withUserLock(this.cipher.userToken(userId), critical);
  }

  /** Expiries as the application knows them: the user read back from the token the store reported. */
  watchExpiry(listener: ExpiryListener): () => void {
    return this.store.watchExpiry(({ id, userId }) =>
      listener({ id, userId: userId === null ? null : (this.cipher.openUserToken(userId)?.text ?? null) }),
    );
  }

  private sealSession(session: StoredSession): StoredSession {
    assertUserIdKeepable(session.userId);
    const { id: key, userId, client } = session;
    return {
      ...session,
      data: this.sealFields(key, session.data),
      userId: userId === null ? null : this.cipher.userToken(userId),
      client: client ? this.sealClient(key, client) : client,
    };
  }

  /** Each field's JSON sealed; a field whose value removes it stays undefined, as the store expects. */
  private sealFields(key: string, fields: SessionFields): SessionFields {
    const sealed: SessionFields = Object.create(null);
    for (const [name, json] of encodeFields(fields)) defineField(sealed, name, json === undefined ? undefined : this.seal('field', key, name, json));
    return sealed;
  }

  private sealClient(key: string, client: SessionClient): SessionClient {
    const sealed: SessionClient = {};
    for (const member of CLIENT_MEMBERS) {
      const text = client[member];
      if (text !== undefined) sealed[member] = this.seal('client', key, member, text);
    }
    return sealed;
  }

  private seal(part: SealedPart, key: string, name: string, text: string): string {
    return this.cipher.seal(part, key, name, text);
  }

  /** The session in the clear, or null (with a warning) when any part of it does not open. */
  private openSession(session: StoredSession): StoredSession | null {
    const key = session.id;
    let stale = false;
    const data: SessionFields = Object.create(null);
    for (const name of Object.keys(session.data)) {
      const opened = this.cipher.open('field', key, name, session.data[name]);
      if (!opened)
        return this.unreadable(key, `its field "${name}" does not open with the configured encryptionKeys (a removed key, or an altered value)`);
      defineField(data, name, JSON.parse(opened.text));
      stale ||= opened.stale;
    }
    let userId: string | null = null;
    if (session.userId !== null) {
      const opened = this.cipher.openUserToken(session.userId);
      if (!opened) return this.unreadable(key, 'its user does not open with the configured encryptionKeys');
      userId = opened.text;
      stale ||= opened.stale;
    }
    let client = session.client;
    if (client) {
      const opened = this.openClient(key, client);
      if (!opened) return this.unreadable(key, 'its client record does not open with the configured encryptionKeys');
      client = opened.client;
      stale ||= opened.stale;
    }
    return { ...session, data, userId, client, ...(stale ? { reseal: true } : {}) };
  }

  private openClient(key: string, client: SessionClient): { client: SessionClient; stale: boolean } | null {
    const opened: SessionClient = {};
    let stale = false;
    for (const member of CLIENT_MEMBERS) {
      if (client[member] === undefined) continue;
      const text = this.cipher.open('client', key, member, client[member]);
      if (!text) return null;
      opened[member] = text.text;
      stale ||= text.stale;
    }
    return { client: opened, stale };
  }

  private unreadable(key: string, problem: string): null {
    this.logger.warn(SessionMessages.sealedAtRestUnreadable(key, problem));
    return null;
  }
}
