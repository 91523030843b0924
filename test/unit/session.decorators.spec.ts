import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import type { ExecutionContext } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { ALLOW_ANONYMOUS_KEY } from '../../lib/session.constants.js';
import { AllowAnonymous, Session } from '../../lib/session.decorators.js';
import { SessionStoreUnavailableError } from '../../lib/session.errors.js';
import { exposeSession } from '../../lib/pipeline/session.http.js';
import type { SessionRequest } from '../../lib/pipeline/session.http.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { SessionState } from '../../lib/pipeline/session.state.js';
import type { SessionObject } from '../../lib/pipeline/session.state.js';
import { MemoryStore } from '../../lib/stores/index.js';

type ParamFactory = (data: unknown, ctx: ExecutionContext) => unknown;

/** The function Nest calls to resolve `@Session(...)` for a handler argument. */
function sessionParamFactory(): ParamFactory {
  class Controller {
    handler(@Session() _session: unknown): void {}
  }
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, Controller, 'handler') as Record<string, { factory: ParamFactory }>;
  return Object.values(args)[0].factory;
}

/** The `data` Nest stores for `@Session(field)`: what it will pass to the factory. */
function dataOf(field?: string): unknown {
  class Controller {
    handler(@Session(field) _value: unknown): void {}
  }
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, Controller, 'handler') as Record<string, { data: unknown }>;
  return Object.values(args)[0].data;
}

const stores: MemoryStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.onApplicationShutdown();
});

function sessionWith(data: Record<string, unknown>): SessionObject {
  const store = new MemoryStore();
  stores.push(store);
  const state = new SessionState(store, resolveSessionOptions({ secret: 'x'.repeat(32) }), null, Date.now());
  Object.assign(state.proxy, data);
  return state.proxy;
}

function requestWith(session: SessionObject | (() => never)): SessionRequest {
  const req = { headers: {} } as SessionRequest;
  exposeSession(req, typeof session === 'function' ? session : () => session);
  return req;
}

const contextFor = (req: object): ExecutionContext => new ExecutionContextHost([req, {}]);

describe('@Session()', () => {
  const factory = sessionParamFactory();

  it("gives the request's session", () => {
    const session = sessionWith({ userId: 'u1' });

    expect(factory(dataOf(), contextFor(requestWith(session)))).toBe(session);
  });

  it("gives one field with @Session('userId')", () => {
    const req = requestWith(sessionWith({ userId: 'u1', visits: 2 }));

    expect(dataOf('userId')).toBe('userId');
    expect(factory(dataOf('userId'), contextFor(req))).toBe('u1');
    expect(factory(dataOf('visits'), contextFor(req))).toBe(2);
    expect(factory(dataOf('missing'), contextFor(req))).toBeUndefined();
  });

  it('finds the session of a Fastify-style request on request.raw', () => {
    const session = sessionWith({ userId: 'u1' });
    const req = { raw: requestWith(session) };

    expect(factory(dataOf(), contextFor(req))).toBe(session);
    expect(factory(dataOf('userId'), contextFor(req))).toBe('u1');
  });

  it('gives undefined when the request has no session', () => {
    expect(factory(dataOf(), contextFor({ headers: {} }))).toBeUndefined();
    expect(factory(dataOf('userId'), contextFor({ headers: {} }))).toBeUndefined();
  });

  it('throws the 503 of a store outage when the session could not be loaded', () => {
    const outage = new SessionStoreUnavailableError('redis');
    const req = requestWith(() => {
      throw outage;
    });

    let thrown: unknown;
    try {
      factory(dataOf('userId'), contextFor(req));
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBe(outage);
    expect(thrown).toBeInstanceOf(HttpException);
    expect((thrown as HttpException).getStatus()).toBe(503);
    expect((thrown as HttpException).getResponse()).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'SESSION_STORE_UNAVAILABLE',
      message: expect.stringContaining('(redis) is not answering'),
    });
  });
});

describe('@AllowAnonymous()', () => {
  it('marks a handler and a controller for SessionGuard', () => {
    @AllowAnonymous()
    class Controller {
      @AllowAnonymous()
      handler(): void {}

      other(): void {}
    }
    const reflector = new Reflector();

    expect(reflector.get(ALLOW_ANONYMOUS_KEY, Controller)).toBe(true);
    expect(reflector.get(ALLOW_ANONYMOUS_KEY, Controller.prototype.handler)).toBe(true);
    expect(reflector.get(ALLOW_ANONYMOUS_KEY, Controller.prototype.other)).toBeUndefined();
  });
});
