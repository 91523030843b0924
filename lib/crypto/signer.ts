import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKey } from './keys.js';
import { isSessionId } from './session-id.js';

/** `id.signature`: the id, a dot, and 43 base64url characters of HMAC-SHA256. */
const MAX_SIGNED_LENGTH = 43 + 1 + 43;

/**
 * Signed values already verified, remembered so that a client's next requests cost a map lookup
 * instead of an HMAC per secret (the HMAC is most of the CPU a cookie costs a request). Only
 * values that verified are kept, so garbage cannot fill it; an entry holds for this signer's
 * secrets only, and they never change while it lives. A lookup can only tell an attacker that a
 * value they already hold is valid. 10,000 entries are about 1.5 MB.
 */
const VERIFIED_MEMORY = 10_000;

/**
 * Signs ids with HMAC-SHA256, under a key derived from each secret for this purpose alone
 * (keys.ts). Rotation: the first secret signs, every secret verifies, so a secret can be
 * replaced without signing anyone out.
 */
export class SessionIdSigner {
  private readonly keys: readonly Buffer[];
  /** Verified values, oldest first (a Map keeps insertion order): see {@link VERIFIED_MEMORY}. */
  private readonly verified = new Map<string, { id: string; stale: boolean }>();

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map((secret) => deriveKey(secret, 'signed-id'));
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
    const known = this.verified.get(signed);
    if (known) return known;
    const opened = this.verify(signed);
    if (opened) {
      // Shared by every request that presents the value: nobody may change it.
      Object.freeze(opened);
      if (this.verified.size >= VERIFIED_MEMORY) this.verified.delete(this.verified.keys().next().value as string);
      this.verified.set(signed, opened);
    }
    return opened;
  }

  private verify(signed: string): { id: string; stale: boolean } | null {
    const dot = signed.indexOf('.');
    const id = signed.slice(0, dot);
    const signature = signed.slice(dot + 1);
    // The signature has the id's alphabet and length, so the same check rules out anything
    // else before the comparison (which works on bytes, not characters).
    if (dot < 0 || !isSessionId(id) || !isSessionId(signature)) return null;
    const matched = firstMatchingKey(signature, this.keys, (key) => this.mac(key, id).toString('base64url'));
    return matched < 0 ? null : { id, stale: matched > 0 };
  }

  private mac(key: Buffer, id: string): Buffer {
    return createHmac('sha256', key).update(id).digest();
  }
}

/**
 * The index of the first key under which `given` is the expected signature, or -1. Every key is
 * tried and each comparison is constant-time, so timing tells neither whether nor which key
 * matched. Compared as text: base64 has spare bits in its last character, and a signature
 * altered there must not verify.
 */
export function firstMatchingKey<K>(given: string, keys: readonly K[], signatureUnder: (key: K) => string): number {
  const givenBytes = Buffer.from(given, 'latin1');
  let matched = -1;
  for (const [index, key] of keys.entries()) {
    const expected = Buffer.from(signatureUnder(key), 'latin1');
    if (givenBytes.length === expected.length && timingSafeEqual(givenBytes, expected) && matched < 0) matched = index;
  }
  return matched;
}
