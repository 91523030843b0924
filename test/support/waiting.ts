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
