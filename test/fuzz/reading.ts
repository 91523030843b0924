import { parse } from 'cookie';
import { isSessionId } from '../../lib/index.js';
import type { Answer } from './report.js';

/**
 * How the fuzz test reads credentials, in requests and in answers: as the server's own parsers
 * read them (the `cookie` package, the `Bearer` pattern) and, where the test must not guess
 * narrower than a future server might, every other plausible reading too.
 */

/** `Authorization: Bearer <token>` as the header transport reads it. */
const STRICT_BEARER = /^Bearer +([^\s]+) *$/i;
/** Looser: any token after the scheme, whatever follows. */
const LOOSE_BEARER = /^\s*bearer\s+(\S+)/i;

/** The session cookie value as the server's `cookie` parser reads it (the first `sid`, decoded). */
export function parsedSid(header: string | undefined): string | undefined {
  return header === undefined ? undefined : parse(header).sid;
}

/** Every `sid` value a Cookie header may be read as: parsed, raw, unquoted, decoded. */
export function cookieCandidates(header: string | undefined): string[] {
  if (header === undefined) return [];
  const values = new Set<string>();
  const parsed = parsedSid(header);
  if (parsed !== undefined) values.add(parsed);
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== 'sid') continue;
    const raw = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    values.add(raw).add(safeDecode(raw));
  }
  return [...values];
}

/** How many `sid` cookies a header carries. */
export function sidPairs(header: string | undefined): number {
  return (header ?? '').split(';').filter((pair) => pair.split('=')[0].trim() === 'sid').length;
}

export function strictBearer(authorization: string | undefined): string | undefined {
  return STRICT_BEARER.exec(authorization ?? '')?.[1];
}

export function bearerCandidates(authorization: string | undefined): string[] {
  return [strictBearer(authorization), LOOSE_BEARER.exec(authorization ?? '')?.[1]].filter((v): v is string => v !== undefined);
}

/** The session an issued credential names, read from its shape: `id.sig` its id, a JWT its `sid` claim (sealed sessions show none). */
export function sessionNamedBy(credential: string): string | undefined {
  const parts = credential.split('.');
  if (parts.length === 2 && isSessionId(parts[0])) return parts[0];
  if (parts.length === 3) return sidOfJwt(credential);
  return undefined;
}

/** The `sid` claim of a JWT, read without verifying. */
export function sidOfJwt(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sid?: unknown };
    return typeof payload.sid === 'string' ? payload.sid : undefined;
  } catch {
    return undefined;
  }
}

/** The session cookie an answer sets (decoded): '' when it clears it, undefined when it sets none. */
export function issuedCookie(answer: Answer): string | undefined {
  const line = [answer.headers['set-cookie'] ?? []].flat().find((l) => l.startsWith('sid='));
  return line === undefined ? undefined : safeDecode(line.slice(4).split(';')[0]);
}

/** The token an answer hands out in X-Session-Token: '' when it takes it back. */
export function issuedToken(answer: Answer): string | undefined {
  const value = answer.headers['x-session-token'];
  return Array.isArray(value) ? value[0] : value;
}

export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
