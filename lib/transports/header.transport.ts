/** The response header that carries a new or rotated token (`'header'` and `'both'` transports). */
export const SESSION_TOKEN_HEADER = 'X-Session-Token';

/** `Bearer <token>`, the scheme case-insensitive as RFC 7235 has it. */
const BEARER = /^Bearer +([^\s]+) *$/i;

/**
 * The session token of an `Authorization: Bearer` header, or undefined when the request carries
 * none we could use: for API clients that do not keep cookies. Responses hand tokens out in
 * {@link SESSION_TOKEN_HEADER}.
 * @param maxLength longest token worth looking at (the credential format's longest): anything
 *   longer is dropped before any parsing or crypto work.
 */
export function readBearerToken(authorization: string | undefined, maxLength: number): string | undefined {
  if (!authorization || authorization.length > maxLength + 16) return undefined;
  const token = BEARER.exec(authorization)?.[1];
  return token !== undefined && token.length <= maxLength ? token : undefined;
}
