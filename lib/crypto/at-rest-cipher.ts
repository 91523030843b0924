import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Encryption at rest (`encryptionKeys`): what a server-side store keeps of a session's data, its
 * recorded client and its user, sealed with keys of the application's own, so that a copy of the
 * store (a backup, a replica, `MONITOR`, a read-only SQL role) shows none of it.
 *
 * - **Values** (each data field, each member of the client record) are sealed one by one with
 *   AES-256-GCM under a random 96-bit nonce, so a change still writes only the fields it
 *   changed. The associated data binds each ciphertext to its session's key and its name: a
 *   value moved to another session or another field no longer opens.
 * - **User ids** become a deterministic token (SIV: the IV is an HMAC of the user id, then
 *   AES-256-CTR), because the per-user index and lock need the same name for the same user on
 *   every node, while the module still reads the user back from an expiry the store reports.
 *   Equal user ids give equal tokens; nothing else about them shows.
 *
 * Every sealed text names the key that made it (a short id derived from the key), so keys can
 * be rotated with no flag day: the first key seals, every key opens, and an opening reports
 * `stale` when a key other than the first made it.
 *
 * The texts are versioned by their prefixes; changing one is a format change.
 */

/** What a sealed value starts with: also how a node without keys recognises one it cannot read. */
export const SEALED_VALUE_PREFIX = '$sealed1.';
const USER_TOKEN_PREFIX = 'user1.';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SIV_BYTES = 16;
const HKDF_SALT = 'nestjs-session-sync at rest';

/** What a sealed value belongs to, besides its session: a data field, or a member of the client record. */
export type SealedPart = 'field' | 'client';

/** A text opened: what it holds, and whether a key other than the first sealed it. */
export interface Opened {
  text: string;
  stale: boolean;
}

interface AtRestKey {
  /** Names the key in every text it seals; derived from it, so nothing needs configuring. */
  id: string;
  values: Buffer;
  userMac: Buffer;
  userCipher: Buffer;
}

function derive(key: Buffer, label: string, bytes: number): Buffer {
  return Buffer.from(hkdfSync('sha256', key, HKDF_SALT, label, bytes));
}

function atRestKey(key: Buffer): AtRestKey {
  return {
    id: derive(key, 'key id v1', 6).toString('base64url'),
    values: derive(key, 'values v1', 32),
    userMac: derive(key, 'user id mac v1', 32),
    userCipher: derive(key, 'user id cipher v1', 32),
  };
}

/**
 * The associated data of a value: its part, session key and name, each length-prefixed so that
 * no two triples give the same bytes.
 */
function associatedData(part: SealedPart, sessionKey: string, name: string): Buffer {
  return Buffer.from(`${part}:${sessionKey.length}:${sessionKey}:${name}`, 'utf8');
}

/** Seals values and user ids with the keys of `encryptionKeys` (see the file's comment). */
export class AtRestCipher {
  private readonly keys: readonly AtRestKey[];
  private readonly byId: ReadonlyMap<string, AtRestKey>;

  /** @param keys 32-byte keys, the sealing one first (see `resolveEncryptionKeys()`). */
  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('AtRestCipher needs at least one key');
    this.keys = keys.map(atRestKey);
    this.byId = new Map(this.keys.map((key) => [key.id, key]));
  }

  /** True for a text {@link seal} made (under any key): what a node without keys must not read as data. */
  static isSealed(value: unknown): boolean {
    return typeof value === 'string' && value.startsWith(SEALED_VALUE_PREFIX);
  }

  /** `text` sealed under the first key, bound to the session key and the value's name. */
  seal(part: SealedPart, sessionKey: string, name: string, text: string): string {
    const key = this.keys[0];
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.values, nonce);
    cipher.setAAD(associatedData(part, sessionKey, name));
    const sealed = Buffer.concat([nonce, cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_VALUE_PREFIX}${key.id}.${sealed.toString('base64url')}`;
  }

  /**
   * What {@link seal} sealed, or null when it does not open here: not a sealed text, a key that
   * is not configured, or a text that was altered or moved to another session or name.
   */
  open(part: SealedPart, sessionKey: string, name: string, value: unknown): Opened | null {
    const found = this.split(value, SEALED_VALUE_PREFIX);
    if (!found || found.bytes.length < NONCE_BYTES + TAG_BYTES) return null;
    const { key, bytes } = found;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.values, bytes.subarray(0, NONCE_BYTES));
      decipher.setAAD(associatedData(part, sessionKey, name));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      const text = Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      return { text, stale: key !== this.keys[0] };
    } catch {
      return null;
    }
  }

  /** The user's token under the first key: what the per-user index and lock are named by. */
  userToken(userId: string): string {
    return this.tokenUnder(this.keys[0], userId);
  }

  /** The user's token under every key, the first key's first: where the user's sessions may be indexed during a rotation. */
  userTokens(userId: string): string[] {
    return this.keys.map((key) => this.tokenUnder(key, userId));
  }

  /** The user id a token names, or null when it is not a token of a configured key (or was altered). */
  openUserToken(token: unknown): Opened | null {
    const found = this.split(token, USER_TOKEN_PREFIX);
    if (!found || found.bytes.length < SIV_BYTES) return null;
    const { key, bytes } = found;
    const siv = bytes.subarray(0, SIV_BYTES);
    const decipher = createDecipheriv('aes-256-ctr', key.userCipher, siv);
    const userId = Buffer.concat([decipher.update(bytes.subarray(SIV_BYTES)), decipher.final()]);
    const expected = createHmac('sha256', key.userMac).update(userId).digest().subarray(0, SIV_BYTES);
    if (!timingSafeEqual(expected, siv)) return null;
    return { text: userId.toString('utf8'), stale: key !== this.keys[0] };
  }

  private tokenUnder(key: AtRestKey, userId: string): string {
    const plain = Buffer.from(userId, 'utf8');
    const siv = createHmac('sha256', key.userMac).update(plain).digest().subarray(0, SIV_BYTES);
    const cipher = createCipheriv('aes-256-ctr', key.userCipher, siv);
    const sealed = Buffer.concat([siv, cipher.update(plain), cipher.final()]);
    return `${USER_TOKEN_PREFIX}${key.id}.${sealed.toString('base64url')}`;
  }

  /** The key and bytes of a `<prefix><key id>.<base64url>` text, or null. */
  private split(value: unknown, prefix: string): { key: AtRestKey; bytes: Buffer } | null {
    if (typeof value !== 'string' || !value.startsWith(prefix)) return null;
    const dot = value.indexOf('.', prefix.length);
    const key = dot < 0 ? undefined : this.byId.get(value.slice(prefix.length, dot));
    if (!key) return null;
    return { key, bytes: Buffer.from(value.slice(dot + 1), 'base64url') };
  }
}
