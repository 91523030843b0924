import { describe, expect, it } from '@jest/globals';
import { LegacySessions } from '../../lib/legacy/index.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { MemoryStore } from '../../lib/stores/index.js';
import { optionProblems } from '../fixtures/option-problems.js';

const SECRET = 'a'.repeat(32);

const problemsOf = (options: object): string[] => optionProblems(SECRET, options);

describe('the legacy option', () => {
  it("accepts express-session's short secrets, one or several, and fills in connect-redis's defaults", () => {
    const { legacy } = resolveSessionOptions({
      secret: SECRET,
      store: { type: 'redis' },
      legacy: { store: 'connect-redis', secret: 'keyboard cat' },
    });
    const rotated = resolveSessionOptions({
      secret: SECRET,
      legacy: { store: 'connect-pg-simple', secret: ['new cat', 'old cat'], schemaName: 'auth' },
    });

    expect(legacy).toMatchObject({ store: 'connect-redis', secrets: ['keyboard cat'], prefix: 'sess:', cookie: { name: 'connect.sid', path: '/' } });
    expect(rotated.legacy).toMatchObject({ secrets: ['new cat', 'old cat'], tableName: 'session', schemaName: 'auth' });
  });

  it.each([[''], [[]], [['cat', '']], [42], [undefined]])('refuses %j as legacy.secret, naming it', (secret) => {
    expect(problemsOf({ legacy: { store: 'connect-redis', secret } })).toEqual([
      expect.stringMatching(/^option "legacy\.secret" must be the express-session secret/),
    ]);
  });

  it('refuses an unknown store and an unknown member, naming each', () => {
    expect(problemsOf({ legacy: { store: 'connect-mongo', secret: 'cat', tabel: 'x' } })).toEqual(
      expect.arrayContaining([
        expect.stringContaining('"legacy.store" must be one of'),
        expect.stringContaining('"legacy.tabel" is not a known option'),
      ]),
    );
  });

  it('refuses a member of the other store, and two ways of connecting at once', () => {
    expect(problemsOf({ legacy: { store: 'connect-pg-simple', secret: 'cat', prefix: 'old:' } })).toEqual([
      expect.stringContaining('"legacy.prefix" does not apply to "legacy.store" "connect-pg-simple"'),
    ]);
    expect(problemsOf({ legacy: { store: 'connect-redis', secret: 'cat', url: 'redis://h:1', client: { defineCommand: () => undefined } } })).toEqual(
      [expect.stringContaining('"legacy.client" and "legacy.url"')],
    );
  });

  it('recognises connections as the stores do, and names the member that is not one', () => {
    expect(problemsOf({ legacy: { store: 'connect-redis', secret: 'cat', url: 'http://127.0.0.1:6379' } })).toEqual([
      'option "legacy.url" must be a redis:// URL (got "http://127.0.0.1:6379").',
    ]);
    expect(problemsOf({ legacy: { store: 'connect-redis', secret: 'cat', client: {} } })).toEqual([
      'option "legacy.client" must be an ioredis Redis or Cluster instance (got {}).',
    ]);
    expect(problemsOf({ legacy: { store: 'connect-pg-simple', secret: 'cat', connectionString: 'mysql://db' } })).toEqual([
      'option "legacy.connectionString" must be a postgres:// connection string (got "mysql://db").',
    ]);
    expect(problemsOf({ legacy: { store: 'connect-pg-simple', secret: 'cat', pool: 'pool' } })).toEqual([
      'option "legacy.pool" must be a pg Pool (got "pool").',
    ]);
  });

  it('checks the old cookie as it checks its own, under the legacy.cookie path', () => {
    expect(problemsOf({ legacy: { store: 'connect-redis', secret: 'cat', cookie: { name: 'bad name', path: 'no-slash', maxAge: 1 } } })).toEqual(
      expect.arrayContaining([
        expect.stringContaining('option "legacy.cookie.name" must be a valid cookie name'),
        expect.stringContaining('option "legacy.cookie.path" must start with "/"'),
        expect.stringContaining('"legacy.cookie.maxAge" is not a known option'),
      ]),
    );
  });

  it('fails start-up when no cookie could replace the old one, or both cookies share a name', () => {
    expect(problemsOf({ transport: 'header', legacy: { store: 'connect-redis', secret: 'cat' } })).toEqual([
      expect.stringContaining('"transport" is "header", so no cookie could be handed out'),
    ]);
    expect(problemsOf({ cookie: { name: 'connect.sid' }, legacy: { store: 'connect-redis', secret: 'cat' } })).toEqual([
      expect.stringContaining('"legacy.cookie.name" and "cookie.name" are both "connect.sid"'),
    ]);
  });

  it("fails start-up when neither legacy nor the module's store gives a connection to the old sessions", async () => {
    const store = new MemoryStore();
    const redis = resolveSessionOptions({ secret: SECRET, legacy: { store: 'connect-redis', secret: 'cat' } });
    const postgres = resolveSessionOptions({ secret: SECRET, legacy: { store: 'connect-pg-simple', secret: 'cat' } });

    await expect(LegacySessions.open(redis, store)).rejects.toThrow(/module's store is memory.*Give legacy\.client or legacy\.url/);
    await expect(LegacySessions.open(postgres, store)).rejects.toThrow(/Give legacy\.pool or legacy\.connectionString/);
    await store.onApplicationShutdown();
  });

  it('opens nothing without the option', async () => {
    const store = new MemoryStore();

    expect(await LegacySessions.open(resolveSessionOptions({ secret: SECRET }), store)).toBeNull();
    await store.onApplicationShutdown();
  });
});
