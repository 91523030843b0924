import { createHmac, timingSafeEqual } from 'node:crypto';
import { isSessionId } from './session-id.js';

/** `id.signature`: the id, a dot, and 43 base64url characters of HMAC-SHA256. */
const MAX_SIGNED_LENGTH = 43 + 1 + 43;

/**
 * Signs ids with HMAC-SHA256. Rotation: the first secret signs, every secret verifies, so a
 * secret can be replaced without signing anyone out.
 */
export class SessionIdSigner {
  private readonly keys: readonly Buffer[];

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map((secret) => Buffer.from(secret, 'utf8'));
  }

  sign(id: string): string {
    return `${id}.${this.mac(this.keys[0], id).toString('base64url')}`;
  }

  /**
   * The id inside a signed value, or null when the value is malformed or no secret signed it.
   * Cheap checks come first, so garbage costs no HMAC; comparisons are constant-time.
   */
  unsign(signed: string): string | null {
    return this.open(signed)?.id ?? null;
  }

  /** As {@link unsign}, also telling whether a secret other than the first signed it (`stale`). */
  open(signed: string): { id: string; stale: boolean } | null {
    if (signed.length !== MAX_SIGNED_LENGTH) return null;
    const dot = signed.indexOf('.');
    const id = signed.slice(0, dot);
    const signature = signed.slice(dot + 1);
    // The signature has the id's alphabet and length, so the same check rules out anything
    // else before the comparison (which works on bytes, not characters).
    if (dot < 0 || !isSessionId(id) || !isSessionId(signature)) return null;
    // Compared as text, not decoded bytes: base64url has spare bits in its last character, and
    // a signature altered there must not verify.
    const given = Buffer.from(signature, 'latin1');
    let matched = -1;
    for (const [index, key] of this.keys.entries()) {
      const expected = Buffer.from(this.mac(key, id).toString('base64url'), 'latin1');
      // Every key is tried so timing does not tell which secret matched.
      if (given.length === expected.length && timingSafeEqual(given, expected) && matched < 0) matched = index;
    }
    return matched < 0 ? null : { id, stale: matched > 0 };
  }

  private mac(key: Buffer, id: string): Buffer {
    return createHmac('sha256', key).update(id).digest();
  }
}
