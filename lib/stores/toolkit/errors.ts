/** How the stores look at an error they caught: its system code, and what to say of it in a log. */

/** The `code` of a Node system error (`ENOENT`, `EEXIST`…); undefined for any other error. */
export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** Resolves to `value` for an error with the given code; rethrows any other. */
export function ignoreCode<T>(error: unknown, code: string, value: T): T {
  if (errorCode(error) === code) return value;
  throw error;
}

/** An error's message, or the thrown value as text when it is not an Error. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A system error as its code and call, without its path (`ENOSPC in open()`): paths hold session
 * ids, which logs never show. Any other error by its message.
 */
export function describeSystemError(error: unknown): string {
  const { code, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  if (typeof code === 'string') return syscall ? `${code} in ${syscall}()` : code;
  return errorMessage(error);
}
