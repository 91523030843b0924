import { CompactEncrypt, decodeProtectedHeader, SignJWT } from 'jose';
import { pathSegment, NAUGHTY_STRINGS } from './naughty.js';
import { sidOfJwt } from './reading.js';
import { Rng } from './prng.js';

/**
 * Forged and mangled credentials, built from random bytes and from the credentials the server
 * really issued (flipped, cut, spliced, swapped between users), in each format a channel can
 * carry: signed ids (`id.signature`), JWTs, and the cookie store's sealed sessions (JWE).
 * Most were never issued; the rest are issued ones replayed after their session ended, or
 * re-encoded so that they read back as the original. The forger only makes them: the oracle
 * decides which answers to them were legitimate.
 */

export type CredentialFormat = 'signed-id' | 'jwt' | 'sealed';

/** What the server has handed out so far: the raw material of forgeries. */
export interface ForgeryMaterial {
  /** Every session cookie value issued (Set-Cookie). */
  readonly cookies: readonly string[];
  /** Every token issued (X-Session-Token). */
  readonly tokens: readonly string[];
  /** Session ids seen in issued credentials. */
  readonly sessionIds: readonly string[];
  /** User names that really signed in. */
  readonly users: readonly string[];
  /** Cookies and tokens of sessions since ended (logged out, rotated away at sign-in, revoked): replays that must fail. */
  readonly endedCookies: readonly string[];
  readonly endedTokens: readonly string[];
}

/** A forged input and what kind it is (for counts and reports). */
export type Forged = readonly [kind: string, value: string];

/** A key no server of the test has: signs and encrypts the "right-looking" forgeries. */
const WRONG_KEY = new TextEncoder().encode('not-the-sample-secret-0123456789abcdefghij');
const WRONG_AES_KEY = new Uint8Array(32).fill(7);

const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export class Forger {
  constructor(
    private readonly rng: Rng,
    private readonly material: ForgeryMaterial,
  ) {}

  /** A value for the session cookie, forged in the format the cookie channel carries (or another). */
  async cookieValue(format: CredentialFormat): Promise<Forged> {
    const { rng } = this;
    const real = this.realCookie();
    return rng.weighted<() => Promise<Forged> | Forged>([
      [3, () => ['random base64url', rng.base64url(rng.int(0, 120))]],
      [4, () => ['id.sig with a wrong signature', `${rng.base64url(43)}.${rng.base64url(43)}`]],
      [3, () => (real ? ['real id, random signature', `${real.split('.')[0]}.${rng.base64url(43)}`] : ['random', rng.base64url(87)])],
      [6, () => this.mangled(real ?? rng.base64url(87), 'cookie')],
      [2, () => ['huge value', rng.base64url(rng.pick([4097, 8000, 12000]))]],
      [1, () => ['oversized header', 'A'.repeat(20_000)]],
      [3, () => ['odd characters', rng.headerText(rng.int(1, 80))]],
      [3, () => ['percent escapes', rng.pick(['%', '%zz', '%00', '%E0%A4%A', '%ff%fe', '%2e%2e%2f', pathSegment(rng.pick(NAUGHTY_STRINGS))])]],
      [2, () => this.bearerToken(format === 'sealed' ? 'sealed' : 'jwt').then(([kind, value]) => [`token in the cookie: ${kind}`, value] as const)],
      [2, () => this.spliced(this.material.cookies)],
      [1, () => ['naughty string', pathSegment(rng.pick(NAUGHTY_STRINGS))]],
      [this.material.endedCookies.length > 0 ? 4 : 0, () => ['replay of an ended session', rng.pick(this.material.endedCookies)]],
    ])();
  }

  /** A whole Cookie header: the forged value alone, duplicated beside a real one, misnamed… */
  async cookieHeader(format: CredentialFormat): Promise<Forged> {
    const { rng } = this;
    const [kind, value] = await this.cookieValue(format);
    const real = this.realCookie() ?? rng.base64url(87);
    const other = this.realCookie() ?? rng.base64url(87);
    return rng.weighted<Forged>([
      [10, [kind, `sid=${value}`]],
      [2, [`duplicate sid, forged first (${kind})`, `sid=${value}; sid=${real}`]],
      [2, [`duplicate sid, real first (${kind})`, `sid=${real}; sid=${value}`]],
      [1, ['two real sids of different sessions', `sid=${real}; sid=${other}`]],
      [1, ['real sid, misnamed', rng.pick([`SID=${real}`, `sid =${real}`, `sids=${real}`, `xsid=${real}`, `s%69d=${real}`])]],
      [1, ['real sid, quoted', `sid="${real}"`]],
      [1, ['real sid among other cookies', `a=1; sid=${real}; b="x;y"`]],
      [1, [`empty and bare names (${kind})`, rng.pick(['sid', 'sid=', ';;;sid=;;', `sid=${value}=${value}`, '=', `${value}`])]],
    ]);
  }

  /** An Authorization header: schemes mangled, or a Bearer token forged in `format`. */
  async authorization(format: CredentialFormat): Promise<Forged> {
    const { rng } = this;
    const [kind, token] = await this.bearerToken(format);
    return rng.weighted<Forged>([
      [12, [kind, `Bearer ${token}`]],
      [1, [`scheme case (${kind})`, `${rng.pick(['bearer', 'BEARER', 'BeArEr'])} ${token}`]],
      [1, [`odd spacing (${kind})`, rng.pick([`Bearer  ${token}`, `Bearer ${token} `, `Bearer\t${token}`, ` Bearer ${token}`])]],
      [1, ['two tokens', `Bearer ${token} ${this.realToken() ?? token}`]],
      [1, ['other schemes', rng.pick(['Basic YWxpY2U6ZGVtbw==', 'Bearer', 'Bearer ', 'Token abc', 'Digest x', rng.headerText(40)])]],
      [1, ['huge bearer', `Bearer ${rng.base64url(rng.pick([4200, 9000]))}`]],
    ]);
  }

  /** A Bearer token forged in `format`, or a real one mangled. */
  async bearerToken(format: CredentialFormat): Promise<Forged> {
    const { rng } = this;
    const real = this.realToken();
    const forgeries: Array<readonly [number, () => Promise<Forged> | Forged]> = [
      [2, () => ['random base64url', rng.base64url(rng.int(1, 200))]],
      [2, () => ['id.sig with a wrong signature', `${rng.base64url(43)}.${rng.base64url(43)}`]],
      [4, () => this.mangled(real ?? this.realCookie() ?? rng.base64url(87), 'token')],
      [2, () => this.spliced(this.material.tokens)],
      [1, () => ['a real cookie as a token', this.realCookie() ?? rng.base64url(87)]],
      [this.material.endedTokens.length > 0 ? 4 : 0, () => ['replay of an ended session', rng.pick(this.material.endedTokens)]],
    ];
    if (format === 'jwt') forgeries.push([8, () => this.forgedJwt()]);
    if (format === 'sealed') forgeries.push([8, () => this.forgedSeal()]);
    // Every format sees the others' forgeries too: a JWT where a seal is expected, and so on.
    forgeries.push([1, () => this.forgedJwt()], [1, () => this.forgedSeal()]);
    return rng.weighted(forgeries)();
  }

  /** A JWT the server never signed: `alg: none`, another key, expired, claims edited or swapped. */
  async forgedJwt(): Promise<Forged> {
    const { rng } = this;
    const sid = this.material.sessionIds.length > 0 && rng.chance(0.8) ? rng.pick(this.material.sessionIds) : rng.base64url(43);
    const sub = this.material.users.length > 0 ? rng.pick(this.material.users) : 'alice';
    const claims = { sid, sub, iat: nowSeconds(), exp: nowSeconds() + 3600 };
    const real = this.realToken();
    const parts = real?.split('.');
    return rng.weighted<() => Promise<Forged> | Forged>([
      [
        3,
        () => [
          'JWT alg none',
          `${b64json({ alg: rng.pick(['none', 'None', 'NONE']), typ: 'JWT' })}.${b64json(claims)}.${rng.pick(['', rng.base64url(43)])}`,
        ],
      ],
      [3, async () => ['JWT signed with a wrong key', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(WRONG_KEY)]],
      [
        2,
        async () => [
          'expired JWT, wrong key',
          await new SignJWT({ ...claims, exp: nowSeconds() - rng.int(1, 86_400) }).setProtectedHeader({ alg: 'HS256' }).sign(WRONG_KEY),
        ],
      ],
      [1, async () => ['JWT HS512, wrong key', await new SignJWT(claims).setProtectedHeader({ alg: 'HS512' }).sign(WRONG_KEY)]],
      [1, () => ['JWT alg RS256 with junk signature', `${b64json({ alg: 'RS256' })}.${b64json(claims)}.${rng.base64url(342)}`]],
      [
        1,
        () => [
          'JWT with hostile header',
          `${b64json(
            rng.pick([
              { alg: 'HS256', kid: '../../../dev/null' },
              { alg: 'HS256', jku: 'http://127.0.0.1/' },
              { alg: 'HS256', crit: ['exp'] },
              { alg: 'HS256', b64: false, crit: ['b64'] },
            ]),
          )}.${b64json(claims)}.${rng.base64url(43)}`,
        ],
      ],
      [
        3,
        () =>
          parts?.length === 3
            ? [
                'real JWT, claims edited',
                `${parts[0]}.${b64json({ ...claims, sid: sidOfJwt(real!) ?? sid, sub: rng.pick([sub, 'admin', '']) })}.${parts[2]}`,
              ]
            : ['JWT alg none', `${b64json({ alg: 'none' })}.${b64json(claims)}.`],
      ],
      [2, () => ['real JWT, payload of another', this.partsSwapped(this.material.tokens, 3, 1)]],
      [1, () => ['JWT-shaped garbage', `${rng.base64url(36)}.${rng.base64url(rng.int(0, 300))}.${rng.base64url(43)}`]],
    ])();
  }

  /** A sealed session the server never sealed: another key, headers edited, parts swapped. */
  async forgedSeal(): Promise<Forged> {
    const { rng } = this;
    const real = this.material.tokens.find((t) => t.split('.').length === 5) ?? this.material.cookies.find((t) => t.split('.').length === 5);
    const kid = real ? headerOf(real).kid : undefined;
    const plaintext = JSON.stringify({
      v: 1,
      id: rng.base64url(43),
      c: Date.now(),
      s: Date.now(),
      e: Date.now() + 3_600_000,
      u: rng.pick([...this.material.users, 'admin']),
      d: {},
    });
    return rng.weighted<() => Promise<Forged> | Forged>([
      [
        3,
        async () => [
          'JWE sealed with a wrong key',
          await new CompactEncrypt(new TextEncoder().encode(plaintext))
            .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', ...(kid && { kid }) })
            .encrypt(WRONG_AES_KEY),
        ],
      ],
      [2, () => ['JWE with random parts', Array.from({ length: 5 }, (_, i) => (i === 1 ? '' : rng.base64url(rng.int(8, 120)))).join('.')]],
      [
        2,
        () => [
          'real seal, parts of another',
          this.partsSwapped(
            [...this.material.cookies, ...this.material.tokens].filter((t) => t.split('.').length === 5),
            5,
            rng.int(2, 4),
          ),
        ],
      ],
      [
        2,
        () => {
          const header = rng.pick([
            { alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 100_000_000, p2s: 'AAAAAAAAAAAAAAAAAAAAAA' },
            { alg: 'dir', enc: 'A256GCM', zip: 'DEF', kid },
            { alg: 'none', enc: 'A256GCM' },
            { alg: 'dir', enc: 'A128CBC-HS256', kid },
          ]);
          const rest = real ? real.split('.').slice(1).join('.') : `.${rng.base64url(16)}.${rng.base64url(60)}.${rng.base64url(22)}`;
          return ['real seal, header replaced', `${b64json(header)}.${rest}`];
        },
      ],
    ])();
  }

  /** A real credential altered a little: one character flipped, cut short, extended, or re-encoded. */
  private mangled(real: string, where: 'cookie' | 'token'): Forged {
    const { rng } = this;
    const at = rng.int(0, real.length - 1);
    // Per-character choices come from a generator of their own, so that how many letters a real
    // (random) id holds does not shift the main sequence: a seed replays the same inputs.
    const local = new Rng(rng.int(0, 0xffffffff));
    return rng.weighted<Forged>([
      [5, ['real, one character flipped', `${real.slice(0, at)}${rng.otherBase64urlChar(real[at])}${real.slice(at + 1)}`]],
      [1, ['real, last character flipped', `${real.slice(0, -1)}${rng.otherBase64urlChar(real.slice(-1))}`]],
      [1, ['real, case flipped', `${real.slice(0, at)}${swapCase(real[at])}${real.slice(at + 1)}`]],
      [3, ['real, truncated', real.slice(0, rng.int(0, real.length - 1))]],
      [1, ['real, extended', `${real}${rng.pick(['=', '.', 'A', '==', rng.base64url(4), '.x'])}`]],
      [1, ['real, first part dropped', real.slice(real.indexOf('.') + 1)]],
      // Decodes back to the real value on the server: it must be taken as the real credential, or ignored.
      [
        where === 'cookie' ? 1 : 0,
        ['real, percent-encoded', real.replace(/[A-Za-z]/g, (c) => (local.chance(0.3) ? `%${c.charCodeAt(0).toString(16)}` : c))],
      ],
      [1, ['real, with spaces', ` ${real} `]],
    ]);
  }

  /** The first part of one real credential with the rest of another (id of one, signature of another). */
  private spliced(values: readonly string[]): Forged {
    if (values.length < 2) return ['random id.sig', `${this.rng.base64url(43)}.${this.rng.base64url(43)}`];
    const [a, b] = [this.rng.pick(values), this.rng.pick(values)];
    return ['two real credentials spliced', `${a.split('.')[0]}.${b.split('.').slice(1).join('.')}`];
  }

  /** A real compact credential whose part `index` comes from another real one. */
  private partsSwapped(values: readonly string[], count: number, index: number): string {
    const fitting = values.filter((v) => v.split('.').length === count);
    if (fitting.length === 0) return Array.from({ length: count }, () => this.rng.base64url(20)).join('.');
    const target = this.rng.pick(fitting).split('.');
    target[index] = this.rng.pick(fitting).split('.')[index];
    return target.join('.');
  }

  private realCookie(): string | undefined {
    return this.material.cookies.length > 0 ? this.rng.pick(this.material.cookies) : undefined;
  }

  private realToken(): string | undefined {
    return this.material.tokens.length > 0 ? this.rng.pick(this.material.tokens) : undefined;
  }
}

function swapCase(char: string): string {
  return char === char.toUpperCase() ? char.toLowerCase() : char.toUpperCase();
}

function headerOf(compact: string): { kid?: string } {
  try {
    return decodeProtectedHeader(compact) as { kid?: string };
  } catch {
    return {};
  }
}
