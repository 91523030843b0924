/**
 * Child-process plumbing for the cluster demo: free ports, children whose output is kept for error
 * messages, stopping them (SIGTERM, then SIGKILL), and bounded polling.
 *
 * Every child started here is listed until it exits, so that the demo's entry point can SIGKILL
 * whatever is still running when it exits in a way that skips its normal clean-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** How a child ended. `error` is set when it could not be started at all (e.g. ENOENT). */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
}

/** A child process started by {@link startChild}. */
export interface ChildHandle {
  /** A label for messages, e.g. `node-2` or `redis`. */
  readonly name: string;
  readonly pid: number | undefined;
  /** Whether the process is still alive (has not been seen to exit). */
  readonly running: boolean;
  /** Settles once the process has exited (or failed to start). Never rejects. */
  readonly exited: Promise<ChildExit>;
  /** The last lines of what the process printed (stdout and stderr), for error messages. */
  output(): string;
  /**
   * Sends `signal` (SIGKILL by default) right away; a no-op once the process has exited. For a
   * guarded command, SIGKILL reaches the command itself, through its guardian.
   */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it lingers; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startChild}. */
export interface StartChildOptions {
  /** The child's whole environment (nothing else is inherited). */
  readonly env: NodeJS.ProcessEnv;
  /** Receives each line the child prints, e.g. to echo it with a prefix; silent when absent. */
  readonly echo?: (line: string) => void;
  /**
   * Make the child exit when this process dies for any reason, even SIGKILL, so a crashed demo
   * leaves nothing running. It rests on an IPC channel, which the OS closes when we die: a Node
   * child (`command` is this Node binary) preloads a one-liner that exits on 'disconnect'; any
   * other command runs under a small Node guardian that SIGKILLs it on 'disconnect' (and passes
   * on our signals). `pid` is then the guardian's.
   */
  readonly exitWithParent?: boolean;
  /**
   * With `exitWithParent` on a non-Node command: a directory the guardian deletes after killing
   * the command because this process died (the clean-up that process can no longer do).
   */
  readonly orphanDir?: string;
}

const OUTPUT_TAIL_CHARS = 20_000;
const DEFAULT_GRACE_MS = 5_000;

/** Children still running, for {@link killAllChildrenNow}. */
const live = new Set<ChildHandle>();

/** Preloaded by Node children (`--import`): exit when the parent's IPC channel closes. */
const PARENT_WATCH = `process.on('disconnect', () => process.exit(0)); process.channel?.unref();`;

/**
 * The `node` arguments that make a Node child exit together with this process (see
 * {@link StartChildOptions.exitWithParent}); put them before the script path.
 */
export const EXIT_WITH_PARENT_ARGS: readonly string[] = ['--import', `data:text/javascript,${encodeURIComponent(PARENT_WATCH)}`];

/**
 * `node -e GUARDIAN <orphanDir|''> <command> <args…>`: runs the command and mirrors its exit
 * (code 127 with `<command>: ENOENT` when it cannot start). Forwards SIGTERM, SIGINT and SIGHUP;
 * SIGUSR2 means "SIGKILL it" (a guardian killed with SIGKILL could not pass that on). When the
 * parent's IPC channel closes, the parent is gone: SIGKILL the command, then delete `orphanDir`.
 */
const GUARDIAN = `
const { spawn } = require('node:child_process');
const { rmSync } = require('node:fs');
const [orphanDir, command, ...args] = process.argv.slice(1);
let orphaned = false;
const child = spawn(command, args, { stdio: 'inherit' });
child.on('error', (error) => { console.error(command + ': ' + (error.code || error.message)); process.exit(127); });
child.on('exit', (code) => {
  if (orphaned && orphanDir) rmSync(orphanDir, { recursive: true, force: true });
  process.exit(code ?? 128);
});
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
process.on('SIGUSR2', () => child.kill('SIGKILL'));
process.on('disconnect', () => { orphaned = true; child.kill('SIGKILL'); });
`;

/**
 * Starts `command` with `args`, keeping the tail of its output.
 *
 * @returns The handle at once; watch `exited` to learn that it failed to start.
 */
export function startChild(name: string, command: string, args: readonly string[], options: StartChildOptions): ChildHandle {
  const ipc = options.exitWithParent === true;
  const guarded = ipc && command !== process.execPath;
  const argv = !ipc ? [...args] : guarded ? ['-e', GUARDIAN, options.orphanDir ?? '', command, ...args] : [...EXIT_WITH_PARENT_ARGS, ...args];
  const child: ChildProcess = spawn(guarded ? process.execPath : command, argv, {
    env: options.env,
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  // A guardian cannot pass SIGKILL on, so it is asked with SIGUSR2 instead.
  const hardKill: NodeJS.Signals = guarded ? 'SIGUSR2' : 'SIGKILL';
  // The channel is only there so the child notices our death; it must not keep us alive.
  child.channel?.unref();

  let output = '';
  let partial = '';
  const collect = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    // Keep the tail only: a chatty child must not grow the demo's memory.
    output = (output + text).slice(-OUTPUT_TAIL_CHARS);
    if (options.echo) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.echo(line);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let running = true;
  const exited = new Promise<ChildExit>((resolve) => {
    child.on('error', (error) => {
      // 'error' without 'exit' means the process never started (ENOENT, EACCES).
      if (child.pid === undefined) {
        running = false;
        resolve({ code: null, signal: null, error });
      }
    });
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });

  let stopping: Promise<void> | undefined;
  const handle: ChildHandle = {
    name,
    pid: child.pid,
    get running() {
      return running;
    },
    exited,
    output: () => output,
    kill(signal = 'SIGKILL') {
      if (running) child.kill(signal === 'SIGKILL' ? hardKill : signal);
    },
    stop(graceMs = DEFAULT_GRACE_MS) {
      stopping ??= (async () => {
        if (!running) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill(hardKill), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
  live.add(handle);
  void exited.then(() => live.delete(handle));
  return handle;
}

/**
 * SIGKILLs every child started by {@link startChild} that is still running. Synchronous, so it
 * can run in a `process.on('exit')` handler, where nothing asynchronous happens any more.
 */
export function killAllChildrenNow(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** Binds `port` (0: any) on 127.0.0.1 and releases it; resolves with the port, or 0 if it is taken. */
function probe(port: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(0));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

/** Ports this process handed out already: two servers started together never get the same one. */
const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that nobody listens on right now: `preferred` when it is free (so the
 * demo's nodes get memorable ports), else one the OS picks. Never 6379, the usual shared Redis.
 * The port is free when this resolves, not reserved: callers retry when the bind still fails.
 */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred !== undefined && preferred !== 6379 && !handedOut.has(preferred) && (await probe(preferred)) === preferred) {
    handedOut.add(preferred);
    return preferred;
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await probe(0);
    if (port !== 0 && port !== 6379 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: found no free port on 127.0.0.1.');
}

/** Options of {@link pollUntil}. */
export interface PollOptions {
  /** Give up after this long (ms). */
  readonly timeoutMs: number;
  /** What is awaited, for the timeout message. */
  readonly what: string;
  /** Stops waiting early (the demo is being interrupted). */
  readonly signal?: AbortSignal;
}

/**
 * Calls `check` until it returns true, backing off from 50 to 250 ms between calls. `check` may
 * throw to give up at once (e.g. the process it waits for has exited).
 *
 * @throws When `timeoutMs` passes, naming `what` and the last result `check` reported via `note`.
 */
export async function pollUntil(check: (note: (last: string) => void) => Promise<boolean>, options: PollOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let last = 'no answer yet';
  const note = (text: string): void => {
    last = text;
  };
  for (let delay = 50; ; delay = Math.min(250, delay * 2)) {
    if (options.signal?.aborted) throw new Error(`Interrupted while waiting for ${options.what}.`);
    if (await check(note)) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${options.timeoutMs / 1000} s waiting for ${options.what} (last: ${last}).`);
    await sleep(delay);
  }
}
