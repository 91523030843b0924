/**
 * What the consumer e2e spec does with the packed library (test/support/packed-package.ts) as a
 * new user would: install the tarball into a fresh application, with its other dependencies
 * from the npm registry, build that application with its own compiler and run it as its own
 * process.
 *
 * The applications are templates under `apps/`: `apps/common/src/` (the README quick start and a
 * custom store, the same files in both) laid over `apps/esm/` or `apps/cjs/` (package.json,
 * tsconfig, main.ts, the store's conformance spec). Their package.json names the library as
 * `file:__TARBALL__`, replaced by the packed tarball's path in the copy.
 */
import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exited, startNodeProcess } from '../support/child-processes.js';
import { freePort } from '../support/ports.js';
import { pollUntil } from '../support/waiting.js';

const APPS = fileURLToPath(new URL('./apps/', import.meta.url));
const TARBALL_PLACEHOLDER = 'file:__TARBALL__';
/** How much of a command's output a failure message shows. */
const OUTPUT_TAIL = 6_000;
const READY_TIMEOUT_MS = 20_000;

export type AppKind = 'esm' | 'cjs';

/** How a command ended, with what it printed; `output` interleaves stdout and stderr. */
export interface CommandResult {
  command: string;
  cwd: string;
  code: number | null;
  stdout: string;
  output: string;
}

/**
 * The environment of the commands run for a consumer: the test's own, without what `npm test`
 * adds for its lifecycle script (those describe this repository, not the consumer's package), and
 * without colours, so failure messages and parsed summaries are plain text.
 */
function consumerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|INIT_CWD$)/i.test(key)) env[key] = value;
  }
  return { ...env, NO_COLOR: '1', FORCE_COLOR: '0', ...extra };
}

/** Runs a command to its end; never rejects, so the caller's assertion can show what happened. */
export function runCommand(
  command: string,
  args: string[],
  { cwd, timeoutMs, env = {} }: { cwd: string; timeoutMs: number; env?: Record<string, string> },
): Promise<CommandResult> {
  const line = [command, ...args].join(' ');
  return new Promise((resolve) => {
    let stdout = '';
    let output = '';
    const child = spawn(command, args, { cwd, env: consumerEnv(env), stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', (error) => resolve({ command: line, cwd, code: null, stdout, output: `${output}\n${error.message}` }));
    child.on('close', (code, signal) => {
      const ended = signal ? `\n(ended by ${signal}${signal === 'SIGTERM' ? `: over ${timeoutMs / 1000} s?` : ''})` : '';
      resolve({ command: line, cwd, code, stdout, output: output + ended });
    });
  });
}

/** Fails with the command, its exit code and the tail of its output, unless it exited 0. */
export function assertSucceeded(result: CommandResult): void {
  if (result.code === 0) return;
  const tail = result.output.length > OUTPUT_TAIL ? `…${result.output.slice(-OUTPUT_TAIL)}` : result.output;
  throw new Error(`\`${result.command}\` in ${result.cwd} exited with ${result.code}. Its output ends with:\n${tail.trim()}`);
}

/**
 * Lays out the `kind` application in `workspace/kind` with the tarball as its dependency and runs
 * `npm install` there, as a new user would. Resolves with the application's directory.
 */
export async function installConsumerApp(kind: AppKind, workspace: string, tarball: string): Promise<string> {
  const appDir = join(workspace, kind);
  // A developer may have installed or built inside a template: copy only what it is made of.
  const sourcesOnly = (path: string) => !/[\\/](node_modules|dist|package-lock\.json)([\\/]|$)/.test(path.slice(APPS.length));
  await cp(join(APPS, 'common'), appDir, { recursive: true, filter: sourcesOnly });
  await cp(join(APPS, kind), appDir, { recursive: true, filter: sourcesOnly });

  const manifestPath = join(appDir, 'package.json');
  const manifest = await readFile(manifestPath, 'utf8');
  if (!manifest.includes(TARBALL_PLACEHOLDER)) throw new Error(`${kind}/package.json does not name the library as "${TARBALL_PLACEHOLDER}".`);
  await writeFile(manifestPath, manifest.replace(TARBALL_PLACEHOLDER, `file:${tarball}`));

  // --prefer-offline: what the npm cache already has is not asked for again, which keeps reruns short.
  assertSucceeded(await runCommand('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: appDir, timeoutMs: 420_000 }));
  return appDir;
}

/** A consumer application running as its own Node process on 127.0.0.1. */
export interface RunningApp {
  url: string;
  /** What the process printed so far, for failure messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it lingers. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `node <entry>` in `appDir` on a free port with `env`, and resolves once it answers HTTP.
 * A process that exits during start-up fails at once, with what it printed.
 */
export async function startConsumerApp(appDir: string, entry: string, env: Record<string, string>): Promise<RunningApp> {
  const port = await freePort();
  const { child, output, stop } = startNodeProcess([entry], { cwd: appDir, env: consumerEnv({ ...env, PORT: String(port) }) });
  const closed = new Promise((resolve) => child.once('close', resolve));
  const app: RunningApp = { url: `http://127.0.0.1:${port}`, output, stop };

  try {
    await pollUntil(
      `node ${entry} answering on port ${port}`,
      // A process that is gone ends the wait at once: start-up failed, and its output says why.
      async () => (exited(child) ? 'exited' : (await fetch(app.url, { signal: AbortSignal.timeout(2_000) })).status),
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100 },
    );
  } catch (error) {
    await stop();
    throw new Error(`node ${entry} in ${appDir} never answered: ${(error as Error).message}\n${output().trim()}`);
  }
  if (exited(child)) {
    await closed; // all it printed has arrived
    throw new Error(`node ${entry} in ${appDir} exited during start-up (code ${child.exitCode}, signal ${child.signalCode}):\n${output().trim()}`);
  }
  return app;
}
