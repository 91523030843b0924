import { createHash } from 'node:crypto';
import { isCanonicalCompact } from './jose.js';
import { deriveKey } from './keys.js';
import type { Jose } from './jose.js';

/** What opening a seal gives: the sealed text, and whether an older secret sealed it. */
export interface OpenedSeal {
  plaintext: string;
  /** Sealed with a secret other than the first: reseal it with the newest. */
  stale: boolean;
}

interface SealKey {
  /** Names the key in the JWE header, so opening tries one key, not all. */
  kid: string;
  key: Uint8Array;
}

/**
 * Authenticated encryption of whole sessions: JWE compact serialization, `dir` key management
 * with A256GCM, by `jose`. Rotation: the first secret seals, every secret opens.
 */
export class SessionSealer {
  private readonly keys: readonly SealKey[];

  constructor(
    private readonly jose: Jose,
    secrets: readonly string[],
  ) {
    this.keys = secrets.map((secret) => {
      // Derived for sealing alone (keys.ts), so it differs from the keys that sign ids and JWTs.
      const key = new Uint8Array(deriveKey(secret, 'seal'));
      return { key, kid: createHash('sha256').update(key).digest('base64url').slice(0, 8) };
    });
  }

  seal(plaintext: string): Promise<string> {
    const { key, kid } = this.keys[0];
    return new this.jose.CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid }).encrypt(key);
  }

  /**
   * The sealed text, or null when no secret of ours sealed it: tampered, truncated, made with a
   * secret since removed, or not a JWE at all. Never throws for bad input.
   */
  async open(sealed: string): Promise<OpenedSeal | null> {
    if (!isCanonicalCompact(sealed, 5)) return null;
    let index = -1;
    try {
      const { plaintext } = await this.jose.compactDecrypt(
        sealed,
        (header) => {
          index = this.keys.findIndex((k) => k.kid === header.kid);
          if (index < 0) throw new Error('sealed with an unknown key');
          return this.keys[index].key;
        },
        // Only what we seal with: no other algorithm is ever tried on input.
        { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] },
      );
      return { plaintext: new TextDecoder().decode(plaintext), stale: index > 0 };
    } catch {
      return null;
    }
  }
}
