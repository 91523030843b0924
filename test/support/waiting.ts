/** Waiting helpers for tests: bounded, so a hang fails the test instead of stalling the run. */

/** Resolves with `promise`'s value; fails if it is still pending after `limitMs` (a hang guard, not a speed check). */
export async function settlesWithin<T>(promise: Promise<T>, limitMs = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Calls `attempt` every `intervalMs` until it returns a value other than undefined; fails after
 * `timeoutMs` with `what` and the last reason. `attempt` may throw while the condition is unmet.
 */
export async function pollUntil<T>(
  what: string,
  attempt: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 10_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = 'never tried';
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
      last = 'condition not met';
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
