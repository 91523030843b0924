import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { afterAll, describe, expect, it } from '@jest/globals';
import { SessionCredentials } from '../../lib/session.credentials.js';
import { SessionEvents } from '../../lib/session.events.js';
import type { SessionRequest } from '../../lib/session.http.js';
import { SessionMiddleware } from '../../lib/session.middleware.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { MemoryStore } from '../../lib/stores/memory.store.js';

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
