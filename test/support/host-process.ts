import { spawn } from 'node:child_process';
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

/**
 * Starts a detached watchdog process running `script`, which reads lines on its stdin; when stdin
 * closes (the test process is gone, however it died) the script cleans up what the lines listed.
 * Returns the function that sends it a line (a no-op if the watchdog could not start: the exit
 * handlers still cover ordinary exits).
 */
export function startWatchdog(script: string): (line: string) => void {
  try {
    const watchdog = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.on('error', () => undefined);
    watchdog.stdin?.on('error', () => undefined);
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return (line) => {
      if (watchdog.stdin && !watchdog.stdin.destroyed) watchdog.stdin.write(`${line}\n`);
    };
  } catch {
    return () => undefined;
  }
}
