import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import type { ExecutionContext, Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { AllowAnonymous } from '../../lib/session.decorators.js';
import { SessionNotSignedInError, SessionStoreUnavailableError } from '../../lib/session.errors.js';
import { SessionGuard } from '../../lib/session.guard.js';
import { exposeSession } from '../../lib/pipeline/session.http.js';
import type { SessionRequest } from '../../lib/pipeline/session.http.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import type { ResolvedSessionOptions } from '../../lib/session.options.js';
import { SessionState } from '../../lib/pipeline/session.state.js';
import type { SessionObject } from '../../lib/pipeline/session.state.js';
import { MemoryStore } from '../../lib/stores/index.js';

const SECRET = 'x'.repeat(32);

class ProfileController {
  profile(): void {}

  @AllowAnonymous()
  health(): void {}
}

@AllowAnonymous()
class PublicController {
  page(): void {}
}

const stores: MemoryStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.onApplicationShutdown();
});

function optionsWith(overrides: Record<string, unknown> = {}): ResolvedSessionOptions {
  return resolveSessionOptions({ secret: SECRET, ...overrides });
}

/** A real session, as the middleware would expose it, holding these fields. */
function sessionWith(data: Record<string, unknown>, options = optionsWith()): SessionObject {
  const store = new MemoryStore();
  stores.push(store);
  const state = new SessionState(store, options, null, Date.now());
  Object.assign(state.proxy, data);
  return state.proxy;
}

/** An Express-like request whose `req.session` is what the middleware exposed. */
function requestWith(session: SessionObject | (() => never) | undefined): SessionRequest {
  const req = { headers: {} } as SessionRequest;
  if (session !== undefined) exposeSession(req, typeof session === 'function' ? session : () => session);
  return req;
}

function contextFor(req: object, controller: Type<unknown> = ProfileController, handler = 'profile'): ExecutionContext {
  return new ExecutionContextHost([req, {}], controller, (controller.prototype as Record<string, Function>)[handler]);
}

function guardWith(options = optionsWith()): SessionGuard {
  return new SessionGuard(new Reflector(), options);
}

/** What the guard threw (fails the test if it let the request through). */
function denialOf(guard: SessionGuard, context: ExecutionContext): HttpException {
  try {
    guard.canActivate(context);
  } catch (error) {
    expect(error).toBeInstanceOf(HttpException);
    return error as HttpException;
  }
  throw new Error('the guard let the request through');
}

describe('SessionGuard', () => {
  it('lets a signed-in session through', () => {
    const req = requestWith(sessionWith({ userId: 'u1' }));

    expect(guardWith().canActivate(contextFor(req))).toBe(true);
  });

  it('refuses an anonymous session with 401 and a JSON body carrying a stable code', () => {
    const req = requestWith(sessionWith({ visits: 3 }));

    const error = denialOf(guardWith(), contextFor(req));

    expect(error).toBeInstanceOf(SessionNotSignedInError);
    expect(error.getStatus()).toBe(401);
    expect(error.getResponse()).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      code: 'SESSION_NOT_SIGNED_IN',
      message: expect.stringContaining('signed-in'),
    });
  });

  it.each([
    ['null', null],
    ['an empty string', ''],
  ])('treats a userId of %s as signed out', (_what, userId) => {
    const req = requestWith(sessionWith({ userId }));

    expect(denialOf(guardWith(), contextFor(req)).getStatus()).toBe(401);
  });

  it('refuses a request that carries no session at all with 401', () => {
    expect(denialOf(guardWith(), contextFor(requestWith(undefined))).getStatus()).toBe(401);
  });

  it('reads the signed-in user from a custom userKey', () => {
    const options = optionsWith({ userKey: 'accountId' });
    const guard = guardWith(options);

    expect(guard.canActivate(contextFor(requestWith(sessionWith({ accountId: 42 }, options))))).toBe(true);
    expect(denialOf(guard, contextFor(requestWith(sessionWith({ userId: 'u1' }, options)))).getStatus()).toBe(401);
  });

  it('lets an anonymous request through a handler marked @AllowAnonymous()', () => {
    const req = requestWith(sessionWith({}));

    expect(guardWith().canActivate(contextFor(req, ProfileController, 'health'))).toBe(true);
  });

  it('lets an anonymous request through every handler of a controller marked @AllowAnonymous()', () => {
    const req = requestWith(sessionWith({}));

    expect(guardWith().canActivate(contextFor(req, PublicController, 'page'))).toBe(true);
  });

  it('still guards the unmarked handlers of a controller that has a marked one', () => {
    const req = requestWith(sessionWith({}));

    expect(denialOf(guardWith(), contextFor(req, ProfileController, 'profile')).getStatus()).toBe(401);
  });

  it('answers 503, not 401, when the session store is down', () => {
    const req = requestWith(() => {
      throw new SessionStoreUnavailableError('memory');
    });

    const error = denialOf(guardWith(), contextFor(req));

    expect(error.getStatus()).toBe(503);
  });

  it('lets an @AllowAnonymous() route work while the store is down', () => {
    const req = requestWith(() => {
      throw new SessionStoreUnavailableError('memory');
    });

    expect(guardWith().canActivate(contextFor(req, ProfileController, 'health'))).toBe(true);
  });

  it('finds the session of a Fastify-style request on request.raw', () => {
    const raw = requestWith(sessionWith({ userId: 'u1' }));

    expect(guardWith().canActivate(contextFor({ raw }))).toBe(true);
  });

  it('lets a subclass decide what signed in means by overriding isSignedIn()', () => {
    class AdminGuard extends SessionGuard {
      protected override isSignedIn(session: SessionObject | undefined): boolean {
        return super.isSignedIn(session) && (session as Record<string, unknown> | undefined)?.role === 'admin';
      }
    }
    const guard = new AdminGuard(new Reflector(), optionsWith());

    expect(guard.canActivate(contextFor(requestWith(sessionWith({ userId: 'u1', role: 'admin' }))))).toBe(true);
    expect(denialOf(guard, contextFor(requestWith(sessionWith({ userId: 'u2', role: 'user' })))).getStatus()).toBe(401);
    expect(guard.canActivate(contextFor(requestWith(sessionWith({ role: 'user' })), ProfileController, 'health'))).toBe(true);
  });
});
