import type { LoggerService } from '@nestjs/common';
import { errorMessage } from './errors.js';

/**
 * What the stores share at run time: their sweeper timer and their rate-limited warnings.
 */

/** The longest delay a Node timer holds; setInterval silently turns longer ones into 1 ms. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * Runs `sweep` every `interval` ms on a timer that never keeps the process alive. Errors are
 * handed to `onError`: a failed sweep is retried on the next tick, never thrown.
 */
export function startSweeper(sweep: () => unknown, interval: number, onError: (error: unknown) => void): NodeJS.Timeout {
  const timer = setInterval(
    () => {
      try {
        const result = sweep();
        if (result instanceof Promise) result.catch(onError);
      } catch (error) {
        onError(error);
      }
    },
    Math.min(interval, MAX_TIMER_DELAY),
  );
  timer.unref();
  return timer;
}

/**
 * `call`'s outcome, or a rejection with `timeoutError()` once `ms` have passed. `settled` runs
 * once, when either happens.
 */
export function withinTime<T>(call: PromiseLike<T>, ms: number, timeoutError: () => Error, settled?: () => void): Promise<T> {
  // One promise and one timer: this wraps every store call of every request.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      settled?.();
      reject(timeoutError());
    }, ms);
    call.then(
      (value) => {
        clearTimeout(timer);
        settled?.();
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        settled?.();
        reject(error);
      },
    );
  });
}

/**
 * Warnings about a store's connection, at most one per `quietMs`: a server that is down makes
 * its client report every reconnect attempt, which must not flood the log.
 */
export class StoreWarnings {
  private lastLogged = 0;

  constructor(
    private readonly label: string,
    /** The store's logger, asked at each warning: the module may replace it after construction. */
    private readonly logger: () => LoggerService,
    private readonly quietMs = 10_000,
  ) {}

  warn(error: unknown): void {
    const now = Date.now();
    if (now - this.lastLogged < this.quietMs) return;
    this.lastLogged = now;
    this.logger().warn(`${this.label}: ${errorMessage(error)}`);
  }
}
