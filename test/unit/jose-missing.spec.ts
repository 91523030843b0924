import { describe, expect, it, jest } from '@jest/globals';

/**
 * jose is an optional peer dependency: only the cookie store and JWT tokens need it. Without it,
 * an application that asks for either fails at start-up with an error saying what to install,
 * and one that asks for neither starts as usual.
 */

// Stands for an installation without jose: importing it fails as a missing package would.
jest.unstable_mockModule('jose', () => {
  throw Object.assign(new Error("Cannot find package 'jose'"), { code: 'ERR_MODULE_NOT_FOUND' });
});

const SECRET = 'jose-missing-secret-0123456789abcdefghij';

describe('without jose installed', () => {
  it('the cookie store fails to build with an error that says to install jose', async () => {
    const { createSessionStore } = await import('../../lib/stores/index.js');

    await expect(createSessionStore({ type: 'cookie' }, [SECRET])).rejects.toThrow(
      /The cookie session store needs the "jose" package.*npm install jose/,
    );
  });

  it('JWT tokens fail to start with an error that says to install jose, and signed-id tokens start', async () => {
    const { SessionCredentials } = await import('../../lib/pipeline/session.credentials.js');
    const { resolveSessionOptions } = await import('../../lib/session.options.js');
    const { MemoryStore } = await import('../../lib/stores/index.js');
    const store = new MemoryStore();

    const jwt = resolveSessionOptions({ secret: SECRET, transport: 'header', tokenFormat: 'jwt' });
    await expect(SessionCredentials.create(jwt, store)).rejects.toThrow(/JWT session tokens .* needs the "jose" package.*npm install jose/);
    const signedId = resolveSessionOptions({ secret: SECRET, transport: 'header' });
    await expect(SessionCredentials.create(signedId, store)).resolves.toBeInstanceOf(SessionCredentials);
    store.onApplicationShutdown();
  });
});
