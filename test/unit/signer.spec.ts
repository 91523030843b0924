import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { deriveKey, generateSessionId, isSessionId, hashSessionId, SessionIdSigner } from '../../lib/crypto/index.js';

const NEW_SECRET = 'n'.repeat(32);
const OLD_SECRET = 'o'.repeat(32);
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** `value` with the character at `index` replaced by another character of the same alphabet. */
function flipAt(value: string, index: number): string {
  const i = index < 0 ? value.length + index : index;
  const replacement = value[i] === 'A' ? 'B' : 'A';
  return value.slice(0, i) + replacement + value.slice(i + 1);
}

describe('generateSessionId()', () => {
  it('makes 43-character base64url ids: 32 random bytes', () => {
    const id = generateSessionId();

    expect(id).toHaveLength(43);
    expect(id).toMatch(BASE64URL);
    expect(Buffer.from(id, 'base64url')).toHaveLength(32);
  });

  it('never repeats over many draws', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => generateSessionId()));

    expect(ids.size).toBe(10_000);
  });

  it('spreads its bits: every bit position takes both values over many draws', () => {
    // A constant or mostly-zero byte (a weak generator, a short buffer padded out) shows up here.
    const ones = Array.from({ length: 256 }, () => 0);
    const draws = 2_000;
    for (let n = 0; n < draws; n++) {
      const bytes = Buffer.from(generateSessionId(), 'base64url');
      for (let bit = 0; bit < 256; bit++) ones[bit] += (bytes[bit >> 3] >> (bit & 7)) & 1;
    }

    for (const count of ones) {
      expect(count).toBeGreaterThan(draws * 0.35);
      expect(count).toBeLessThan(draws * 0.65);
    }
  });
});

describe('isSessionId()', () => {
  it('accepts ids made by generateSessionId()', () => {
    expect(isSessionId(generateSessionId())).toBe(true);
  });

  it.each([
    ['too short', 'a'.repeat(42)],
    ['too long', 'a'.repeat(44)],
    ['a path', `../../${'a'.repeat(37)}`],
    ['a key pattern', `${'a'.repeat(42)}*`],
    ['standard base64', `${'a'.repeat(41)}+/`],
    ['empty', ''],
  ])('rejects strings not shaped like our ids (%s)', (_what, value) => {
    expect(isSessionId(value)).toBe(false);
  });

  it.each([[undefined], [null], [42], [{}]])('rejects a non-string (%p)', (value) => {
    expect(isSessionId(value)).toBe(false);
  });
});

describe('hashSessionId()', () => {
  it('gives the SHA-256 of the id in base64url, shaped like an id and sharing no part of it', () => {
    const id = generateSessionId();
    const hashed = hashSessionId(id);

    expect(hashed).toBe(createHash('sha256').update(id).digest('base64url'));
    expect(isSessionId(hashed)).toBe(true);
    for (let i = 0; i + 6 <= hashed.length; i++) expect(id).not.toContain(hashed.slice(i, i + 6));
  });

  it('gives the same hash for the same id and different hashes for different ids', () => {
    const id = generateSessionId();

    expect(hashSessionId(id)).toBe(hashSessionId(id));
    expect(hashSessionId(generateSessionId())).not.toBe(hashSessionId(id));
  });
});

describe('SessionIdSigner', () => {
  const signer = new SessionIdSigner([NEW_SECRET]);

  it('signs as id.signature, with a 43-character base64url HMAC-SHA256', () => {
    const id = generateSessionId();
    const signed = signer.sign(id);
    const [head, signature, ...rest] = signed.split('.');

    expect(head).toBe(id);
    expect(rest).toEqual([]);
    expect(signature).toHaveLength(43);
    expect(signature).toMatch(BASE64URL);
  });

  it('gives back the id it signed', () => {
    const id = generateSessionId();

    expect(signer.unsign(signer.sign(id))).toBe(id);
  });

  it('signs one id the same way every time, and different ids differently', () => {
    const id = generateSessionId();
    const other = generateSessionId();

    expect(signer.sign(id)).toBe(signer.sign(id));
    expect(signer.sign(id).split('.')[1]).not.toBe(signer.sign(other).split('.')[1]);
  });

  it('does not verify a value signed with another secret', () => {
    const stranger = new SessionIdSigner(['s'.repeat(32)]);

    expect(signer.unsign(stranger.sign(generateSessionId()))).toBeNull();
  });

  describe('secret rotation', () => {
    const id = generateSessionId();
    const signedWithOld = new SessionIdSigner([OLD_SECRET]).sign(id);
    const rotated = new SessionIdSigner([NEW_SECRET, OLD_SECRET]);

    it('verifies a value signed with the old secret while the old secret is still listed second', () => {
      expect(rotated.unsign(signedWithOld)).toBe(id);
    });

    it('marks a value signed with a secret other than the first as stale, to be signed again', () => {
      expect(rotated.open(signedWithOld)).toEqual({ id, stale: true });
      expect(rotated.open(rotated.sign(id))).toEqual({ id, stale: false });
    });

    it('signs new values with the first secret', () => {
      expect(rotated.sign(id)).toBe(new SessionIdSigner([NEW_SECRET]).sign(id));
      expect(rotated.sign(id)).not.toBe(signedWithOld);
    });

    it('stops verifying the old value once the old secret is removed', () => {
      expect(new SessionIdSigner([NEW_SECRET]).unsign(signedWithOld)).toBeNull();
    });

    it('verifies values signed with either secret, whatever its position in the list', () => {
      const both = new SessionIdSigner([OLD_SECRET, NEW_SECRET]);

      expect(both.unsign(signedWithOld)).toBe(id);
      expect(both.unsign(new SessionIdSigner([NEW_SECRET]).sign(id))).toBe(id);
    });
  });

  describe('rejects tampered or malformed values', () => {
    const id = generateSessionId();
    const signed = signer.sign(id);
    const dot = signed.indexOf('.');

    it.each([
      ['a character of the id changed', flipAt(signed, 5)],
      ['the last character of the id changed', flipAt(signed, dot - 1)],
      ['a character of the signature changed', flipAt(signed, dot + 5)],
      ['the dot moved', `${signed.slice(0, dot - 1)}.${signed[dot - 1]}${signed.slice(dot + 1)}`],
      ['truncated by one character', signed.slice(0, -1)],
      ['the signature missing', `${id}.`],
      ['the bare id', id],
      ['an extra character', `${signed}A`],
      ['a second signature appended', `${signed}.${signed.slice(dot + 1)}`],
      ['no dot', signed.replace('.', 'A')],
      ['two dots', `${signed.slice(0, dot + 1)}.${signed.slice(dot + 2)}`],
      ['a dot in place of the last character', `${signed.slice(0, -1)}.`],
      ['an empty string', ''],
      ['only a dot', '.'],
      ['an 8 KB string', 'a'.repeat(8192)],
      ['an 8 KB string starting with the signed value', signed + 'a'.repeat(8192)],
      ['a non-ASCII character in the id', `é${signed.slice(1)}`],
    ])('%s', (_what, value) => {
      expect(signer.unsign(value)).toBeNull();
    });

    it('rejects every other value of the last signature character (base64 spare bits must not verify)', () => {
      // 32 bytes of HMAC fill 42 characters and 4 bits of the 43rd; its 2 spare bits decode to the
      // same bytes, so a byte-wise comparison would accept 3 other characters here.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = signed[signed.length - 1];
      const variants = [...alphabet].filter((c) => c !== last).map((c) => signed.slice(0, -1) + c);
      const decodingAlike = variants.filter((v) =>
        Buffer.from(v.slice(dot + 1), 'base64url').equals(Buffer.from(signed.slice(dot + 1), 'base64url')),
      );

      expect(decodingAlike.length).toBeGreaterThan(0);
      for (const variant of variants) expect(signer.unsign(variant)).toBeNull();
    });

    it('rejects a signature character swapped for a non-ASCII one whose low byte is the same', () => {
      // 'c' (U+0063) and 'ţ' (U+0163) share their low byte: a latin1 comparison cannot tell them
      // apart. A Cookie header can carry such a character percent-encoded (%C5%A3), and the
      // cookie parser decodes it.
      for (const index of [dot + 1, dot + 20, signed.length - 1]) {
        const swapped = signed.slice(0, index) + String.fromCharCode(signed.charCodeAt(index) + 0x100) + signed.slice(index + 1);

        expect(swapped).toHaveLength(signed.length);
        expect(signer.unsign(swapped)).toBeNull();
      }
    });

    it('rejects a signature character swapped for a Latin-1 one', () => {
      const swapped = `${signed.slice(0, -1)}é`;

      expect(signer.unsign(swapped)).toBeNull();
    });

    it('still verifies the untouched value (the cases above fail for the right reason)', () => {
      expect(signer.unsign(signed)).toBe(id);
    });
  });

  describe('remembers the values it verified', () => {
    it('rejects tampered variants of a value it has just verified: only exact values are remembered', () => {
      const remembering = new SessionIdSigner(['r'.repeat(32)]);
      const id = generateSessionId();
      const signed = remembering.sign(id);
      const dot = signed.indexOf('.');
      expect(remembering.unsign(signed)).toBe(id);

      for (const index of [0, dot - 1, dot + 1, signed.length - 1]) expect(remembering.unsign(flipAt(signed, index))).toBeNull();
      expect(remembering.unsign(signed)).toBe(id);
    });

    it('gives the same answer from memory as from the HMAC, stale flag included, and nobody can change it', () => {
      const rotating = new SessionIdSigner(['n'.repeat(32), 'o'.repeat(32)]);
      const id = generateSessionId();
      const signedWithOld = new SessionIdSigner(['o'.repeat(32)]).sign(id);

      const first = rotating.open(signedWithOld);
      const again = rotating.open(signedWithOld);

      expect(first).toEqual({ id, stale: true });
      expect(again).toEqual({ id, stale: true });
      expect(() => {
        (again as { id: string }).id = 'someone-else';
      }).toThrow(TypeError);
      expect(rotating.open(signedWithOld)).toEqual({ id, stale: true });
    });

    it('still verifies a value after more values than it remembers (10,000) came after it', () => {
      const busy = new SessionIdSigner(['b'.repeat(32)]);
      const firstId = generateSessionId();
      const first = busy.sign(firstId);
      expect(busy.unsign(first)).toBe(firstId);

      for (let i = 0; i < 10_050; i++) busy.unsign(busy.sign(generateSessionId()));

      expect(busy.unsign(first)).toBe(firstId);
      expect(busy.unsign(flipAt(first, first.length - 1))).toBeNull();
    });
  });
});

describe('SessionIdSigner keys', () => {
  const macOf = (key: Buffer | string, id: string): string => createHmac('sha256', key).update(id).digest('base64url');

  it('signs with a key derived from the secret for signing ids alone: an HMAC under the raw secret does not verify', () => {
    const signer = new SessionIdSigner([NEW_SECRET]);
    const id = generateSessionId();

    const signed = signer.sign(id);

    expect(signed).toBe(`${id}.${macOf(deriveKey(NEW_SECRET, 'signed-id'), id)}`);
    expect(signer.unsign(`${id}.${macOf(Buffer.from(NEW_SECRET, 'utf8'), id)}`)).toBeNull();
  });

  it('derives one key per purpose, none equal to another or to the secret', () => {
    const keys = (['signed-id', 'jwt', 'seal'] as const).map((purpose) => deriveKey(NEW_SECRET, purpose).toString('hex'));

    expect(new Set([...keys, Buffer.from(NEW_SECRET).toString('hex')]).size).toBe(4);
    expect(keys.every((key) => key.length === 64)).toBe(true);
  });
});
