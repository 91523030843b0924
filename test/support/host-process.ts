import { runInThisContext } from 'node:vm';

/**
 * The real Node process. Jest gives each test file a copy of `process` with an event emitter of
 * its own: an 'exit' listener added to it never fires. The real process is the global of Node's
 * main context; the harnesses register their clean-up on it.
 */
export function hostProcess(): NodeJS.Process {
  try {
    const real: unknown = runInThisContext('process');
    if (typeof real === 'object' && real !== null && typeof (real as NodeJS.Process).on === 'function') {
      return real as NodeJS.Process;
    }
  } catch {
    // Not in a VM context: the global process is the real one.
  }
  return process;
}
