import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { afterAll, describe, expect, it } from '@jest/globals';
import { generateSessionId, hashSessionId, SessionIdSigner } from '../../lib/crypto/index.js';
import { SessionCredentials } from '../../lib/pipeline/session.credentials.js';
import { SessionEvents } from '../../lib/session.events.js';
import type { SessionRequest } from '../../lib/pipeline/session.http.js';
import { SessionMiddleware } from '../../lib/pipeline/session.middleware.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { MemoryStore } from '../../lib/stores/index.js';

/**
 * What the middleware does to a request that brings no session credential: nothing, until the
 * application reads `req.session` (the cost of a request that never does is the baseline's).
 */
describe('SessionMiddleware, for a request without a credential', () => {
  const store = new MemoryStore();
  const options = resolveSessionOptions({ secret: 's'.repeat(32) });

  afterAll(() => store.onApplicationShutdown());

  async function handled(): Promise<{ req: SessionRequest; res: ServerResponse }> {
    const middleware = new SessionMiddleware(options, store, await SessionCredentials.create(options, store), new SessionEvents(store, options));
    const req = new IncomingMessage(new Socket()) as SessionRequest;
    const res = new ServerResponse(req);
    await new Promise<void>((resolve, reject) => void middleware.use(req, res, (error?: unknown) => (error ? reject(error) : resolve())));
    return { req, res };
  }

  it('leaves the response untouched while nobody reads req.session', async () => {
    const { res } = await handled();

    expect(res.end).toBe(ServerResponse.prototype.end);
    expect(res.writeHead).toBe(ServerResponse.prototype.writeHead);
  });

  it('starts an empty session, and holds the response for its commit, once req.session is read', async () => {
    const { req, res } = await handled();

    const session = req.session!;

    expect(session.isNew).toBe(true);
    expect(Object.keys(session)).toEqual([]);
    expect(res.end).not.toBe(ServerResponse.prototype.end);
    expect(req.session).toBe(session);
  });
});

/**
 * What the middleware does to the response of a request that presents a live session: it holds
 * the response for a commit only when there is something to commit.
 */
describe('SessionMiddleware, for a request with a live session', () => {
  const store = new MemoryStore();
  const options = resolveSessionOptions({ secret: 's'.repeat(32) });
  const signer = new SessionIdSigner(options.secrets);

  afterAll(() => store.onApplicationShutdown());

  async function handled(): Promise<{ req: SessionRequest; res: ServerResponse; id: string }> {
    const id = generateSessionId();
    const now = Date.now();
    await store.create({ id: hashSessionId(id), data: { visits: 1 }, createdAt: now, lastSeenAt: now, expiresAt: now + 60_000, userId: null });
    const middleware = new SessionMiddleware(options, store, await SessionCredentials.create(options, store), new SessionEvents(store, options));
    const req = new IncomingMessage(new Socket()) as SessionRequest;
    req.headers.cookie = `sid=${signer.sign(id)}`;
    const res = new ServerResponse(req);
    await new Promise<void>((resolve, reject) => void middleware.use(req, res, (error?: unknown) => (error ? reject(error) : resolve())));
    return { req, res, id };
  }

  it('lets the response of a request that changed nothing leave at once, with no hold', async () => {
    const { req, res } = await handled();
    expect(req.session!.visits).toBe(1);

    res.end('read only');

    expect(res.headersSent).toBe(true);
    expect(res.getHeader('set-cookie')).toBeUndefined();
  });

  it('holds the response of a request that changed a field until the store has the change', async () => {
    const { req, res, id } = await handled();
    req.session!.visits = 2;

    res.end('changed');

    expect(res.headersSent).toBe(false);
    // Released once the commit is acknowledged: a few turns of the event loop for the memory store.
    for (let turn = 0; turn < 100 && !res.headersSent; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(res.headersSent).toBe(true);
    expect((await store.get(hashSessionId(id)))!.data).toEqual({ visits: 2 });
  });
});
