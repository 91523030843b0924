import { hkdfSync } from 'node:crypto';

/** What a key derived from a secret is for: each purpose has its own key. */
export type KeyPurpose = 'signed-id' | 'jwt' | 'seal';

/**
 * HKDF-SHA256 inputs. One secret serves every purpose, and no two purposes share a key, nor does
 * any key equal the secret: a signature made for one format can never pass as another's (a
 * signed id's HMAC as a JWT's, say), and a service given the JWT key cannot sign cookies. The
 * labels are part of the formats: changing one signs everybody out.
 */
const SALT = 'nestjs-session-sync';
const LABELS: Readonly<Record<KeyPurpose, string>> = {
  'signed-id': 'signed session id v1',
  jwt: 'jwt session token v1',
  seal: 'cookie store seal v1',
};
const KEY_BYTES = 32;

/** The 32-byte key `secret` gives for `purpose`. */
export function deriveKey(secret: string, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, SALT, LABELS[purpose], KEY_BYTES));
}

/**
 * The HS256 key that verifies this module's JWT session tokens (`tokenFormat: 'jwt'`), for
 * another service that holds the secret and reads the tokens itself.
 *
 * @example
 * ```ts
 * import { jwtVerify } from 'jose';
 * const { payload } = await jwtVerify(token, sessionJwtKey(process.env.SESSION_SECRET!), { algorithms: ['HS256'] });
 * ```
 */
export function sessionJwtKey(secret: string): Uint8Array {
  return new Uint8Array(deriveKey(secret, 'jwt'));
}
