import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { AtRestCipher, resolveEncryptionKeys, SEALED_VALUE_PREFIX } from '../../lib/crypto/index.js';
import { SessionConfigError } from '../../lib/session.errors.js';

const newKey = (): Buffer => randomBytes(32);
const sessionKey = (): string => randomBytes(32).toString('base64url');

describe('AtRestCipher', () => {
  describe('values', () => {
    const cipher = new AtRestCipher([newKey()]);

    it('seals a value into a text that shows none of it, and opens it back', () => {
      const key = sessionKey();
      const sealed = cipher.seal('field', key, 'email', '"ada@example.com"');

      expect(sealed.startsWith(SEALED_VALUE_PREFIX)).toBe(true);
      expect(sealed).not.toContain('ada');
      expect(AtRestCipher.isSealed(sealed)).toBe(true);
      expect(cipher.open('field', key, 'email', sealed)).toEqual({ text: '"ada@example.com"', stale: false });
    });

    it('seals the same value twice into different texts (a fresh nonce each time)', () => {
      const key = sessionKey();

      expect(cipher.seal('field', key, 'role', '"admin"')).not.toBe(cipher.seal('field', key, 'role', '"admin"'));
    });

    it('opens nothing moved to another session, another field or another part of the session', () => {
      const key = sessionKey();
      const sealed = cipher.seal('field', key, 'role', '"admin"');

      expect(cipher.open('field', sessionKey(), 'role', sealed)).toBeNull();
      expect(cipher.open('field', key, 'plan', sealed)).toBeNull();
      expect(cipher.open('client', key, 'role', sealed)).toBeNull();
    });

    it('opens nothing altered, truncated, or not sealed at all, without throwing', () => {
      const key = sessionKey();
      const sealed = cipher.seal('field', key, 'role', '"admin"');
      const body = sealed.slice(sealed.lastIndexOf('.') + 1);
      const flipped = `${sealed.slice(0, -body.length)}${body[0] === 'A' ? 'B' : 'A'}${body.slice(1)}`;

      for (const value of [flipped, sealed.slice(0, -4), `${SEALED_VALUE_PREFIX}nokey.AAAA`, SEALED_VALUE_PREFIX, '"admin"', 42, null, undefined]) {
        expect(cipher.open('field', key, 'role', value)).toBeNull();
      }
    });
  });

  describe('key rotation', () => {
    it('opens under every key, reports stale what a key other than the first sealed, and seals under the first', () => {
      const [oldKey, newKeyBytes] = [newKey(), newKey()];
      const key = sessionKey();
      const byOld = new AtRestCipher([oldKey]).seal('field', key, 'cart', '[1]');
      const rotating = new AtRestCipher([newKeyBytes, oldKey]);

      expect(rotating.open('field', key, 'cart', byOld)).toEqual({ text: '[1]', stale: true });
      const byNew = rotating.seal('field', key, 'cart', '[1]');
      expect(new AtRestCipher([newKeyBytes]).open('field', key, 'cart', byNew)).toEqual({ text: '[1]', stale: false });
      expect(new AtRestCipher([newKeyBytes]).open('field', key, 'cart', byOld)).toBeNull();
    });
  });

  describe('user tokens', () => {
    const cipher = new AtRestCipher([newKey()]);

    it('gives one token per user, the same every time and on every node with the key, showing nothing of the user', () => {
      const token = cipher.userToken('ada@example.com');

      expect(cipher.userToken('ada@example.com')).toBe(token);
      expect(cipher.userToken('bob@example.com')).not.toBe(token);
      expect(token).not.toContain('ada');
      expect(cipher.openUserToken(token)).toEqual({ text: 'ada@example.com', stale: false });
    });

    it('reads back any well-formed user id exactly, symbols and astral characters included', () => {
      for (const userId of ['{}', 'a:b', '\ufffd', '😀', 'x'.repeat(300), '42']) {
        expect(cipher.openUserToken(cipher.userToken(userId))?.text).toBe(userId);
      }
    });

    it('opens no token altered or made under a key not configured', () => {
      const token = cipher.userToken('ada');
      // A character in the middle: the last one of base64url may carry padding bits only.
      const at = token.length - 8;
      const altered = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;

      expect(cipher.openUserToken(altered)).toBeNull();
      expect(cipher.openUserToken(new AtRestCipher([newKey()]).userToken('ada'))).toBeNull();
      expect(cipher.openUserToken('ada')).toBeNull();
    });

    it('lists the token under every key, the first key first, for indexes written before a rotation', () => {
      const [oldKey, newKeyBytes] = [newKey(), newKey()];
      const rotating = new AtRestCipher([newKeyBytes, oldKey]);

      expect(rotating.userTokens('ada')).toEqual([new AtRestCipher([newKeyBytes]).userToken('ada'), new AtRestCipher([oldKey]).userToken('ada')]);
      expect(rotating.openUserToken(new AtRestCipher([oldKey]).userToken('ada'))).toEqual({ text: 'ada', stale: true });
    });
  });
});

describe('resolveEncryptionKeys()', () => {
  const key = randomBytes(32).toString('base64url');

  it('reads one key or a list, as bytes, the first first', () => {
    const other = randomBytes(32).toString('base64url');

    expect(resolveEncryptionKeys(key)).toEqual([Buffer.from(key, 'base64url')]);
    expect(resolveEncryptionKeys([other, key]).map((bytes) => bytes.toString('base64url'))).toEqual([other, key]);
  });

  it.each([
    ['a short key', 'tooshort', /"encryptionKeys" must be 32 random bytes in base64url.*got 8 characters/],
    ['standard base64 padding', `${randomBytes(32).toString('base64')}`, /"encryptionKeys" must be 32 random bytes/],
    ['a list with a bad second key', [key, 'x'.repeat(44)], /"encryptionKeys\[1\]" must be 32 random bytes/],
    ['an empty list', [], /"encryptionKeys" must be a key or a non-empty array/],
    ['a number', 42, /"encryptionKeys" must be a key or a non-empty array/],
    ['a repeated key', [key, key], /"encryptionKeys\[1\]" repeats an earlier key/],
  ])('refuses %s, naming the option and the fix, never echoing a key', (name, value, message) => {
    const refuse = (): unknown => resolveEncryptionKeys(value);

    expect(refuse).toThrow(SessionConfigError);
    expect(refuse).toThrow(message);
    if (typeof value === 'string' && value !== 'tooshort') expect(refuse).not.toThrow(value);
    if (!/repeated/.test(name)) expect(refuse).toThrow(/randomBytes\(32\)\.toString\('base64url'\)/);
  });
});
