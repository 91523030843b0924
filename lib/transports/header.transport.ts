/** The response header that carries a new or rotated token (`'header'` and `'both'` transports). */
export const SESSION_TOKEN_HEADER = 'X-Session-Token';

/** Longest token worth looking at: a signed id is 87 characters (as for the cookie). */
const MAX_TOKEN_LENGTH = 128;

/** `Bearer <token>`, the scheme case-insensitive as RFC 7235 has it. */
const BEARER = /^Bearer +([^\s]+) *$/i;

/**
 * The session token of an `Authorization: Bearer` header, or undefined when the request carries
 * none we could use: for API clients that do not keep cookies. Responses hand tokens out in
 * {@link SESSION_TOKEN_HEADER}.
 */
export function readBearerToken(authorization: string | undefined): string | undefined {
  if (!authorization || authorization.length > MAX_TOKEN_LENGTH + 16) return undefined;
  const token = BEARER.exec(authorization)?.[1];
  return token !== undefined && token.length <= MAX_TOKEN_LENGTH ? token : undefined;
}
