import { isSessionId } from './session-id.js';
import { isCanonicalCompact } from './jose.js';
import { sessionJwtKey } from './keys.js';
import type { Jose } from './jose.js';

/** What a JWT token is issued for. */
export interface JwtSubject {
  /** The session id: the `sid` claim. */
  id: string;
  /** The signed-in user: the `sub` claim, absent when nobody is signed in. */
  userId: string | null;
  /** The session's expiry (ms since the epoch): the `exp` claim, in seconds. */
  expiresAt: number;
}

/**
 * Session tokens as signed JWTs (HS256, by `jose`) for clients that read their claims:
 * `sub` (the user), `sid` (the session), `iat` and `exp`. The token names a server-side session,
 * so it is verified and then looked up on every request: a logout or a revoke ends it at once.
 *
 * The HMAC key is derived from the secret for JWTs alone (`sessionJwtKey(secret)`, exported, so
 * a service that holds the secret verifies tokens with any JWT library). A token must carry
 * `exp` and `sid` and the header `typ: 'JWT'`. Rotation: the first secret signs, every secret
 * verifies.
 */
export class SessionJwt {
  private readonly keys: readonly Uint8Array[];

  constructor(
    private readonly jose: Jose,
    secrets: readonly string[],
  ) {
    this.keys = secrets.map((secret) => sessionJwtKey(secret));
  }

  issue(subject: JwtSubject): Promise<string> {
    const jwt = new this.jose.SignJWT({ sid: subject.id })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(subject.expiresAt / 1000));
    if (subject.userId !== null) jwt.setSubject(subject.userId);
    return jwt.sign(this.keys[0]);
  }

  /**
   * The session id a token names, and whether a secret other than the first signed it; null
   * when the token is not one of ours or no longer valid: a bad signature, another algorithm
   * (`none` included), an expired `exp`, a malformed token. Never throws for bad input.
   */
  async verify(token: string): Promise<{ id: string; stale: boolean } | null> {
    if (!isCanonicalCompact(token, 3)) return null;
    for (const [index, key] of this.keys.entries()) {
      try {
        const { payload } = await this.jose.jwtVerify(token, key, { algorithms: ['HS256'], typ: 'JWT', requiredClaims: ['exp', 'sid'] });
        return isSessionId(payload.sid) ? { id: payload.sid, stale: index > 0 } : null;
      } catch (error) {
        // Only a signature made with another key is worth trying the next secret on.
        if (!(error instanceof this.jose.errors.JWSSignatureVerificationFailed)) return null;
      }
    }
    return null;
  }
}
