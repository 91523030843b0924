import { SessionStoreUnavailableError } from '../session.errors.js';
import type { SessionStore } from './session-store.js';
import { withinTime } from './store-runtime.js';

/**
 * The same store, with every asynchronous call bounded in time: a store that hangs (a network
 * partition, a pool with no free connection) fails the request with a 503 after `timeoutMs`
 * instead of holding it open. Stores bound their own calls too; this bound holds for any store,
 * custom ones included. A call that times out may still complete later in the store: the
 * client is told it failed, and the store's own atomic rules keep its data consistent.
 */
export function boundStoreCalls(store: SessionStore, timeoutMs: number): SessionStore {
  // Each method is wrapped once, on first use, not on every call of every request.
  const bound = new Map<PropertyKey, { method: unknown; wrapper: unknown }>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const known = bound.get(property);
      if (known?.method === value) return known.wrapper;
      const operation = String(property);
      const timeoutError = (): Error => new SessionStoreUnavailableError(target.kind, undefined, `${operation}() did not answer within ${timeoutMs} ms`);
      const wrapper = (...args: unknown[]): unknown => {
        const result: unknown = value.apply(target, args);
        return isPromiseLike(result) ? withinTime(result, timeoutMs, timeoutError) : result;
      };
      bound.set(property, { method: value, wrapper });
      return wrapper;
    },
  });
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
