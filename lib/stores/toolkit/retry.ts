/**
 * Waiting between tries for something another holder has (a lock): short waits that grow, and
 * are jittered, so waiters neither spin nor move in lockstep. Each store names its own numbers.
 */

import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The delays of a retry loop: `first` ms before the first retry, doubling with every attempt up
 * to `max`, each scaled by a random factor from `jitter[0]` (included) to `jitter[1]` (excluded).
 */
export interface Backoff {
  first: number;
  max: number;
  jitter: readonly [low: number, high: number];
}

/** The delay before retry number `attempt` (0 for the first), in ms. */
export function backoffDelay(backoff: Backoff, attempt: number): number {
  const [low, high] = backoff.jitter;
  return Math.min(backoff.first * 2 ** attempt, backoff.max) * (low + Math.random() * (high - low));
}

/** Sleeps the delay before retry number `attempt`, but never longer than `limit` ms (the time a caller has left). */
export function backOff(backoff: Backoff, attempt: number, limit = Infinity): Promise<void> {
  return sleep(Math.min(limit, backoffDelay(backoff, attempt)));
}
