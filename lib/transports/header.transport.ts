/** The response header that carries a new or rotated token (`'header'` and `'both'` transports). */
export const SESSION_TOKEN_HEADER = 'X-Session-Token';

/** `Bearer <token>`, the scheme case-insensitive as RFC 7235 has it. */
const BEARER = /^Bearer +([^\s]+) *$/i;

/** The Bearer scheme at the start of an Authorization header, whatever follows. */
const BEARER_SCHEME = /^Bearer(?: |$)/i;

/**
 * The session token of an `Authorization: Bearer` header, for API clients that do not keep
 * cookies; null when the request uses the Bearer scheme but with no token we could use;
 * undefined when it does not use it. Responses hand tokens out in {@link SESSION_TOKEN_HEADER}.
 * @param maxLength longest token worth looking at (the credential format's longest): anything
 *   longer is dropped before any parsing or crypto work.
 */
export function readBearerToken(authorization: string | undefined, maxLength: number): string | null | undefined {
  if (!authorization || !BEARER_SCHEME.test(authorization)) return undefined;
  if (authorization.length > maxLength + 16) return null;
  const token = BEARER.exec(authorization)?.[1];
  return token !== undefined && token.length <= maxLength ? token : null;
}
