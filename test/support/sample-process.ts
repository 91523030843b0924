/**
 * The sample application (SPEC §4) as real OS processes, for tests that need separate processes
 * rather than separate Nest apps in one: each node has its own event loop, its own pool and its
 * own memory, as behind a load balancer.
 *
 * Tests must not depend on `npm run build`, so {@link compileOnce} compiles lib/ and sample/ with
 * tsconfig.build.json into `.test-build/<random>/` inside the repository (there, Node finds
 * node_modules and the root package.json's `"type": "module"`), once per test file; then
 * {@link startSampleProcess} runs `node .test-build/<random>/sample/main.js` with the
 * environment it is given. {@link stopAllSampleProcesses} ends them and deletes the build.
 *
 * Nothing outlives the test run by accident: the processes are started by ./child-processes.ts.
 *
 * @example
 * let a: SampleProcess;
 * beforeAll(async () => { a = await startSampleProcess({ SESSION_STORE: 'file', SESSION_DIR: dir }); });
 * afterAll(() => stopAllSampleProcesses());
 * it('answers', () => a.http().get('/health').expect(200));
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { freePort } from './ports.js';
import { exited, startNodeProcess, stopAllNodeProcesses } from './child-processes.js';

/** The repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where compiled samples go; `.test-build/` is git-ignored. */
export const TEST_BUILD_DIR = join(ROOT, '.test-build');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const COMPILE_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 20_000;
/** Environment variables the sample reads (SPEC §4): a test sets those it means, never inherits them. */
const SAMPLE_VARIABLES = /^(PORT|HTTP_ADAPTER|SESSION_.*|REDIS_.*|DATABASE_URL|TRUST_PROXY)$/;

/** One sample process, listening on 127.0.0.1. */
export interface SampleProcess {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly pid: number;
  /** A supertest client for this process, over real HTTP. */
  http(): ReturnType<typeof request>;
  /** What the process printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGTERM (the sample enables shutdown hooks), SIGKILL if it takes too long. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Compiling

let compiled: Promise<string> | undefined;
/** Build directories this test file made, deleted by stopAllSampleProcesses(). */
const buildDirs = new Set<string>();
/** Builds older than this were left by a run that died before its afterAll (ms). */
const STALE_BUILD_AGE = 60 * 60_000;

function runNode(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      if (error) reject(new Error(`sample-process: node ${args.join(' ')} failed: ${error.message.split('\n')[0]}\n${output}`));
      else resolve(output);
    });
  });
}

/**
 * Compiles lib/ and sample/ (tsconfig.build.json) into a fresh `.test-build/<random>/`, once per
 * test file (later calls return the same directory), and resolves with that directory.
 *
 * It only emits (`--noCheck`): the build (`npm run build`, in CI too) and ts-jest check the
 * types already, and a check here would add seconds to every test file that starts processes.
 */
export function compileOnce(): Promise<string> {
  compiled ??= (async () => {
    await removeStaleBuilds();
    const outDir = join(TEST_BUILD_DIR, randomBytes(6).toString('hex'));
    buildDirs.add(outDir);
    await runNode([TSC, '-p', 'tsconfig.build.json', '--outDir', outDir, '--noCheck'], COMPILE_TIMEOUT_MS);
    if (!existsSync(join(outDir, 'sample', 'main.js'))) {
      throw new Error(`sample-process: tsc ran but ${join(outDir, 'sample', 'main.js')} is missing.`);
    }
    return outDir;
  })();
  return compiled;
}

/** Deletes builds that a killed test run left behind (never a recent one: another test file may be using it). */
async function removeStaleBuilds(): Promise<void> {
  const entries = await readdir(TEST_BUILD_DIR).catch(() => [] as string[]);
  await Promise.all(
    entries.map(async (entry) => {
      const dir = join(TEST_BUILD_DIR, entry);
      const info = await stat(dir).catch(() => undefined);
      if (info?.isDirectory() && Date.now() - info.mtimeMs > STALE_BUILD_AGE) await rm(dir, { recursive: true, force: true });
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Running

/** The test process's environment without the sample's variables, plus `env`. */
function childEnv(env: Record<string, string>, port: number): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!SAMPLE_VARIABLES.test(key)) base[key] = value;
  return { ...base, ...env, PORT: String(port) };
}

async function launch(buildDir: string, env: Record<string, string>, port: number): Promise<SampleProcess> {
  const node = startNodeProcess([join(buildDir, 'sample', 'main.js')], { cwd: ROOT, env: childEnv(env, port) });
  const { child, output } = node;
  const url = `http://127.0.0.1:${port}`;
  const sample: SampleProcess = { port, url, pid: child.pid!, http: () => request(url), output, stop: node.stop };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'never answered';
  for (let delay = 50; ; delay = Math.min(250, delay * 2)) {
    if (exited(child)) {
      const how = `code ${child.exitCode}, signal ${child.signalCode}`;
      throw Object.assign(new Error(`sample-process: the sample exited during start-up (${how}).\n${output()}`), { output: output() });
    }
    try {
      const res = await request(url).get('/health').timeout(2_000);
      if (res.status === 200) return sample;
      last = `GET /health answered ${res.status} ${JSON.stringify(res.body)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      await sample.stop();
      throw new Error(
        `sample-process: the sample on port ${port} did not answer GET /health with 200 within ${READY_TIMEOUT_MS / 1000} s ` +
          `(last: ${last}).\n${output()}`,
      );
    }
    await sleep(delay);
  }
}

/**
 * Compiles the sample if this test file has not yet, starts it as a child process on a free port
 * of 127.0.0.1 with `env` (the sample's other variables are not inherited from the test
 * process), and resolves once GET /health answers 200. A port taken between the check and the
 * bind is replaced by another.
 *
 * @example
 * const a = await startSampleProcess({ SESSION_STORE: 'postgres', DATABASE_URL: url, SESSION_SECRET: secret });
 * await a.http().post('/visits').expect(200);
 */
export async function startSampleProcess(env: Record<string, string>): Promise<SampleProcess> {
  const buildDir = await compileOnce();
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(buildDir, env, await freePort());
    } catch (error) {
      const output = (error as { output?: string }).output ?? '';
      if (attempt >= 3 || !/EADDRINUSE/.test(output)) throw error;
    }
  }
}

/** Stops every sample process this test file started and deletes its build directory. */
export async function stopAllSampleProcesses(): Promise<void> {
  await stopAllNodeProcesses();
  const dirs = [...buildDirs];
  buildDirs.clear();
  compiled = undefined;
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })));
  // The parent directory goes too when no other test file has a build in it.
  await rmdir(TEST_BUILD_DIR).catch(() => undefined);
}
