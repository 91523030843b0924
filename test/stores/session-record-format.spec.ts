/**
 * The exact text of the session record the file store writes to disk and the cookie store seals
 * into cookies. Files and cookies outlive a deploy: a new version must read what an older one
 * wrote, and write what an older one (still running beside it) reads. So the bytes are pinned here
 * character for character, the awkward cases included (an integer-like field name, which JSON
 * objects list first; quotes, U+2028, an astral character and a lone surrogate; a field named
 * `__proto__`; a field whose value removes it; a client record given in another key order).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { loadJose, SessionSealer } from '../../lib/crypto/index.js';
import { CookieStore, FileStore } from '../../lib/stores/index.js';
import type { SessionChange, SessionFields, StoredSession } from '../../lib/stores/index.js';

const SECRET = 'record-format-secret-0123456789abcdefgh';
const ID = 'Rec0rdF0rmatPinnedId_abcdefghijklmnopqrstuv';
const CREATED = 1_700_000_000_000;
const LAST_SEEN = 1_700_000_123_456;
/** 2100-01-01: far enough that the pinned sessions never expire while the suite runs. */
const EXPIRES = 4_102_444_800_000;

/** Every awkward field at once; `__proto__` as an own field, as the pipeline hands it over. */
function awkwardData(): SessionFields {
  const data: SessionFields = {
    cart: ['a', 'b'],
    'quote"d': 'say "hi"',
    ünï: 'line\u2028sep 😀',
    lone: '\ud800',
    n: 1.5,
    none: null,
    gone: undefined,
    nested: { deep: [true, false] },
    10: 'ten',
  };
  Object.defineProperty(data, '__proto__', { value: { polluted: true }, enumerable: true, writable: true, configurable: true });
  return data;
}

const fullSession = (): StoredSession => ({
  id: ID,
  data: awkwardData(),
  createdAt: CREATED,
  lastSeenAt: LAST_SEEN,
  expiresAt: EXPIRES,
  userId: 'user-42',
  // Given ip first: the record always writes userAgent first.
  client: { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 "quoted"' },
});

const bareSession = (): StoredSession => ({
  id: ID,
  data: { visits: 1 },
  createdAt: CREATED,
  lastSeenAt: CREATED,
  expiresAt: EXPIRES,
  userId: null,
});

/** Drops `nested` and `cart`, sets `n`, moves the session to another user and clears its client. */
const aChange = (): SessionChange => ({
  set: { n: 2, cart: undefined },
  unset: ['nested'],
  expiresAt: EXPIRES,
  lastSeenAt: LAST_SEEN + 1,
  userId: 'user-7',
  client: null,
});

const FULL_DATA =
  '"d":{"10":"ten","cart":["a","b"],"quote\\"d":"say \\"hi\\"","ünï":"line\u2028sep 😀","lone":"\\ud800","n":1.5,"none":null,' +
  '"nested":{"deep":[true,false]},"__proto__":{"polluted":true}}';
const CHANGED_DATA =
  '"d":{"10":"ten","quote\\"d":"say \\"hi\\"","ünï":"line\u2028sep 😀","lone":"\\ud800","n":2,"none":null,"__proto__":{"polluted":true}}';
const FULL_CLIENT = '"k":{"userAgent":"Mozilla/5.0 \\"quoted\\"","ip":"203.0.113.7"}';

/** What reading the full session back gives, whichever store wrote it. */
function expectFullSession(session: StoredSession | null): void {
  expect(session).not.toBeNull();
  const { data, ...rest } = session!;
  expect(rest).toEqual({
    id: ID,
    createdAt: CREATED,
    lastSeenAt: LAST_SEEN,
    expiresAt: EXPIRES,
    userId: 'user-42',
    client: { userAgent: 'Mozilla/5.0 "quoted"', ip: '203.0.113.7' },
  });
  expect(Object.keys(data)).toEqual(['10', 'cart', 'quote"d', 'ünï', 'lone', 'n', 'none', 'nested', '__proto__']);
  expect(Object.getPrototypeOf(data)).toBeNull();
  expect(data.__proto__).toEqual({ polluted: true });
  expect(data.lone).toBe('\ud800');
  expect(data['ünï']).toBe('line\u2028sep 😀');
}

describe('FileStore session file format', () => {
  const dirs: string[] = [];
  const stores: FileStore[] = [];

  async function open(): Promise<FileStore> {
    const directory = await mkdtemp(join(tmpdir(), 'nss-record-'));
    dirs.push(directory);
    const store = await FileStore.open({ directory });
    stores.push(store);
    return store;
  }

  afterAll(async () => {
    await Promise.all(stores.map((store) => store.onApplicationShutdown()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  const sessionFile = (directory: string): string => {
    const hash = createHash('sha256').update(ID).digest('hex');
    return join(directory, 'sessions', hash.slice(0, 2), hash.slice(2, 4), `${ID}.json`);
  };

  it('writes a new session byte for byte as {"v":1,"c":…,"s":…,"e":…,"u":…,"k":{…},"d":{…}}', async () => {
    const store = await open();

    await store.create(fullSession());

    expect(await readFile(sessionFile(store.directory), 'utf8')).toBe(
      `{"v":1,"c":${CREATED},"s":${LAST_SEEN},"e":${EXPIRES},"u":"user-42",${FULL_CLIENT},${FULL_DATA}}`,
    );
  });

  it('writes a session without user or client without "k", as files always were', async () => {
    const store = await open();

    await store.create(bareSession());

    expect(await readFile(sessionFile(store.directory), 'utf8')).toBe(
      `{"v":1,"c":${CREATED},"s":${CREATED},"e":${EXPIRES},"u":null,"d":{"visits":1}}`,
    );
  });

  it('rewrites a committed session byte for byte, fields in the order they had', async () => {
    const store = await open();
    await store.create(fullSession());

    await expect(store.commit(ID, aChange())).resolves.toBe(true);

    expect(await readFile(sessionFile(store.directory), 'utf8')).toBe(
      `{"v":1,"c":${CREATED},"s":${LAST_SEEN + 1},"e":${EXPIRES},"u":"user-7",${CHANGED_DATA}}`,
    );
  });

  it('reads a file an earlier version wrote', async () => {
    const store = await open();
    const path = sessionFile(store.directory);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, `{"v":1,"c":${CREATED},"s":${LAST_SEEN},"e":${EXPIRES},"u":"user-42",${FULL_CLIENT},${FULL_DATA}}`);

    expectFullSession(await store.get(ID));
  });

  it('reads a file whose "k" is not a client record as no session at all', async () => {
    const store = await open();
    const path = sessionFile(store.directory);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, `{"v":1,"c":${CREATED},"s":${CREATED},"e":${EXPIRES},"u":null,"k":{"ip":7},"d":{}}`);

    await expect(store.get(ID)).resolves.toBeNull();
  });
});

describe('CookieStore sealed record format', () => {
  async function sealer(): Promise<SessionSealer> {
    return new SessionSealer(await loadJose('the record format test'), [SECRET]);
  }

  async function plaintextOf(client: CookieStore): Promise<string> {
    const opened = await (await sealer()).open(client.sealedOf(ID)!);
    return opened!.plaintext;
  }

  it('seals a new session byte for byte as {"v":1,"id":…,"c":…,"s":…,"e":…,"u":…,"k":{…},"d":{…}}', async () => {
    const client = (await CookieStore.create({ secret: SECRET })).forClient();

    await client.create(fullSession());

    expect(await plaintextOf(client)).toBe(
      `{"v":1,"id":"${ID}","c":${CREATED},"s":${LAST_SEEN},"e":${EXPIRES},"u":"user-42",${FULL_CLIENT},${FULL_DATA}}`,
    );
  });

  it('seals a session without user or client without "k"', async () => {
    const client = (await CookieStore.create({ secret: SECRET })).forClient();

    await client.create(bareSession());

    expect(await plaintextOf(client)).toBe(`{"v":1,"id":"${ID}","c":${CREATED},"s":${CREATED},"e":${EXPIRES},"u":null,"d":{"visits":1}}`);
  });

  it('reseals a committed session byte for byte, fields in the order they had', async () => {
    const client = (await CookieStore.create({ secret: SECRET })).forClient();
    await client.create(fullSession());

    await expect(client.commit(ID, aChange())).resolves.toBe(true);

    expect(await plaintextOf(client)).toBe(`{"v":1,"id":"${ID}","c":${CREATED},"s":${LAST_SEEN + 1},"e":${EXPIRES},"u":"user-7",${CHANGED_DATA}}`);
  });

  it('opens a cookie an earlier version sealed', async () => {
    const sealed = await (
      await sealer()
    ).seal(`{"v":1,"id":"${ID}","c":${CREATED},"s":${LAST_SEEN},"e":${EXPIRES},"u":"user-42",${FULL_CLIENT},${FULL_DATA}}`);
    const client = (await CookieStore.create({ secret: SECRET })).forClient();

    await expect(client.open(sealed)).resolves.toEqual({ id: ID, stale: false });
    expectFullSession(await client.get(ID));
  });

  it('opens a cookie whose "k" is not a client record as a session without a client', async () => {
    const sealed = await (await sealer()).seal(`{"v":1,"id":"${ID}","c":${CREATED},"s":${CREATED},"e":${EXPIRES},"u":null,"k":{"ip":7},"d":{}}`);
    const client = (await CookieStore.create({ secret: SECRET })).forClient();

    await expect(client.open(sealed)).resolves.toEqual({ id: ID, stale: false });
    await expect(client.get(ID)).resolves.toMatchObject({ id: ID, client: null });
  });

  it('opens no cookie whose times are not whole numbers, nor one without its id', async () => {
    const seals = await sealer();
    const client = (await CookieStore.create({ secret: SECRET })).forClient();

    await expect(client.open(await seals.seal(`{"v":1,"id":"${ID}","c":1.5,"s":${CREATED},"e":${EXPIRES},"u":null,"d":{}}`))).resolves.toBeNull();
    await expect(client.open(await seals.seal(`{"v":1,"c":${CREATED},"s":${CREATED},"e":${EXPIRES},"u":null,"d":{}}`))).resolves.toBeNull();
  });
});
