import { HttpException } from '@nestjs/common';
import { SessionStoreUnavailableError } from '../session.errors.js';
import type { SessionStore } from './session-store.js';
import { withinTime } from './toolkit/store-runtime.js';

/**
 * The same store, with every asynchronous call bounded in time: a store that hangs (a network
 * partition, a pool with no free connection) fails the request with a 503 after `timeoutMs`
 * instead of holding it open. Stores bound their own calls too; this bound holds for any store,
 * custom ones included. A call that times out may still complete later in the store: the
 * client is told it failed, and the store's own atomic rules keep its data consistent.
 *
 * This is also where "the store failed" is told apart from everything else: an error a store
 * call rejects with that is not one of the library's own (a driver's connection or protocol
 * error) becomes {@link SessionStoreUnavailableError}, the one error answered with 503. Any
 * other error elsewhere in the pipeline is a bug, answered with 500.
 */
export function boundStoreCalls(store: SessionStore, timeoutMs: number): SessionStore {
  return wrapStoreMethods(store, (method, operation) => {
    const timeoutError = (): Error => new SessionStoreUnavailableError(store.kind, undefined, `${operation}() did not answer within ${timeoutMs} ms`);
    const failed = storeFailure(store.kind, operation);
    return (...args) => {
      const result = method.apply(store, args);
      return isPromiseLike(result) ? withinTime(result, timeoutMs, timeoutError).catch(failed) : result;
    };
  });
}

/**
 * The same store, its calls' failures told apart as {@link boundStoreCalls} does, but with no
 * time bound of its own: for the request pipeline, where a {@link StoreBudget} bounds all of a
 * request's store calls together, so a second timer per call would only cost.
 */
export function storeFailuresAsUnavailable(store: SessionStore): SessionStore {
  return wrapStoreMethods(store, (method, operation) => {
    const failed = storeFailure(store.kind, operation);
    return (...args) => {
      const result = method.apply(store, args);
      return isPromiseLike(result) ? result.then(undefined, failed) : result;
    };
  });
}

/**
 * What a store call's error becomes: the library's own errors as they are, anything else the
 * store (of this kind) failing. Also for the stores the `legacy` option reads.
 */
export function storeFailure(kind: string, operation: string): (error: unknown) => never {
  return (error) => {
    // Every SessionError is an HttpException: the library's own errors and the HTTP answers a store may give.
    if (error instanceof HttpException) throw error;
    throw new SessionStoreUnavailableError(kind, error, `${operation}() failed`);
  };
}

/**
 * The store time one request may spend in all: SPEC §3.13 bounds the whole request's store work
 * by `storeTimeout`, not each call, so a read and a commit that each stay under it but together
 * pass it answer 503 too. Every store wait of the request (the load, each commit, a reload or
 * destroy from the handler) draws from it; one that would overdraw it fails as the store not
 * answering. The handler's own time does not count: only time spent waiting on the store.
 */
export class StoreBudget {
  private leftMs: number;

  constructor(
    private readonly storeKind: string,
    private readonly totalMs: number,
  ) {
    this.leftMs = totalMs;
  }

  /** Runs `work` (store calls) within what is left of the budget, and draws the time it took. */
  spend<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const draw = (): void => {
      this.leftMs -= performance.now() - started;
    };
    let call: Promise<T>;
    try {
      call = work();
    } catch (error) {
      draw();
      return Promise.reject(error);
    }
    // Even with nothing left, work that needs no store round trip (a commit with nothing to
    // write) settles before a zero timer fires; anything that waits on the store does not.
    return withinTime(call, Math.max(this.leftMs, 0), () => this.exhausted(operation), draw);
  }

  private exhausted(operation: string): Error {
    return new SessionStoreUnavailableError(
      this.storeKind,
      undefined,
      `${operation}() did not answer within ${this.totalMs} ms (storeTimeout, for all of this request's store calls together)`,
    );
  }
}

/** A store method, as {@link wrapStoreMethods} hands it over: call it with `this` set to the store. */
export type StoreMethod = (this: SessionStore, ...args: unknown[]) => unknown;

/**
 * A view of `store` whose methods are `wrap(method, name)` (the bounds above, the metrics'
 * timers): the same store to everything else (`instanceof`, `kind`, its fields). Each method is
 * wrapped once, on first use, not on every call of every request.
 */
export function wrapStoreMethods(store: SessionStore, wrap: (method: StoreMethod, name: string) => (...args: unknown[]) => unknown): SessionStore {
  const wrapped = new Map<PropertyKey, { method: unknown; wrapper: unknown }>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      // The constructor stays itself: frameworks read its name and metadata.
      if (typeof value !== 'function' || property === 'constructor') return value;
      const known = wrapped.get(property);
      if (known?.method === value) return known.wrapper;
      const wrapper = wrap(value as StoreMethod, String(property));
      wrapped.set(property, { method: value, wrapper });
      return wrapper;
    },
  });
}

export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
