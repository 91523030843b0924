import { randomBytes } from 'node:crypto';

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

/** A loggable stand-in for an id: logs never show a usable one. */
export function maskSessionId(id: string): string {
  return `${id.slice(0, 6)}…`;
}
