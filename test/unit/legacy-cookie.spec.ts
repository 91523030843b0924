import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import { sign } from 'cookie-signature';
import { LegacyCookieVerifier } from '../../lib/legacy/index.js';

/**
 * express-session's cookies, made by the package express-session signs with (cookie-signature)
 * and encoded as express-session sends them, read back by the `legacy` option's verifier.
 */
const SECRET = 'keyboard cat';
const OLD_SECRET = 'an older secret';

/** An id as express-session makes it by default (uid-safe: 24 random bytes, base64url). */
const expressSessionId = (): string => randomBytes(24).toString('base64url');

/** The `connect.sid` value the application sees once the Cookie header is parsed, as express-session sets it. */
function cookieValue(id: string, secret = SECRET): string {
  const header = serializeCookie('connect.sid', `s:${sign(id, secret)}`);
  return parseCookies(header.split(';')[0])['connect.sid']!;
}

describe('LegacyCookieVerifier', () => {
  it('reads the id out of cookies express-session signed, whatever characters their signatures hold', () => {
    const verifier = new LegacyCookieVerifier(SECRET);
    const ids = Array.from({ length: 200 }, expressSessionId);
    const signatures = ids.map((id) => sign(id, SECRET).slice(id.length + 1)).join('');

    for (const id of ids) expect(verifier.open(cookieValue(id))).toBe(id);
    // The sample covers standard base64's own characters, which base64url would not produce.
    expect(signatures).toMatch(/\+/);
    expect(signatures).toMatch(/\//);
  });

  it('travels URL-encoded (s%3A…) and is read once decoded, as the cookie parser hands it over', () => {
    const id = expressSessionId();

    expect(serializeCookie('connect.sid', `s:${sign(id, SECRET)}`)).toMatch(/^connect\.sid=s%3A/);
    expect(new LegacyCookieVerifier(SECRET).open(cookieValue(id))).toBe(id);
  });

  it('accepts every secret of a rotation, and ids of a custom genid with dots of their own (split at the last dot)', () => {
    const verifier = new LegacyCookieVerifier([SECRET, OLD_SECRET]);
    const uuid = randomUUID();
    const dotted = `tenant.${expressSessionId()}`;

    expect(verifier.open(cookieValue(uuid, OLD_SECRET))).toBe(uuid);
    expect(verifier.open(cookieValue(dotted, SECRET))).toBe(dotted);
  });

  it('refuses a signature made with another secret, a tampered id or signature, and unsigned values', () => {
    const verifier = new LegacyCookieVerifier(SECRET);
    const id = expressSessionId();
    const good = cookieValue(id);
    const flip = (text: string, at: number): string => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);

    expect(verifier.open(cookieValue(id, 'not the secret'))).toBeNull();
    expect(verifier.open(flip(good, 5))).toBeNull();
    expect(verifier.open(flip(good, good.length - 1))).toBeNull();
    expect(verifier.open(flip(good, good.length - 10))).toBeNull();
    // express-session reads only `s:` values as signed.
    expect(verifier.open(good.slice(2))).toBeNull();
    expect(verifier.open(`j:${good.slice(2)}`)).toBeNull();
  });

  it('refuses malformed values before computing any HMAC: no dot, empty id, bad signature shape, padding, spaces, oversized, not a string', () => {
    const verifier = new LegacyCookieVerifier(SECRET);
    const id = expressSessionId();
    const signature = sign(id, SECRET).slice(id.length + 1);

    for (const value of [
      's:',
      `s:${id}`,
      `s:.${signature}`,
      `s:${id}.`,
      `s:${id}.${signature}=`,
      `s:${id}.${signature.slice(1)}`,
      `s:${id}.${signature.replace(/[+/]/g, '-')}A`,
      `s:a b.${signature}`,
      `s:${'x'.repeat(600)}.${signature}`,
      undefined,
      null,
      42,
      { toString: () => `s:${id}.${signature}` },
    ]) {
      expect(verifier.open(value)).toBeNull();
    }
  });
});
