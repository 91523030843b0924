import { createHash, randomBytes } from 'node:crypto';

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

/** 16 base64url characters: 96 bits, so two of one user's sessions never share one. */
const HASH_LENGTH = 16;

/**
 * A short, one-way stand-in for a session id: what logs, events and session listings show.
 * The same id always gives the same hash, so a listed session, an event and a log line can be
 * matched up, but nothing that sees the hash can present it as a credential.
 */
export function hashSessionId(id: string): string {
  return createHash('sha256').update(id).digest('base64url').slice(0, HASH_LENGTH);
}
