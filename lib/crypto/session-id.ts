import { hash, randomBytes } from 'node:crypto';

/** 32 random bytes: 256 bits from the CSPRNG, twice the 128 bits OWASP asks for. */
const ID_BYTES = 32;

/** Base64url of 32 bytes is exactly 43 characters; anything else was not made here. */
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A new session id. */
export function generateSessionId(): string {
  return randomBytes(ID_BYTES).toString('base64url');
}

/**
 * True for strings shaped like our ids. Checked before an id reaches any store, so a path, a
 * key pattern or an oversized value never does.
 */
export function isSessionId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/**
 * The key a server-side store keeps the session with this id under: SHA-256 of the id, base64url
 * (43 characters, the shape of an id). It is also how the module names a session wherever it
 * shows one (`SessionService.list()`, events, logs): one identifier everywhere, so a listed
 * session, an event, a log line and a store key can be matched up, while nothing that sees it can
 * present it as a credential. A plain hash is enough, and needs no key to rotate: an id is 256
 * random bits, so there is nothing to guess.
 */
export function hashSessionId(id: string): string {
  // The one-shot hash: no Hash object per request.
  return hash('sha256', id, 'base64url');
}
