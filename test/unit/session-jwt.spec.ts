import { describe, expect, it } from '@jest/globals';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { SignJWT } from 'jose';
import { generateSessionId, isCanonicalCompact, loadJose, SessionJwt, sessionJwtKey } from '../../lib/crypto/index.js';

type SignJwtLike = SignJWT;

const SECRET = 'jwt-unit-secret-0123456789abcdefghijkl';
const NEXT_SECRET = 'jwt-unit-next-secret-zyxwvutsrqponmlkji';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const jwtWith = async (secrets: string[]): Promise<SessionJwt> => new SessionJwt(await loadJose('tests'), secrets);

describe('SessionJwt', () => {
  it('issues an HS256 JWT with sid, sub, iat and exp (in seconds) and verifies it back to the session id', async () => {
    const jwt = await jwtWith([SECRET]);
    const id = generateSessionId();
    const expiresAt = Date.now() + 30 * 60_000;

    const token = await jwt.issue({ id, userId: 'u1', expiresAt });

    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(decodeJwt(token)).toEqual({ sid: id, sub: 'u1', iat: expect.any(Number), exp: Math.floor(expiresAt / 1000) });
    await expect(jwt.verify(token)).resolves.toEqual({ id, stale: false });
  });

  it('signs with the key sessionJwtKey() derives from the secret, not the secret itself', async () => {
    const { jwtVerify } = await loadJose('tests');
    const token = await (await jwtWith([SECRET])).issue({ id: generateSessionId(), userId: 'u1', expiresAt: Date.now() + 60_000 });

    await expect(jwtVerify(token, sessionJwtKey(SECRET))).resolves.toBeDefined();
    await expect(jwtVerify(token, new TextEncoder().encode(SECRET))).rejects.toThrow();
  });

  it.each([
    ['without exp', (jwt: SignJwtLike) => jwt.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })],
    ['with typ other than JWT', (jwt: SignJwtLike) => jwt.setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).setExpirationTime('1h')],
  ])('refuses a token %s, though signed with the right key', async (_what, shape) => {
    const { SignJWT } = await loadJose('tests');
    const token = await shape(new SignJWT({ sid: generateSessionId() }).setSubject('u1').setIssuedAt()).sign(sessionJwtKey(SECRET));

    await expect((await jwtWith([SECRET])).verify(token)).resolves.toBeNull();
  });

  it('leaves sub out when nobody is signed in', async () => {
    const jwt = await jwtWith([SECRET]);

    const token = await jwt.issue({ id: generateSessionId(), userId: null, expiresAt: Date.now() + 60_000 });

    expect(decodeJwt(token)).not.toHaveProperty('sub');
  });

  it('verifies with every secret, marking a token of an older secret stale, and signs with the first (rotation)', async () => {
    const id = generateSessionId();
    const old = await (await jwtWith([SECRET])).issue({ id, userId: 'u1', expiresAt: Date.now() + 60_000 });
    const rotated = await jwtWith([NEXT_SECRET, SECRET]);

    await expect(rotated.verify(old)).resolves.toEqual({ id, stale: true });
    const fresh = await rotated.issue({ id, userId: 'u1', expiresAt: Date.now() + 60_000 });
    await expect((await jwtWith([NEXT_SECRET])).verify(fresh)).resolves.toEqual({ id, stale: false });
    await expect((await jwtWith([NEXT_SECRET])).verify(old)).resolves.toBeNull();
  });

  it("refuses a token whose signature differs only in base64url's spare bits", async () => {
    const jwt = await jwtWith([SECRET]);
    const token = await jwt.issue({ id: generateSessionId(), userId: 'u1', expiresAt: Date.now() + 60_000 });
    const last = token[token.length - 1];

    // 32 signature bytes are 43 characters: the last one carries 2 spare bits.
    const altered = token.slice(0, -1) + BASE64URL[BASE64URL.indexOf(last) ^ 1];

    await expect(jwt.verify(altered)).resolves.toBeNull();
  });

  it('refuses a token naming something that is not a session id', async () => {
    const { SignJWT } = await loadJose('tests');
    const jwt = await jwtWith([SECRET]);
    const forged = await new SignJWT({ sid: '../../etc/passwd' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setExpirationTime('1h')
      .sign(sessionJwtKey(SECRET));

    await expect(jwt.verify(forged)).resolves.toBeNull();
  });
});

describe('isCanonicalCompact', () => {
  it('accepts canonical base64url parts in the expected number, and nothing else', () => {
    expect(isCanonicalCompact('eyJh.YWJj.', 3)).toBe(true);
    expect(isCanonicalCompact('eyJh.YWJj', 3)).toBe(false);
    expect(isCanonicalCompact('eyJh.YWJj.x.y', 3)).toBe(false);
    expect(isCanonicalCompact('eyJh.YWJk.', 3)).toBe(true);
    // "YQ" is the byte "a" with four zero spare bits; "YR" is the same byte with a spare bit set.
    expect(isCanonicalCompact('eyJh.YQ.', 3)).toBe(true);
    expect(isCanonicalCompact('eyJh.YR.', 3)).toBe(false);
    expect(isCanonicalCompact('eyJh.Y+Jj.', 3)).toBe(false);
  });
});
