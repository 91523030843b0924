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
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = value.apply(target, args);
        if (!isPromiseLike(result)) return result;
        const operation = String(property);
        return withinTime(result, timeoutMs, () => new SessionStoreUnavailableError(target.kind, undefined, `${operation}() did not answer within ${timeoutMs} ms`));
      };
    },
  });
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
