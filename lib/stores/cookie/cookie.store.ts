import { isSessionId, loadJose, resolveSecrets, SessionSealer } from '../../crypto/index.js';
import { SessionError, SessionMessages, SessionStoreUnsupportedError, SessionTooLargeError } from '../../session.errors.js';
import { assertUserIdKeepable, SessionStore } from '../session-store.js';
import type { SessionChange, SessionClient, SessionSummary, StoredSession } from '../session-store.js';
import { applyChange, encodeFields, fieldsAsJson } from '../toolkit/field-codec.js';
import { decodeRecord, encodeRecord } from '../toolkit/record-codec.js';
import type { SessionRecord } from '../toolkit/record-codec.js';

/** Browsers keep at most 4096 bytes per cookie (RFC 6265 §6.1); a longer one is silently dropped. */
export const MAX_CREDENTIAL_BYTES = 4096;

/** Options of {@link CookieStore}. */
export interface CookieStoreOptions {
  /**
   * The secrets sessions are sealed with: the first seals, every one opens, so a secret can be
   * rotated without signing anyone out. Each at least 32 characters. The module passes its own.
   */
  secret: string | readonly string[];
}

/** One sealed session a client holds: the seal and the text it opened to. */
interface Held {
  sealed: string;
  plaintext: string;
}

/** What a seal opens to: the toolkit's session record, which a seal holds with its id. */
interface SealedRecord extends Omit<SessionRecord, 'id' | 'client'> {
  id: string;
  client: SessionClient | null;
}

/**
 * Keeps no session on the server: each session is sealed, whole, into the client's cookie (or
 * Bearer token) with authenticated encryption (JWE `dir` + A256GCM by `jose`, key derived from
 * the secret with HKDF). Nothing to run, nothing to share between nodes: every node with the
 * same secret opens every session.
 *
 * What a stateless session cannot do, by construction:
 * - **No server-side revocation.** A logout clears the client's cookie, but a copy of the old
 *   cookie still opens until its idle or absolute timeout. `listByUser` and `destroyByUser`
 *   reject with `SessionStoreUnsupportedError`.
 * - **No merge of concurrent writes.** Each response carries the whole session, so of two
 *   concurrent requests that change different fields, the last response's cookie wins.
 * - **Size.** A session must fit in one cookie (4096 bytes with its name and attributes);
 *   a larger one fails with `SessionTooLargeError` (413) and nothing is written.
 *
 * The store works on the cookies of one client at a time: the request pipeline takes a
 * {@link CookieStore.forClient} view per request, holding the session the request presented.
 *
 * @example
 * ```ts
 * SessionModule.forRoot({ secret: process.env.SESSION_SECRET!, store: { type: 'cookie' } });
 * ```
 */
export class CookieStore extends SessionStore {
  readonly kind = 'cookie';

  /** A sealed session expires in its client's hands: no server ever sees it go. */
  override get reportsExpiries(): boolean {
    return false;
  }

  private constructor(
    private readonly sealer: SessionSealer,
    /** The client's sealed sessions by id; null on the shared instance, which holds none. */
    private readonly jar: Map<string, Held> | null,
  ) {
    super();
  }

  /** A cookie store sealing with these secrets (async: `jose` is loaded once, here). */
  static async create(options: CookieStoreOptions): Promise<CookieStore> {
    const secrets = resolveSecrets(options.secret);
    return new CookieStore(new SessionSealer(await loadJose('The cookie session store'), secrets), null);
  }

  /**
   * The store as one client sees it: the sessions its cookies hold, starting with none. The
   * request pipeline takes one per request; a test can take one to play a browser.
   */
  forClient(): CookieStore {
    return new CookieStore(this.sealer, new Map());
  }

  override forRequest(): CookieStore {
    return this.forClient();
  }

  override get sealsSessions(): boolean {
    return true;
  }

  /**
   * A sealed session's id exists only inside its seal, which the client holds: there is no
   * server-side copy to hide it from, so the id is its own key.
   */
  override keyOf(id: string): string {
    return id;
  }

  override get maxCredentialLength(): number {
    return MAX_CREDENTIAL_BYTES;
  }

  override openCredential(credential: string): Promise<{ id: string; stale: boolean } | null> {
    return this.open(credential);
  }

  override async issueCredential(id: string): Promise<string> {
    const sealed = this.sealedOf(id);
    if (sealed === undefined) throw new SessionError('SESSION_NOT_SEALED', SessionMessages.notSealed());
    return sealed;
  }

  /**
   * Opens a sealed session the client presented and holds it for this client.
   * @returns its id, and `stale` when an older secret sealed it (reseal it with the newest);
   *   null when no secret opens it, it is not ours, or it has expired.
   */
  async open(sealed: string): Promise<{ id: string; stale: boolean } | null> {
    const opened = await this.sealer.open(sealed);
    const record = opened && readSealedRecord(opened.plaintext);
    if (!opened || !record || record.expiresAt <= Date.now()) return null;
    this.client().set(record.id, { sealed, plaintext: opened.plaintext });
    return { id: record.id, stale: opened.stale };
  }

  /** The seal of a session this client holds: the value of its cookie or token. */
  sealedOf(id: string): string | undefined {
    return this.client().get(id)?.sealed;
  }

  async get(id: string): Promise<StoredSession | null> {
    const record = this.live(id);
    if (!record) return null;
    const { data, createdAt, lastSeenAt, expiresAt, userId, client } = record;
    return { id, data, createdAt, lastSeenAt, expiresAt, userId, client };
  }

  async create(session: StoredSession): Promise<void> {
    // Sealed JSON would keep any string, but a user id any store refuses is refused by all alike.
    assertUserIdKeepable(session.userId);
    await this.hold(session, encodeFields(session.data));
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    assertUserIdKeepable(change.userId);
    // Encoded first, so a value JSON cannot carry leaves the session as it was.
    const set = encodeFields(change.set);
    const record = this.live(id);
    if (!record) return false;
    const fields = fieldsAsJson(record.data);
    applyChange(fields, change.unset, set);
    const userId = change.userId === undefined ? record.userId : change.userId;
    const client = change.client === undefined ? record.client : change.client;
    const next = { id, createdAt: record.createdAt, lastSeenAt: change.lastSeenAt, expiresAt: change.expiresAt, userId, client };
    await this.hold(next, [...fields]);
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    assertUserIdKeepable(next.userId);
    const fields = encodeFields(next.data);
    if (!this.live(oldId)) return false;
    await this.hold(next, fields);
    this.client().delete(oldId);
    return true;
  }

  async destroy(id: string): Promise<void> {
    this.client().delete(id);
  }

  listByUser(): Promise<SessionSummary[]> {
    return Promise.reject(new SessionStoreUnsupportedError(this.kind, "list a user's sessions: each one lives only in its client's cookie"));
  }

  destroyByUser(): Promise<string[]> {
    return Promise.reject(
      new SessionStoreUnsupportedError(
        this.kind,
        "revoke a user's sessions: each one lives only in its client's cookie, and a copy of it opens until it expires",
      ),
    );
  }

  /** The record of a live session this client holds. */
  private live(id: string): SealedRecord | null {
    const held = this.client().get(id);
    if (!held) return null;
    const record = readSealedRecord(held.plaintext);
    return record && record.expiresAt > Date.now() ? record : null;
  }

  /** Seals a session and holds it, or throws (holding nothing new) when it is too large to carry. */
  private async hold(
    session: Pick<StoredSession, 'id' | 'createdAt' | 'lastSeenAt' | 'expiresAt' | 'userId' | 'client'>,
    fields: Array<[string, string | undefined]>,
  ): Promise<void> {
    const jar = this.client();
    const plaintext = encodeRecord(session, fields, session.id);
    const sealed = await this.sealer.seal(plaintext);
    if (sealed.length > MAX_CREDENTIAL_BYTES) throw new SessionTooLargeError(sealed.length, MAX_CREDENTIAL_BYTES);
    jar.set(session.id, { sealed, plaintext });
  }

  private client(): Map<string, Held> {
    if (this.jar === null) throw new SessionStoreUnsupportedError(this.kind, 'be used outside a request: take a view with forClient()');
    return this.jar;
  }
}

/**
 * The record a seal opened to, or null when it is not one (a seal from another version): with a
 * session id and whole-number times, as this store seals them. A `k` that is not a client record
 * reads as no client here, as it always has (the file store refuses such a file as a whole).
 */
function readSealedRecord(plaintext: string): SealedRecord | null {
  const record = decodeRecord(plaintext);
  if (!record || !isSessionId(record.id)) return null;
  const { id, createdAt, lastSeenAt, expiresAt, userId, client, data } = record;
  if (![createdAt, lastSeenAt, expiresAt].every((time) => Number.isSafeInteger(time))) return null;
  return { id, createdAt, lastSeenAt, expiresAt, userId, client: client ?? null, data };
}
