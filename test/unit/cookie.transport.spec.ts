import { describe, expect, it } from '@jest/globals';
import { generateSessionId, SessionIdSigner } from '../../lib/crypto/index.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { CookieTransport } from '../../lib/transports/cookie.transport.js';

const SECRET = 'x'.repeat(32);
/** The longest credential the transport is told to look at: a signed id's 87 characters. */
const MAX_LENGTH = 87;

function transportWith(cookie: Record<string, unknown> = {}): CookieTransport {
  return new CookieTransport(resolveSessionOptions({ secret: SECRET, cookie }).cookie, MAX_LENGTH);
}

/** The attributes of a Set-Cookie value, keyed in lower case ('' for flags). */
function attributesOf(setCookie: string): Map<string, string> {
  const [, ...parts] = setCookie.split(';').map((part) => part.trim());
  return new Map(
    parts.map((part) => {
      const eq = part.indexOf('=');
      return eq < 0 ? [part.toLowerCase(), ''] : [part.slice(0, eq).toLowerCase(), part.slice(eq + 1)];
    }),
  );
}

const signed = new SessionIdSigner([SECRET]).sign(generateSessionId());

describe('CookieTransport', () => {
  describe('read()', () => {
    const transport = transportWith();

    it('finds the session cookie among others', () => {
      expect(transport.read(`theme=dark; sid=${signed}; lang=en`)).toBe(signed);
    });

    it('reads a custom cookie name', () => {
      expect(transportWith({ name: 'app.sid' }).read(`sid=other; app.sid=${signed}`)).toBe(signed);
    });

    it('is undefined when the request carries no Cookie header', () => {
      expect(transport.read(undefined)).toBeUndefined();
      expect(transport.read('')).toBeUndefined();
    });

    it('is undefined when only other cookies are present, even ones whose name contains it', () => {
      expect(transport.read('theme=dark; lang=en')).toBeUndefined();
      expect(transport.read(`xsid=${signed}; sid_old=${signed}`)).toBeUndefined();
    });

    // Present but unusable is not absent: the request still came in on the cookie.
    it('is null for a value longer than the credential format makes (an 8 KB cookie), or quoted', () => {
      expect(transport.read(`sid=${'a'.repeat(8192)}`)).toBeNull();
      expect(transport.read(`sid=${'a'.repeat(MAX_LENGTH + 1)}`)).toBeNull();
      expect(transport.read(`sid="${signed}"`)).toBeNull();
    });

    it('keeps a value of up to the longest the credential format makes', () => {
      expect(transport.read(`sid=${'a'.repeat(MAX_LENGTH)}`)).toBe('a'.repeat(MAX_LENGTH));
    });
  });

  describe('set()', () => {
    it('writes the value with Path, HttpOnly and SameSite=Lax by default, and no Secure when not asked', () => {
      const setCookie = transportWith().set(signed, false);
      const attributes = attributesOf(setCookie);

      expect(setCookie.startsWith(`sid=${signed};`)).toBe(true);
      expect(attributes.get('path')).toBe('/');
      expect(attributes.has('httponly')).toBe(true);
      expect(attributes.get('samesite')).toBe('Lax');
      expect(attributes.has('secure')).toBe(false);
      expect(attributes.has('domain')).toBe(false);
      expect(attributes.has('partitioned')).toBe(false);
      expect(attributes.has('max-age')).toBe(false);
      expect(attributes.has('expires')).toBe(false);
    });

    it('adds Secure when asked', () => {
      expect(attributesOf(transportWith().set(signed, true)).has('secure')).toBe(true);
    });

    it('writes the configured name, path, domain, SameSite and Partitioned', () => {
      const attributes = attributesOf(
        transportWith({ name: 'app.sid', path: '/app', domain: 'example.com', sameSite: 'none', secure: true, partitioned: true }).set(signed, true),
      );

      expect(transportWith({ name: 'app.sid' }).set(signed, false).startsWith(`app.sid=${signed};`)).toBe(true);
      expect(attributes.get('path')).toBe('/app');
      expect(attributes.get('domain')).toBe('example.com');
      expect(attributes.get('samesite')).toBe('None');
      expect(attributes.has('partitioned')).toBe(true);
      expect(attributes.has('secure')).toBe(true);
    });

    it('leaves HttpOnly off when configured so', () => {
      expect(attributesOf(transportWith({ httpOnly: false }).set(signed, false)).has('httponly')).toBe(false);
    });

    it('writes Max-Age in seconds when cookie.maxAge is configured', () => {
      expect(attributesOf(transportWith({ maxAge: '1h' }).set(signed, false)).get('max-age')).toBe('3600');
    });

    it('never writes Max-Age=0 (which deletes the cookie) for a positive maxAge under a second', () => {
      expect(attributesOf(transportWith({ maxAge: 500 }).set(signed, false)).get('max-age')).not.toBe('0');
    });

    it('writes a value that read() gives back', () => {
      const transport = transportWith();
      const [pair] = transport.set(signed, false).split(';');

      expect(transport.read(pair)).toBe(signed);
    });
  });

  describe('clear()', () => {
    it('expires the cookie at once, on the same name, path and domain', () => {
      const setCookie = transportWith({ path: '/app', domain: 'example.com' }).clear(false);
      const attributes = attributesOf(setCookie);

      expect(setCookie.startsWith('sid=;')).toBe(true);
      expect(attributes.get('max-age')).toBe('0');
      expect(attributes.get('expires')).toBe('Thu, 01 Jan 1970 00:00:00 GMT');
      expect(attributes.get('path')).toBe('/app');
      expect(attributes.get('domain')).toBe('example.com');
    });

    it('carries Secure only when asked', () => {
      expect(attributesOf(transportWith().clear(true)).has('secure')).toBe(true);
      expect(attributesOf(transportWith().clear(false)).has('secure')).toBe(false);
    });
  });

  describe('with SessionIdSigner, as the middleware uses them', () => {
    const transport = transportWith();
    const signer = new SessionIdSigner([SECRET]);
    const id = generateSessionId();
    const value = signer.sign(id);

    it('accepts the cookie it set', () => {
      expect(signer.unsign(transport.read(`sid=${value}`)!)).toBe(id);
    });

    it('does not accept a percent-encoded non-ASCII variant of a valid cookie', () => {
      // 'ţ' (U+0163) is 'c' (U+0063) plus 0x100; %C5%A3 is its UTF-8 form, which the cookie
      // parser decodes. Build the variant on a signature character whose low byte it can mimic.
      const dot = value.indexOf('.');
      const index = dot + 1;
      const mimic = encodeURIComponent(String.fromCharCode(value.charCodeAt(index) + 0x100));
      const variant = value.slice(0, index) + mimic + value.slice(index + 1);

      const read = transport.read(`sid=${variant}`);

      expect(typeof read !== 'string' || signer.unsign(read) === null).toBe(true);
    });
  });
});
