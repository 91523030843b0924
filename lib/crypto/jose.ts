import { SessionMessages } from '../session.errors.js';

/** The parts of `jose` this library uses: JWE for sealed sessions, JWS for JWT tokens. */
export type Jose = Pick<typeof import('jose'), 'CompactEncrypt' | 'compactDecrypt' | 'SignJWT' | 'jwtVerify' | 'errors'>;

let loading: Promise<Jose> | undefined;

/**
 * Loads `jose`, an optional peer dependency: only the cookie store and JWT tokens need it, so
 * only they load it, once, at start-up.
 * @param feature what needs it, for the "please install" message.
 */
export function loadJose(feature: string): Promise<Jose> {
  loading ??= import('jose').catch(() => {
    loading = undefined;
    throw new Error(SessionMessages.packageMissing(feature, 'jose'));
  });
  return loading;
}

/**
 * True when every dot-separated part of a compact JWS/JWE is canonical base64url. `jose`
 * ignores the spare low bits of a part's last character, so without this check a token altered
 * there would still verify: harmless (the bytes are the same) but a token should verify only
 * exactly as it was issued, as signed ids do.
 */
export function isCanonicalCompact(token: string, parts: number): boolean {
  const segments = token.split('.');
  return segments.length === parts && segments.every((s) => Buffer.from(s, 'base64url').toString('base64url') === s);
}
