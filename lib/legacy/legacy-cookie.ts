import { createHmac } from 'node:crypto';
import { firstMatchingKey } from '../crypto/index.js';

/**
 * express-session's signed cookie, read the way express-session reads it, so that the sessions
 * of an express-session deployment can be taken over (the `legacy` option): the value is `s:`,
 * the session id, a dot and the signature, which is HMAC-SHA256 of the id under the secret in
 * standard base64 without `=` padding (cookie-signature's format). The cookie parser has already
 * undone the URL encoding (`s%3A…` on the wire).
 */

/** express-session only reads values with this prefix as signed. */
const SIGNED_PREFIX = 's:';
/** Longer than any id express-session or a custom `genid` would reasonably make, with its signature. */
export const MAX_LEGACY_COOKIE_LENGTH = 512;
/**
 * What an id may be before any HMAC is computed: printable ASCII without spaces. uid-safe's 32
 * base64url characters (express-session's default) and UUIDs (a common `genid`) both fit.
 */
const LEGACY_ID = /^[\x21-\x7e]{1,256}$/;
/** Standard base64 of 32 bytes without padding: 43 characters. */
const SIGNATURE = /^[A-Za-z0-9+/]{43}$/;

export class LegacyCookieVerifier {
  private readonly secrets: readonly string[];

  /** `secrets`: express-session's `secret` option, one or several (every one verifies). */
  constructor(secrets: string | readonly string[]) {
    this.secrets = typeof secrets === 'string' ? [secrets] : [...secrets];
  }

  /**
   * The session id a legacy cookie value names, or null when it is not one a secret signed.
   * Cheap shape checks come first, so garbage costs no HMAC; every secret is tried and compared
   * in constant time, so timing tells neither whether nor which secret matched.
   */
  open(value: unknown): string | null {
    if (typeof value !== 'string' || value.length > MAX_LEGACY_COOKIE_LENGTH || !value.startsWith(SIGNED_PREFIX)) return null;
    const signed = value.slice(SIGNED_PREFIX.length);
    // cookie-signature splits at the last dot: an id may hold dots of its own.
    const dot = signed.lastIndexOf('.');
    if (dot < 0) return null;
    const id = signed.slice(0, dot);
    const signature = signed.slice(dot + 1);
    if (!LEGACY_ID.test(id) || !SIGNATURE.test(signature)) return null;
    return firstMatchingKey(signature, this.secrets, (secret) => signatureOf(id, secret)) < 0 ? null : id;
  }
}

/** cookie-signature's signature of `id`: HMAC-SHA256 in standard base64, `=` padding removed. */
function signatureOf(id: string, secret: string): string {
  return createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '');
}
