import { describe, expect, it } from '@jest/globals';
import { SessionConfigError } from '../../lib/session.errors.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { MemoryStore } from '../../lib/stores/index.js';

const SECRET = 'a'.repeat(32);
const OLD_SECRET = 'b'.repeat(40);

/** The SessionConfigError that resolving these options throws (fails the test if none is thrown). */
function configErrorOf(options: unknown): SessionConfigError {
  try {
    resolveSessionOptions(options);
  } catch (error) {
    expect(error).toBeInstanceOf(SessionConfigError);
    return error as SessionConfigError;
  }
  throw new Error(`resolveSessionOptions accepted ${JSON.stringify(options)}`);
}

describe('resolveSessionOptions()', () => {
  describe('defaults', () => {
    it('fills in every default when only a secret is given', () => {
      const options = resolveSessionOptions({ secret: SECRET });

      expect(options.secrets).toEqual([SECRET]);
      expect(options.cookie).toEqual({
        name: 'sid',
        path: '/',
        httpOnly: true,
        secure: 'auto',
        sameSite: 'lax',
        domain: undefined,
        partitioned: false,
        maxAge: undefined,
      });
      expect(options.transport).toBe('cookie');
      expect(options.idleTimeout).toBe(30 * 60_000);
      expect(options.absoluteTimeout).toBe(12 * 60 * 60_000);
      expect(options.touchAfter).toBe(180_000);
      expect(options.saveUninitialized).toBe(false);
      expect(options.userKey).toBe('userId');
      expect(options.store).toEqual({ type: 'memory' });
      expect(options.maxSessionsPerUser).toBeUndefined();
      expect(options.onMaxSessions).toBe('evict-oldest');
      expect(options.recordClient).toBe(false);
      expect(options.logger).toBeUndefined();
    });

    it('derives touchAfter as a tenth of the idle timeout it was given', () => {
      expect(resolveSessionOptions({ secret: SECRET, idleTimeout: '10m' }).touchAfter).toBe(60_000);
    });

    it('keeps the cookie defaults it was not told to change', () => {
      const { cookie } = resolveSessionOptions({ secret: SECRET, cookie: { name: 'app.sid', sameSite: 'strict' } });

      expect(cookie).toMatchObject({ name: 'app.sid', sameSite: 'strict', path: '/', httpOnly: true, secure: 'auto' });
    });
  });

  describe('durations', () => {
    it('accepts milliseconds as numbers', () => {
      const options = resolveSessionOptions({ secret: SECRET, idleTimeout: 60_000, absoluteTimeout: 3_600_000, touchAfter: 5_000 });

      expect(options.idleTimeout).toBe(60_000);
      expect(options.absoluteTimeout).toBe(3_600_000);
      expect(options.touchAfter).toBe(5_000);
    });

    it("accepts duration strings such as '30m', '2h' and '10s'", () => {
      const options = resolveSessionOptions({
        secret: SECRET,
        idleTimeout: '30m',
        absoluteTimeout: '2h',
        touchAfter: '10s',
        cookie: { maxAge: '1h' },
      });

      expect(options.idleTimeout).toBe(1_800_000);
      expect(options.absoluteTimeout).toBe(7_200_000);
      expect(options.touchAfter).toBe(10_000);
      expect(options.cookie.maxAge).toBe(3_600_000);
    });

    it('accepts absoluteTimeout false to disable the hard limit', () => {
      expect(resolveSessionOptions({ secret: SECRET, absoluteTimeout: false }).absoluteTimeout).toBe(false);
    });

    it('accepts touchAfter 0 (touch on every request)', () => {
      expect(resolveSessionOptions({ secret: SECRET, touchAfter: 0 }).touchAfter).toBe(0);
    });

    it.each([
      ['a negative number', -5, '-5'],
      ['a negative string', '-5m', '"-5m"'],
      ['zero', 0, '0'],
      ['a word ms cannot read', 'soon', '"soon"'],
      ['a boolean', true, 'true'],
    ])('rejects idleTimeout as %s, naming the option, the value and the accepted forms', (_what, value, shown) => {
      const error = configErrorOf({ secret: SECRET, idleTimeout: value });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"idleTimeout"');
      expect(error.message).toContain(`(got ${shown})`);
      expect(error.message).toContain("'30m'");
    });

    it('rejects a bad absoluteTimeout and says false is also allowed', () => {
      const error = configErrorOf({ secret: SECRET, absoluteTimeout: 'soon' });

      expect(error.message).toContain('"absoluteTimeout"');
      expect(error.message).toContain('"soon"');
      expect(error.message).toContain('false');
    });

    it("accepts the transports 'cookie', 'header' and 'both', and names any other", () => {
      for (const transport of ['cookie', 'header', 'both'] as const) {
        expect(resolveSessionOptions({ secret: SECRET, transport }).transport).toBe(transport);
      }
      const error = configErrorOf({ secret: SECRET, transport: 'query' });
      expect(error.message).toContain('"transport"');
      expect(error.message).toContain('"query"');
    });

    it("writes header tokens as signed ids unless tokenFormat is 'jwt', and names any other format", () => {
      expect(resolveSessionOptions({ secret: SECRET }).tokenFormat).toBe('signed-id');
      expect(resolveSessionOptions({ secret: SECRET, transport: 'header', tokenFormat: 'jwt' }).tokenFormat).toBe('jwt');
      const error = configErrorOf({ secret: SECRET, transport: 'header', tokenFormat: 'paseto' });
      expect(error.message).toContain('"tokenFormat"');
      expect(error.message).toContain('"paseto"');
    });

    it("refuses tokenFormat 'jwt' without a header transport, saying to set transport", () => {
      const error = configErrorOf({ secret: SECRET, tokenFormat: 'jwt' });

      expect(error.message).toContain('"tokenFormat"');
      expect(error.message).toContain("Set transport to 'header' or 'both'");
    });

    it("refuses tokenFormat 'jwt' with the cookie store, whose token is the sealed session itself", () => {
      const error = configErrorOf({ secret: SECRET, transport: 'both', tokenFormat: 'jwt', store: { type: 'cookie' } });

      expect(error.message).toContain('"tokenFormat"');
      expect(error.message).toContain('server-side store');
    });

    it("bounds every store call by storeTimeout, '3s' unless set", () => {
      expect(resolveSessionOptions({ secret: SECRET }).storeTimeout).toBe(3_000);
      expect(resolveSessionOptions({ secret: SECRET, storeTimeout: '500ms' }).storeTimeout).toBe(500);
    });

    it("accepts a userKey that is a field or a dotted path such as 'passport.user', and names a malformed one", () => {
      expect(resolveSessionOptions({ secret: SECRET, userKey: 'passport.user' }).userKey).toBe('passport.user');
      for (const userKey of ['', 'a..b', '.user', 'passport.', '__proto__.polluted', 'a.constructor', 42]) {
        const error = configErrorOf({ secret: SECRET, userKey });
        expect(error.message).toContain('"userKey"');
        expect(error.message).toContain("'passport.user'");
      }
    });

    it('rejects a storeTimeout that is not a positive duration', () => {
      const error = configErrorOf({ secret: SECRET, storeTimeout: 0 });

      expect(error.message).toContain('"storeTimeout"');
      expect(error.message).toContain('(got 0)');
    });

    it('rejects a bad cookie.maxAge under its full path', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { maxAge: -1 } });

      expect(error.message).toContain('"cookie.maxAge"');
      expect(error.message).toContain('(got -1)');
    });

    it('rejects a touchAfter that is not shorter than idleTimeout, naming both', () => {
      const error = configErrorOf({ secret: SECRET, idleTimeout: '10m', touchAfter: '10m' });

      expect(error.message).toContain('"touchAfter"');
      expect(error.message).toContain('"idleTimeout"');
      expect(error.message).toContain('600000');
    });

    it('rejects an absoluteTimeout shorter than idleTimeout and suggests false', () => {
      const error = configErrorOf({ secret: SECRET, idleTimeout: '2h', absoluteTimeout: '1h' });

      expect(error.message).toContain('"absoluteTimeout"');
      expect(error.message).toContain('3600000');
      expect(error.message).toContain('7200000');
      expect(error.message).toContain('false');
    });
  });

  describe('session management', () => {
    it("accepts maxSessionsPerUser with either onMaxSessions, 'evict-oldest' unless set", () => {
      expect(resolveSessionOptions({ secret: SECRET, maxSessionsPerUser: 3 })).toMatchObject({
        maxSessionsPerUser: 3,
        onMaxSessions: 'evict-oldest',
      });
      expect(resolveSessionOptions({ secret: SECRET, maxSessionsPerUser: 1, onMaxSessions: 'reject' })).toMatchObject({
        maxSessionsPerUser: 1,
        onMaxSessions: 'reject',
      });
    });

    it.each([[0], [-1], [1.5], [Number.NaN], ['3']])('rejects maxSessionsPerUser %p, naming the option and the value', (value) => {
      const error = configErrorOf({ secret: SECRET, maxSessionsPerUser: value });

      expect(error.problems).toEqual([expect.stringContaining('option "maxSessionsPerUser" must be a positive whole number')]);
    });

    it('rejects an unknown onMaxSessions, naming the choices', () => {
      const error = configErrorOf({ secret: SECRET, maxSessionsPerUser: 2, onMaxSessions: 'drop-newest' });

      expect(error.message).toContain('"onMaxSessions"');
      expect(error.message).toContain('must be one of "evict-oldest", "reject" (got "drop-newest")');
    });

    it('rejects onMaxSessions without maxSessionsPerUser, which it would do nothing without', () => {
      const error = configErrorOf({ secret: SECRET, onMaxSessions: 'reject' });

      expect(error.problems).toEqual([expect.stringContaining('does nothing without "maxSessionsPerUser"')]);
    });

    it("rejects maxSessionsPerUser with the cookie store, which cannot list a user's sessions", () => {
      const error = configErrorOf({ secret: SECRET, maxSessionsPerUser: 2, store: { type: 'cookie' } });

      expect(error.problems).toEqual([expect.stringContaining('Use a server-side store')]);
    });

    it('accepts recordClient true or false, and names anything else', () => {
      expect(resolveSessionOptions({ secret: SECRET, recordClient: true }).recordClient).toBe(true);
      expect(configErrorOf({ secret: SECRET, recordClient: 'yes' }).message).toContain('option "recordClient" must be true or false');
    });

    it('accepts a Nest LoggerService as logger, and names anything else', () => {
      const logger = { log: () => undefined, warn: () => undefined, error: () => undefined };

      expect(resolveSessionOptions({ secret: SECRET, logger }).logger).toBe(logger);
      for (const bad of [console.log, { log: () => undefined }, 'console']) {
        expect(configErrorOf({ secret: SECRET, logger: bad }).message).toContain('option "logger" must be a Nest LoggerService');
      }
    });
  });

  describe('secret', () => {
    it('accepts one string and uses it as the only secret', () => {
      expect(resolveSessionOptions({ secret: SECRET }).secrets).toEqual([SECRET]);
    });

    it('accepts an array for rotation and keeps its order (the first signs)', () => {
      expect(resolveSessionOptions({ secret: [SECRET, OLD_SECRET] }).secrets).toEqual([SECRET, OLD_SECRET]);
    });

    it('does not share the array it was given', () => {
      const secrets = [SECRET, OLD_SECRET];
      const options = resolveSessionOptions({ secret: secrets });
      secrets.pop();

      expect(options.secrets).toEqual([SECRET, OLD_SECRET]);
    });

    it('rejects a 12-character secret, saying 32 are needed and how to generate one', () => {
      const error = configErrorOf({ secret: 'x'.repeat(12) });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"secret"');
      expect(error.message).toContain('32');
      expect(error.message).toContain('got 12');
      expect(error.message).toContain('randomBytes');
    });

    it('rejects one short secret inside an array, naming its index', () => {
      const error = configErrorOf({ secret: [SECRET, 'short'] });

      expect(error.message).toContain('"secret[1]"');
      expect(error.message).toContain('got 5');
      expect(error.message).toContain('randomBytes');
    });

    it.each([
      ['absent', {}],
      ['undefined', { secret: undefined }],
      ['an empty string', { secret: '' }],
    ])('rejects a missing secret (%s), saying it is required and how to generate one', (_what, options) => {
      const error = configErrorOf(options);

      expect(error.message).toContain('"secret" is required');
      expect(error.message).toContain('randomBytes');
    });

    it.each([
      ['a number', 12345678, '12345678'],
      ['an empty array', [], '[]'],
      ['an array holding a number', [SECRET, 42], '42'],
      ['an object', { value: SECRET }, '"value"'],
    ])('rejects a secret of the wrong type (%s), showing the value', (_what, secret, shown) => {
      const error = configErrorOf({ secret });

      expect(error.message).toContain('"secret" must be a string or a non-empty array of strings');
      expect(error.message).toContain(shown);
    });
  });

  describe('store', () => {
    it("accepts { type: 'memory' } with its own options", () => {
      expect(resolveSessionOptions({ secret: SECRET, store: { type: 'memory', maxSessions: 10 } }).store).toEqual({
        type: 'memory',
        maxSessions: 10,
      });
    });

    it('accepts an instance of a SessionStore subclass as it is', () => {
      const store = new MemoryStore();
      try {
        expect(resolveSessionOptions({ secret: SECRET, store }).store).toBe(store);
      } finally {
        store.onApplicationShutdown();
      }
    });

    it('rejects an unknown store type, naming store.type, the value and the choices', () => {
      const error = configErrorOf({ secret: SECRET, store: { type: 'mongo' } });

      expect(error.message).toContain('"store.type"');
      expect(error.message).toContain('"mongo"');
      expect(error.message).toContain('"memory"');
      expect(error.message).toContain('SessionStore');
    });

    it('accepts the cookie store, which takes no options of its own', () => {
      expect(resolveSessionOptions({ secret: SECRET, store: { type: 'cookie' } }).store).toEqual({ type: 'cookie' });
      expect(configErrorOf({ secret: SECRET, store: { type: 'cookie', directory: '/tmp' } }).message).toContain('"store.directory"');
    });

    it('rejects something that is neither a config object nor a store', () => {
      const error = configErrorOf({ secret: SECRET, store: 'redis://localhost' });

      expect(error.message).toContain('"store"');
      expect(error.message).toContain('"redis://localhost"');
    });

    it('rejects store.maxSessions 0, naming the option and the value', () => {
      const error = configErrorOf({ secret: SECRET, store: { type: 'memory', maxSessions: 0 } });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"store.maxSessions"');
      expect(error.message).toContain('(got 0)');
      expect(error.message).toContain('positive whole number');
    });

    it('rejects an unknown key inside the store config', () => {
      const error = configErrorOf({ secret: SECRET, store: { type: 'memory', maxSesions: 10 } });

      expect(error.message).toContain('"store.maxSesions" is not a known option');
    });
  });

  describe('cookie', () => {
    it("rejects sameSite 'none' unless secure is true, and says how to fix it", () => {
      const error = configErrorOf({ secret: SECRET, cookie: { sameSite: 'none' } });

      expect(error.message).toContain('"cookie.sameSite"');
      expect(error.message).toContain('"cookie.secure" is "auto"');
      expect(error.message).toContain('Set cookie.secure to true');
      expect(resolveSessionOptions({ secret: SECRET, cookie: { sameSite: 'none', secure: true } }).cookie.sameSite).toBe('none');
    });

    it('rejects partitioned unless secure is true', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { partitioned: true, secure: false } });

      expect(error.message).toContain('"cookie.partitioned"');
      expect(error.message).toContain('"cookie.secure" is false');
      expect(resolveSessionOptions({ secret: SECRET, cookie: { partitioned: true, secure: true } }).cookie.partitioned).toBe(true);
    });

    it('rejects a cookie name that is not an RFC 6265 token', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { name: 'bad name;' } });

      expect(error.message).toContain('"cookie.name"');
      expect(error.message).toContain('"bad name;"');
    });

    it('rejects a cookie path that does not start with "/"', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { path: 'app' } });

      expect(error.message).toContain('"cookie.path" must start with "/"');
      expect(error.message).toContain('"app"');
    });

    // Checked the way the cookie package serialises them: a value it would refuse at response
    // time must stop start-up instead of failing every writing response.
    it.each([
      ['a domain with a port', { domain: 'localhost:3000' }, '"cookie.domain"', '"localhost:3000"'],
      ['a domain with a scheme', { domain: 'https://example.com' }, '"cookie.domain"', '"https://example.com"'],
      ['a path with a semicolon', { path: '/a;b' }, '"cookie.path"', '"/a;b"'],
      ['a path with a control character', { path: '/a\u0001' }, '"cookie.path"', '"/a\\u0001"'],
    ])('rejects %s, which no Set-Cookie header can carry', (_what, cookie, option, shown) => {
      const error = configErrorOf({ secret: SECRET, cookie });

      expect(error.message).toContain(option);
      expect(error.message).toContain(shown);
    });

    it('accepts the domains and paths browsers take', () => {
      for (const domain of ['example.com', '.example.com', 'sub.example.co.uk', 'localhost']) {
        expect(resolveSessionOptions({ secret: SECRET, cookie: { domain } }).cookie.domain).toBe(domain);
      }
      expect(resolveSessionOptions({ secret: SECRET, cookie: { path: '/app/v1' } }).cookie.path).toBe('/app/v1');
    });

    describe('cookie name prefixes', () => {
      it.each([
        ['__Host- with secure: false', { name: '__Host-sid', secure: false }, '"cookie.secure" is false'],
        ['__Host- with a path other than /', { name: '__Host-sid', path: '/app' }, '"cookie.path" is "/app"'],
        ['__Host- with a domain', { name: '__Host-sid', domain: 'example.com' }, '"cookie.domain" is "example.com"'],
        ['__Secure- with secure: false', { name: '__Secure-sid', secure: false }, '"cookie.secure" is false'],
      ])('rejects %s, a cookie browsers would refuse', (_what, cookie, problem) => {
        const error = configErrorOf({ secret: SECRET, cookie });

        expect(error.message).toContain('"cookie.name"');
        expect(error.message).toContain(problem);
      });

      it("makes a prefixed cookie always Secure, 'auto' included: the prefix asks for it", () => {
        expect(resolveSessionOptions({ secret: SECRET, cookie: { name: '__Host-sid' } }).cookie.secure).toBe(true);
        expect(resolveSessionOptions({ secret: SECRET, cookie: { name: '__Secure-sid', path: '/app' } }).cookie.secure).toBe(true);
        expect(resolveSessionOptions({ secret: SECRET, cookie: { name: 'sid' } }).cookie.secure).toBe('auto');
      });
    });

    it('rejects a sameSite value outside lax, strict and none', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { sameSite: 'Lax ' } });

      expect(error.message).toContain('"cookie.sameSite"');
      expect(error.message).toContain('"Lax "');
    });

    it('rejects an unknown cookie option under its full path', () => {
      const error = configErrorOf({ secret: SECRET, cookie: { httponly: true } });

      expect(error.message).toContain('"cookie.httponly" is not a known option');
    });

    it('rejects a cookie option that is not an object, naming "cookie" and the value', () => {
      const error = configErrorOf({ secret: SECRET, cookie: 'sid' });

      expect(error.message).toContain('"cookie"');
      expect(error.message).toContain('"sid"');
    });
  });

  describe('shape', () => {
    it('rejects a misspelt top-level option, naming it', () => {
      const error = configErrorOf({ secret: SECRET, secrte: SECRET });

      expect(error.problems).toEqual([expect.stringContaining('"secrte" is not a known option')]);
    });

    it.each([['__proto__'], ['constructor']])('names an unknown top-level option even when it is called %s', (key) => {
      const error = configErrorOf(JSON.parse(`{ "secret": "${SECRET}", "${key}": { "x": 1 } }`));

      expect(error.message).toContain(`"${key}" is not a known option`);
    });

    it.each([
      ['undefined', undefined],
      ['null', null],
      ['a string', SECRET],
      ['an array', [SECRET]],
    ])('rejects options that are not an object (%s)', (_what, options) => {
      const error = configErrorOf(options);

      expect(error.message).toContain('options must be an object');
    });

    it('reports several problems together, one per bad option', () => {
      const error = configErrorOf({
        secret: 'short',
        idleTimeout: 'soon',
        cookie: { name: 'bad name;', path: 'app' },
        store: { type: 'memory', maxSessions: 0 },
        secrte: 1,
      });

      expect(error.problems).toHaveLength(6);
      expect(error.message).toContain('6 problems');
      for (const path of ['"secret"', '"idleTimeout"', '"cookie.name"', '"cookie.path"', '"store.maxSessions"', '"secrte"']) {
        expect(error.message).toContain(path);
      }
    });

    it('has a stable error code', () => {
      expect(configErrorOf({}).code).toBe('SESSION_CONFIG');
    });
  });
});

describe('redis store config', () => {
  const storeOf = (store: Record<string, unknown>): unknown => resolveSessionOptions({ secret: SECRET, store: { type: 'redis', ...store } }).store;
  const redisErrorOf = (store: Record<string, unknown>): SessionConfigError => configErrorOf({ secret: SECRET, store: { type: 'redis', ...store } });
  const SENTINELS = [
    { host: '127.0.0.1', port: 26379 },
    { host: '127.0.0.1', port: 26380 },
  ];
  const CLUSTER = [
    { host: '127.0.0.1', port: 7000 },
    { host: '127.0.0.1', port: 7001 },
  ];

  describe('accepted shapes', () => {
    it.each([
      ['a url', { url: 'redis://127.0.0.1:6380/2' }],
      ['a rediss:// url with credentials', { url: 'rediss://user:pass@redis.internal:6380' }],
      ['sentinels with a master name', { sentinels: SENTINELS, name: 'mymaster' }],
      ['cluster nodes', { cluster: CLUSTER }],
      ['cluster nodes with db 0', { cluster: CLUSTER, db: 0 }],
      ['no connection option (the default url)', {}],
      ['a prefix', { url: 'redis://127.0.0.1:6380', prefix: 'app:sess:' }],
      ['an empty prefix', { url: 'redis://127.0.0.1:6380', prefix: '' }],
      ["consistency 'strong' with a replicaTimeout", { sentinels: SENTINELS, name: 'mymaster', consistency: 'strong', replicaTimeout: 500 }],
      ["consistency 'eventual'", { cluster: CLUSTER, consistency: 'eventual' }],
      ['a db', { url: 'redis://127.0.0.1:6380', db: 3 }],
      ['tls true', { url: 'rediss://127.0.0.1:6380', tls: true }],
      ['tls options', { cluster: CLUSTER, tls: { servername: 'redis.internal' } }],
      ['a commandTimeout, username and password', { url: 'redis://127.0.0.1:6380', commandTimeout: 500, username: 'app', password: 's3cret' }],
      ['expiryEvents true', { url: 'redis://127.0.0.1:6380', expiryEvents: true }],
    ])('accepts %s, and passes the config on unchanged', (_what, store) => {
      expect(storeOf(store)).toEqual({ type: 'redis', ...store });
    });

    it('accepts an ioredis client instance, and passes that same instance on', async () => {
      const { Redis } = await import('ioredis');
      // Never connected: lazyConnect, and no command is sent.
      const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true });
      try {
        const store = storeOf({ client, prefix: 'app:' }) as { client: unknown };

        expect(store.client).toBe(client);
      } finally {
        client.disconnect();
      }
    });
  });

  describe('rejected shapes', () => {
    it.each([
      ['an http:// url', { url: 'http://x' }, '"store.url"', '"http://x"'],
      ['a url that is not a string', { url: 6379 }, '"store.url"', '6379'],
      ['an empty sentinels array', { sentinels: [], name: 'mymaster' }, '"store.sentinels"', '[]'],
      ['a cluster node with port 0', { cluster: [{ host: '127.0.0.1', port: 0 }] }, '"store.cluster"', '"port":0'],
      ['a sentinel without a host', { sentinels: [{ port: 26379 }], name: 'mymaster' }, '"store.sentinels"', '26379'],
      ['a prefix containing "{"', { url: 'redis://127.0.0.1:6380', prefix: 'app{1}:' }, '"store.prefix"', '"app{1}:"'],
      ["consistency 'always'", { url: 'redis://127.0.0.1:6380', consistency: 'always' }, '"store.consistency"', '"always"'],
      ['commandTimeout 0', { url: 'redis://127.0.0.1:6380', commandTimeout: 0 }, '"store.commandTimeout"', '(got 0)'],
      ['a fractional replicaTimeout', { url: 'redis://127.0.0.1:6380', replicaTimeout: 1.5 }, '"store.replicaTimeout"', '1.5'],
      ['a negative db', { url: 'redis://127.0.0.1:6380', db: -1 }, '"store.db"', '-1'],
      ['an empty master name', { sentinels: SENTINELS, name: '' }, '"store.name"', '""'],
      ['a client that is not an ioredis client', { client: { get: () => null } }, '"store.client"', 'ioredis'],
      ['tls as a string', { url: 'rediss://127.0.0.1:6380', tls: 'yes' }, '"store.tls"', '"yes"'],
      ['expiryEvents as a string', { url: 'redis://127.0.0.1:6380', expiryEvents: 'on' }, '"store.expiryEvents"', '"on"'],
      [
        'a strong replicaTimeout not shorter than commandTimeout',
        { url: 'redis://127.0.0.1:6380', consistency: 'strong', commandTimeout: 1000 },
        '"store.replicaTimeout"',
        '1000 ms',
      ],
    ])('rejects %s with one problem naming the option and the value', (_what, store, option, shown) => {
      const error = redisErrorOf(store);

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain(option);
      expect(error.message).toContain(shown);
    });

    it('rejects sentinels without a master name, naming both options and an example', () => {
      const error = redisErrorOf({ sentinels: SENTINELS });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"store.name"');
      expect(error.message).toContain('"store.sentinels"');
      expect(error.message).toContain('mymaster');
    });

    it('rejects two ways to connect at once (url and cluster), naming both', () => {
      const error = redisErrorOf({ url: 'redis://127.0.0.1:6380', cluster: CLUSTER });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"store.url"');
      expect(error.message).toContain('"store.cluster"');
      expect(error.message).toContain('only one');
    });

    it('rejects a client together with sentinels, naming both', () => {
      const error = redisErrorOf({ client: { defineCommand: () => undefined }, sentinels: SENTINELS, name: 'mymaster' });

      expect(error.message).toContain('"store.client"');
      expect(error.message).toContain('"store.sentinels"');
    });

    it('rejects a db other than 0 with cluster, naming both options', () => {
      const error = redisErrorOf({ cluster: CLUSTER, db: 1 });

      expect(error.problems).toHaveLength(1);
      expect(error.message).toContain('"store.db"');
      expect(error.message).toContain('"store.cluster"');
    });

    it('rejects a misspelt redis option, naming it', () => {
      const error = redisErrorOf({ url: 'redis://127.0.0.1:6380', sentinal: SENTINELS });

      expect(error.message).toContain('"store.sentinal" is not a known option');
    });

    it('reports every bad redis option together', () => {
      const error = redisErrorOf({ url: 'http://x', prefix: '{x}', consistency: 'always', commandTimeout: 0 });

      expect(error.problems).toHaveLength(4);
      for (const option of ['"store.url"', '"store.prefix"', '"store.consistency"', '"store.commandTimeout"']) {
        expect(error.message).toContain(option);
      }
    });
  });
});
