/**
 * Node processes the tests start (sample nodes, consumer applications), made so that none
 * outlives the test run by accident: each is started with a preload that exits it when its
 * parent's IPC channel closes (the test process is gone, however it died), and an 'exit' handler
 * on the real process SIGKILLs whatever a forgotten afterAll left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostProcess } from './host-process.js';

const STOP_TIMEOUT_MS = 5_000;
/** How much of what a process printed is kept for failure messages. */
const OUTPUT_KEPT = 20_000;

/** Loaded before the program (`node --import`): exits it once the parent's IPC channel closes. */
const EXIT_WITH_PARENT = `data:text/javascript,process.on('disconnect',()=>process.exit(0));process.channel?.unref();`;

const running = new Set<ChildProcess>();
let exitHandlerInstalled = false;

function killLeftoversOnExit(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  hostProcess().on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** A Node process started by {@link startNodeProcess}. */
export interface NodeProcess {
  readonly child: ChildProcess;
  /** The tail of what it printed, stdout and stderr interleaved. */
  output(): string;
  /** SIGTERM, then SIGKILL if it lingers. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `node <args>` watched as described above. */
export function startNodeProcess(args: string[], { cwd, env }: { cwd: string; env: NodeJS.ProcessEnv }): NodeProcess {
  const child = spawn(process.execPath, ['--import', EXIT_WITH_PARENT, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  running.add(child);
  killLeftoversOnExit();
  child.on('exit', () => running.delete(child));
  // The channel must not keep the test process alive; the child notices when it closes.
  child.channel?.unref();
  let output = '';
  // Keep the tail only: a chatty process must not grow the test's memory.
  const collect = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEPT));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let stopping: Promise<void> | undefined;
  return { child, output: () => output, stop: () => (stopping ??= terminate(child)) };
}

export const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/** Resolves true once `child` has exited, or false after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM (so a Nest app's shutdown hooks close its store), then SIGKILL if it lingers. */
async function terminate(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  child.kill('SIGTERM');
  if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
    child.kill('SIGKILL');
    await waitForExit(child, STOP_TIMEOUT_MS);
  }
}

/** Stops every process this test file started and has not stopped yet. */
export async function stopAllNodeProcesses(): Promise<void> {
  await Promise.all([...running].map(terminate));
}
