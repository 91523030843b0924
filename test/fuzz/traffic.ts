import {
  BAD_JSON,
  CONTENT_TYPES,
  deepJson,
  naughtyString,
  NAUGHTY_STRINGS,
  pathSegment,
  POLLUTING_FORMS,
  POLLUTING_JSON,
  RAW_SEGMENTS,
  USER_ID_HAZARDS,
} from './naughty.js';
import { Forger } from './forgery.js';
import type { CredentialFormat } from './forgery.js';
import type { Oracle, Transport } from './oracle.js';
import { issuedCookie, issuedToken } from './reading.js';
import type { Rng } from './prng.js';
import { asText } from './report.js';
import type { Answer, SentRequest } from './report.js';

/**
 * The request stream of a fuzz run: a few real users who sign in with the right password and
 * keep their credentials, as a browser (cookie) or an API client (token); and, mixed in, every
 * kind of hostile input, on their credentials (hostile bodies of a signed-in user reach the
 * store) or on forged ones built from theirs.
 */

/** A legitimate client: who it signed in as, and the credential it holds on its channel. */
interface Client {
  user: string;
  channel: 'cookie' | 'header';
  cookie?: string;
  token?: string;
}

export interface TrafficSetup {
  transport: Transport;
  /** What the cookie and the Authorization header carry in this configuration. */
  cookieFormat: CredentialFormat;
  headerFormat: CredentialFormat;
}

const REAL_USERS = ['alice', 'bob', 'carol', 'dave'];
const MAX_CLIENTS = 16;
const JSON_TYPE = 'application/json';
/** Over the JSON parser's 100 kB limit, and just under it (a value that reaches the store). */
const OVER_LIMIT = [110_000, 250_000];
const UNDER_LIMIT = [20_000, 90_000];

type Route = readonly [method: string, path: string];

export class Traffic {
  private readonly clients: Client[] = [];
  private readonly forger: Forger;

  constructor(
    private readonly rng: Rng,
    private readonly oracle: Oracle,
    private readonly setup: TrafficSetup,
  ) {
    this.forger = new Forger(rng, oracle.material);
  }

  /** The next request, and the client whose credential it carries (if any). */
  async next(): Promise<[SentRequest, Client | undefined]> {
    const { rng } = this;
    const client = this.clients.length > 0 ? rng.pick(this.clients) : undefined;
    const readsHeader = this.setup.transport !== 'cookie';
    const pick = rng.weighted<string>([
      [this.clients.length < 4 ? 30 : 8, 'sign-in'],
      [client ? 22 : 0, 'client'],
      [client ? 14 : 0, 'client, hostile body'],
      [18, 'forged cookie'],
      [readsHeader ? 14 : 3, 'forged bearer'],
      [readsHeader && client ? 4 : 0, 'mixed channels'],
      [8, 'login body'],
      [8, 'prefs body'],
      [3, 'visits body'],
      [3, 'odd route'],
    ]);
    switch (pick) {
      case 'sign-in':
        return [this.signIn(), undefined];
      case 'client':
        return [this.withClient(client!, this.route(), 'legitimate'), client];
      case 'client, hostile body':
        return [this.withClient(client!, this.hostileBody(), 'legitimate'), client];
      case 'forged cookie': {
        const [kind, cookie] = await this.forger.cookieHeader(this.setup.cookieFormat);
        return [withHeaders(this.route(), `cookie: ${kind}`, { Cookie: cookie }), undefined];
      }
      case 'forged bearer': {
        const [kind, authorization] = await this.forger.authorization(this.setup.headerFormat);
        return [withHeaders(this.route(), `bearer: ${kind}`, { Authorization: authorization }), undefined];
      }
      case 'mixed channels':
        return [await this.mixed(client!), undefined];
      case 'login body':
        return [this.loginBody(), undefined];
      case 'prefs body':
        return [this.prefsBody(), undefined];
      case 'visits body':
        return [this.visitsBody(), undefined];
      default:
        return [this.oddRoute(), undefined];
    }
  }

  /** Keeps a client's credentials as a browser or an API client would, and signs it in on a 200 login. */
  update(client: Client | undefined, req: SentRequest, answer: Answer): void {
    if (answer.error !== undefined) return;
    const [cookie, token] = [issuedCookie(answer), issuedToken(answer)];
    const target = client ?? (req.kind === 'sign-in' && answer.status === 200 ? this.adopt(req) : undefined);
    if (!target) return;
    if (cookie !== undefined) target.cookie = cookie || undefined;
    if (token !== undefined) target.token = token || undefined;
    if (req.path === '/auth/login' && answer.status === 200) target.user = asText((answer.body as { userId?: unknown }).userId);
    const at = this.clients.indexOf(target);
    // Signed out (or never given a credential on its channel): nothing left to send.
    if (at >= 0 && !(target.channel === 'cookie' ? target.cookie : target.token)) this.clients.splice(at, 1);
  }

  /** A new client signing in with the right password, as a real user or under a naughty user name. */
  private signIn(): SentRequest {
    const { rng } = this;
    const username = rng.weighted<() => string>([
      [4, () => rng.pick(REAL_USERS)],
      [4, () => rng.pick(USER_ID_HAZARDS)],
      [2, () => naughtyString(rng)],
    ])();
    return { ...this.json(['POST', '/auth/login'], { username, password: 'demo' }), kind: 'sign-in', login: { username, password: 'demo' } };
  }

  private adopt(req: SentRequest): Client {
    const channel =
      this.setup.transport === 'both' ? this.rng.pick(['cookie', 'header'] as const) : this.setup.transport === 'header' ? 'header' : 'cookie';
    const client: Client = { user: asText(req.login?.username), channel };
    this.clients.push(client);
    if (this.clients.length > MAX_CLIENTS) this.clients.splice(this.rng.int(0, this.clients.length - 1), 1);
    return client;
  }

  /** `req` sent with the client's credential on its channel (no header at all if it holds none). */
  private withClient(client: Client, req: SentRequest, kind: string): SentRequest {
    const headers: Record<string, string> = {};
    if (client.channel === 'cookie' && client.cookie) headers.Cookie = `sid=${client.cookie}`;
    if (client.channel === 'header' && client.token) headers.Authorization = `Bearer ${client.token}`;
    return withHeaders(req, kind, headers);
  }

  /** A client's real cookie (or another's) sent with a forged bearer token, or with another client's real one. */
  private async mixed(client: Client): Promise<SentRequest> {
    const other = this.rng.pick(this.clients);
    const [kind, forged] = await this.forger.authorization(this.setup.headerFormat);
    const cookie = client.cookie ?? other.cookie;
    const authorization = this.rng.chance(0.5) && other.token ? `Bearer ${other.token}` : forged;
    const headers: Record<string, string> = { Authorization: authorization };
    if (cookie) headers.Cookie = `sid=${cookie}`;
    return withHeaders(this.route(), `mixed: real cookie + ${authorization === forged ? kind : "another client's token"}`, headers);
  }

  /** A route of the contract, weighted towards the ones a credential matters on. */
  private route(): SentRequest {
    const { rng } = this;
    const route = rng.weighted<Route>([
      [6, ['GET', '/profile']],
      [3, ['GET', '/session']],
      [2, ['GET', '/auth/sessions']],
      [3, ['POST', '/visits']],
      [2, ['PUT', `/prefs/${rng.pick(['theme', 'lang', 'a-b_c'])}`]],
      // Revoking often: a revocation that reaches another user's sessions, or misses one of the
      // user's own, is how two user ids sharing an index show (SPEC §3.12).
      [2, ['DELETE', '/auth/sessions']],
      [
        1,
        [
          'DELETE',
          `/auth/sessions/${pathSegment(this.oracle.listedIds.length > 0 && rng.chance(0.7) ? rng.pick(this.oracle.listedIds) : rng.base64url(16))}`,
        ],
      ],
      [1, ['POST', '/auth/logout']],
      [1, ['POST', '/auth/login']],
      [0.3, ['GET', '/health']],
    ]);
    if (route[0] === 'PUT') return { ...this.json(route, { value: rng.pick(['dark', 1, { code: 'fr' }]) }), kind: 'route' };
    if (route[1] === '/auth/login') {
      const username = rng.pick(REAL_USERS);
      return { ...this.json(route, { username, password: 'demo' }), kind: 'route', login: { username, password: 'demo' } };
    }
    return this.plain(route);
  }

  private hostileBody(): SentRequest {
    return this.rng.weighted<() => SentRequest>([
      [3, () => this.prefsBody()],
      [2, () => this.loginBody()],
      [1, () => this.visitsBody()],
    ])();
  }

  /** `POST /auth/login` with naughty user names, wrong passwords and types, polluting keys, bad JSON. */
  private loginBody(): SentRequest {
    const { rng } = this;
    const route: Route = ['POST', '/auth/login'];
    const username = rng.weighted<unknown>([
      [6, naughtyString(rng)],
      [2, rng.pick(REAL_USERS)],
      [1, rng.pick<unknown>([42, null, true, ['alice'], { $ne: '' }, { toString: 'alice' }])],
    ]);
    const password = rng.weighted<unknown>([
      [5, 'demo'],
      [3, rng.pick(['DEMO', 'demo ', ' demo', 'demo\u0000', 'dem', '', 'x'.repeat(201), ...NAUGHTY_STRINGS.slice(0, 12)])],
      [1, rng.pick([['demo'], { toString: 'demo' }, 0, null, true])],
    ]);
    const fields = [`"username":${JSON.stringify(username)}`, `"password":${JSON.stringify(password)}`].filter(() => rng.chance(0.93));
    const extra = rng.weighted([
      [6, ''],
      [1, '"__proto__":{"polluted":"yes"}'],
      [1, '"constructor":{"prototype":{"polluted":"yes"}}'],
      [1, '"admin":true'],
    ]);
    const body = `{${[...fields, extra].filter(Boolean).join(',')}}`;
    const login = fields.length === 2 ? { username, password } : undefined;
    return rng.weighted<() => SentRequest>([
      [8, () => ({ ...this.raw(route, JSON_TYPE, body), kind: extra ? `login: extra ${extra.split(':')[0]}` : 'login: naughty fields', login })],
      [2, () => this.malformed(route, 'login')],
      [
        1,
        () => ({
          ...this.raw(route, JSON_TYPE, `{"username":${deepJson(rng.int(2000, 5000), rng.pick(['array', 'object'] as const))},"password":"demo"}`),
          kind: 'login: deep nesting',
        }),
      ],
      [1, () => this.formLogin(typeof username === 'string' ? username : JSON.stringify(username))],
    ])();
  }

  /** A form sign-in; its user name is predictable only when it is text `encodeURIComponent` can carry. */
  private formLogin(username: string): SentRequest {
    const encoded = pathSegment(username);
    const predictable = encoded === encodeURIComponentOrNull(username);
    const req = this.raw(['POST', '/auth/login'], 'application/x-www-form-urlencoded', `username=${encoded}&password=demo`);
    return { ...req, kind: 'login: form body', login: predictable ? { username, password: 'demo' } : undefined };
  }

  /** `PUT /prefs/:key` with naughty keys (URL-encoded, malformed) and naughty, polluting, deep or huge values. */
  private prefsBody(): SentRequest {
    const { rng } = this;
    const [keyKind, key] = rng.weighted<readonly [string, string]>([
      [4, ['key ok', rng.pick(['theme', 'lang', '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'k'.repeat(64)])]],
      [3, ['naughty key', pathSegment(naughtyString(rng))]],
      [1, ['malformed key', rng.pick(RAW_SEGMENTS)]],
      [1, ['random key', rng.base64url(rng.int(1, 70))]],
    ]);
    const route: Route = ['PUT', `/prefs/${key}`];
    const [valueKind, value] = rng.weighted<readonly [string, string]>([
      [5, ['naughty value', JSON.stringify(naughtyString(rng))]],
      [3, ['polluting value', rng.pick(POLLUTING_JSON)]],
      [2, ['deep value', deepJson(rng.int(2000, 5000), rng.pick(['array', 'object'] as const))]],
      [1, ['nested value', deepJson(rng.pick([20, 33, 200, 1000]), 'object')]],
      [1, ['huge value', JSON.stringify('x'.repeat(rng.pick(OVER_LIMIT)))]],
      [1, ['large value', JSON.stringify('y'.repeat(rng.pick(UNDER_LIMIT)))]],
      [1, ['wide value', JSON.stringify(Object.fromEntries(Array.from({ length: rng.pick([500, 4000]) }, (_, i) => [`k${i}`, i])))]],
      [2, ['odd value', rng.pick(['null', 'true', '-0', '1e308', '12345678901234567890123', '[]', '{}', '""', '[null]'])]],
    ]);
    return rng.weighted<() => SentRequest>([
      [8, () => ({ ...this.raw(route, JSON_TYPE, `{"value":${value}}`), kind: `prefs: ${keyKind}, ${valueKind}` })],
      [
        1,
        () => ({
          ...this.raw(route, JSON_TYPE, rng.pick(['{}', `{"value":${value},"extra":1}`, `{"__proto__":{"polluted":"yes"},"value":${value}}`])),
          kind: `prefs: ${keyKind}, odd body`,
        }),
      ],
      [1, () => ({ ...this.malformed(route, 'prefs'), kind: `prefs: ${keyKind}, malformed body` })],
    ])();
  }

  /** `POST /visits` with bodies it ignores but the parsers still read. */
  private visitsBody(): SentRequest {
    const { rng } = this;
    const route: Route = ['POST', '/visits'];
    return rng.weighted<() => SentRequest>([
      [2, () => this.malformed(route, 'visits')],
      [1, () => ({ ...this.raw(route, JSON_TYPE, rng.pick(POLLUTING_JSON)), kind: 'visits: polluting body' })],
      [1, () => ({ ...this.raw(route, JSON_TYPE, deepJson(rng.int(2000, 5000), 'array')), kind: 'visits: deep body' })],
    ])();
  }

  /** Bad JSON, wrong or odd content types, polluting forms, bodies over the limit, bad encodings. */
  private malformed(route: Route, what: string): SentRequest {
    const { rng } = this;
    return rng.weighted<() => SentRequest>([
      [4, () => ({ ...this.raw(route, JSON_TYPE, rng.pick(BAD_JSON)), kind: `${what}: bad JSON` })],
      [2, () => ({ ...this.raw(route, rng.pick(CONTENT_TYPES), '{"username":"alice","password":"demo","value":1}'), kind: `${what}: content type` })],
      [2, () => ({ ...this.raw(route, 'application/x-www-form-urlencoded', rng.pick(POLLUTING_FORMS)), kind: `${what}: polluting form` })],
      [1, () => ({ ...this.raw(route, JSON_TYPE, `{"value":"${'z'.repeat(rng.pick(OVER_LIMIT))}"}`), kind: `${what}: body over the limit` })],
      [
        1,
        () => ({
          ...this.raw(route, JSON_TYPE, '{"value":1}'),
          headers: { 'Content-Type': JSON_TYPE, 'Content-Encoding': rng.pick(['gzip', 'deflate', 'br', 'x-unknown']) },
          kind: `${what}: bad content encoding`,
        }),
      ],
    ])();
  }

  /** Methods and paths around the contract's routes: odd methods, trailing slashes, traversal, queries. */
  private oddRoute(): SentRequest {
    const { rng } = this;
    const method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
    const path = rng.pick([
      '/profile/',
      '//profile',
      '/PROFILE',
      '/profile?__proto__[polluted]=yes',
      '/session?constructor[prototype][polluted]=yes',
      '/prefs/',
      '/prefs/a/b',
      `/prefs/${rng.pick(RAW_SEGMENTS)}`,
      `/auth/sessions/${rng.pick(RAW_SEGMENTS)}`,
      '/%2e%2e/health',
      '/health?x=%',
      '/auth/login?username=alice&password=demo',
      `/${pathSegment(rng.pick(NAUGHTY_STRINGS))}`,
    ]);
    return { ...this.plain([method, path]), kind: 'odd route' };
  }

  private plain([method, path]: Route): SentRequest {
    return { kind: 'route', method, path, headers: {} };
  }

  private json(route: Route, body: unknown): SentRequest {
    return this.raw(route, JSON_TYPE, JSON.stringify(body));
  }

  private raw([method, path]: Route, contentType: string, body: string): SentRequest {
    return { kind: 'route', method, path, headers: { 'Content-Type': contentType }, body };
  }
}

/** `req` with more headers, its kind prefixed with `kind` (a plain route takes `kind` as its own). */
function withHeaders(req: SentRequest, kind: string, headers: Record<string, string>): SentRequest {
  return { ...req, kind: req.kind === 'route' ? kind : `${kind} + ${req.kind}`, headers: { ...req.headers, ...headers } };
}

function encodeURIComponentOrNull(text: string): string | null {
  try {
    return encodeURIComponent(text);
  } catch {
    return null;
  }
}
