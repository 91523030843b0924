import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { cookieHeader, requireSid } from '../fixtures/cookies.js';
import { PACK_TIMEOUT, packLibrary, type PackedPackage } from '../support/packed-package.js';
import { assertSucceeded, installConsumerApp, runCommand, startConsumerApp, type AppKind, type CommandResult } from './consumer-apps.js';

/**
 * The library as its users get it (SPEC §1, "a real npm package"): `npm pack` of a clean copy of
 * this checkout (test/support/packed-package.ts), installed from the tarball into two fresh
 * NestJS 12 applications (templates in ./apps), each built by its own TypeScript and run as its
 * own Node process:
 *
 * - an ESM app shaped like `nest new` makes it: `"type": "module"`, NodeNext, Vitest;
 * - a CommonJS app (`"type": "commonjs"`, NodeNext): NestJS 12 and this library are ESM only, so
 *   it loads both through `require()` of ES modules (Node ≥ 20.19). Its `skipLibCheck` is off, so
 *   its compiler checks the declaration files the package ships.
 *
 * Both run the README quick start over HTTP, type `req.session` on Express's Request, and run the
 * store conformance kit (`nestjs-session-sync/testing`) against a custom store (`MapStore`): under
 * Vitest in the ESM app, once given Vitest's functions and once finding them as globals, and under
 * node:test in the CommonJS one.
 *
 * Installs come from the npm registry, the npm cache preferred: a machine's first run downloads
 * some 120 MB, later runs take what the cache holds.
 */

const SESSION_SECRET = 'consumer-e2e-secret-0123456789abcdefghij';
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const COMMAND_TIMEOUT_MS = 3 * 60_000;

let packed: PackedPackage | undefined;
let workspace: string | undefined;
const installs = new Map<AppKind, Promise<string>>();

/** The installed application's directory; fails the caller if packing or installing failed. */
function installed(kind: AppKind): Promise<string> {
  return installs.get(kind) ?? Promise.reject(new Error(`the ${kind} app was never installed: packing the library failed (see the first error)`));
}

/** The application's own `tsc` (from its node_modules, not this repository's). */
function tsc(appDir: string, args: string[]): Promise<CommandResult> {
  return runCommand(process.execPath, [join(appDir, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], {
    cwd: appDir,
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
}

/**
 * The README quick start, driven over HTTP: sign in (a session cookie), read the guarded profile
 * (and `req.session` from a plain Express handler), sign out, and then both the old cookie and
 * no cookie at all are refused with 401 and the guard's error code.
 */
async function expectQuickStartToWork(url: string): Promise<void> {
  const login = await request(url).post('/login').send({ username: 'ada' });
  expect({ status: login.status, body: login.body }).toEqual({ status: 201, body: { userId: 'ada' } });
  const cookie = cookieHeader(requireSid(login));

  const profile = await request(url).get('/profile').set('Cookie', cookie);
  expect({ status: profile.status, body: profile.body }).toEqual({ status: 200, body: { userId: 'ada' } });
  const whoami = await request(url).get('/whoami').set('Cookie', cookie);
  expect({ status: whoami.status, body: whoami.body }).toEqual({ status: 200, body: { userId: 'ada' } });

  const logout = await request(url).post('/logout').set('Cookie', cookie);
  expect(logout.status).toBe(204);

  const afterLogout = await request(url).get('/profile').set('Cookie', cookie);
  expect({ status: afterLogout.status, body: afterLogout.body }).toMatchObject({
    status: 401,
    body: { statusCode: 401, code: 'SESSION_NOT_SIGNED_IN' },
  });
  const anonymous = await request(url).get('/profile');
  expect({ status: anonymous.status, body: anonymous.body }).toMatchObject({
    status: 401,
    body: { statusCode: 401, code: 'SESSION_NOT_SIGNED_IN' },
  });
  const anonymousWhoami = await request(url).get('/whoami');
  expect({ status: anonymousWhoami.status, body: anonymousWhoami.body }).toEqual({ status: 200, body: { userId: null } });
}

/** Runs `vitest run` with `config` in the app; fails unless it exits 0 having passed tests and failed none. */
async function expectVitestToPass(appDir: string, config: string): Promise<void> {
  const results = join(appDir, `${config}.results.json`);
  const run = await runCommand(
    'npx',
    ['vitest', 'run', '--config', config, '--reporter=default', '--reporter=json', `--outputFile.json=${results}`],
    {
      cwd: appDir,
      timeoutMs: COMMAND_TIMEOUT_MS,
    },
  );
  assertSucceeded(run);
  const summary = JSON.parse(await readFile(results, 'utf8')) as { numPassedTests: number; numFailedTests: number };
  expect({ passed: summary.numPassedTests > 0, failed: summary.numFailedTests }).toEqual({ passed: true, failed: 0 });
}

/** Starts the built app, runs the quick start against it, and stops it whatever happened. */
async function runQuickStart(appDir: string, entry: string): Promise<void> {
  const app = await startConsumerApp(appDir, entry, { SESSION_SECRET });
  try {
    await expectQuickStartToWork(app.url);
  } catch (error) {
    (error as Error).message += `\n\nThe app printed:\n${app.output().slice(-4_000)}`;
    throw error;
  } finally {
    await app.stop();
  }
}

describe('the README quick start', () => {
  it('is the controller the consumer apps run, to the character', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const shown = /```ts\n\/\/ src\/auth\.controller\.ts\n([\s\S]*?)```/.exec(readme)?.[1];
    const run = await readFile(new URL('./apps/common/src/auth.controller.ts', import.meta.url), 'utf8');

    expect(shown).toBe(run);
  });
});

describe('nestjs-session-sync installed from its packed tarball', () => {
  beforeAll(async () => {
    packed = await packLibrary();
    workspace = await mkdtemp(join(tmpdir(), 'nestjs-session-sync-consumer-'));
    for (const kind of ['esm', 'cjs'] as const) {
      const installing = installConsumerApp(kind, workspace, packed.tarball);
      // Both install at once; each app's beforeAll awaits its own, so neither failure goes unhandled.
      installing.catch(() => undefined);
      installs.set(kind, installing);
    }
  }, PACK_TIMEOUT);

  afterAll(async () => {
    await Promise.allSettled(installs.values());
    for (const dir of [workspace, packed?.workDir]) if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }, COMMAND_TIMEOUT_MS);

  describe('in an ESM app as `nest new` makes it ("type": "module", NodeNext, Vitest)', () => {
    let appDir: string;
    let build: CommandResult;

    beforeAll(async () => {
      appDir = await installed('esm');
      // tsc emits even when it reports errors, so the HTTP test still runs when only types broke.
      build = await tsc(appDir, ['-p', 'tsconfig.build.json']);
    }, INSTALL_TIMEOUT_MS);

    it(
      'type-checks the app, its Vitest spec and config with its own tsc, req.session typed on Express Request',
      async () => {
        assertSucceeded(await tsc(appDir, ['--noEmit', '-p', 'tsconfig.json']));
      },
      COMMAND_TIMEOUT_MS,
    );

    it('compiles with its own tsc (tsconfig.build.json)', () => {
      assertSucceeded(build);
    });

    it(
      'signs in, reads the profile and signs out over HTTP, then refuses the old cookie with 401 SESSION_NOT_SIGNED_IN',
      async () => {
        await runQuickStart(appDir, 'dist/main.js');
      },
      COMMAND_TIMEOUT_MS,
    );

    it(
      'passes the store conformance kit under Vitest, with the test functions imported from vitest',
      async () => {
        await expectVitestToPass(appDir, 'vitest.config.ts');
      },
      COMMAND_TIMEOUT_MS,
    );

    it(
      "passes the store conformance kit under Vitest with `globals: true` (nest new's setting), given no test functions",
      async () => {
        await expectVitestToPass(appDir, 'vitest.globals.config.ts');
      },
      COMMAND_TIMEOUT_MS,
    );
  });

  describe('in a CommonJS app ("type": "commonjs", NodeNext, require() of ES modules)', () => {
    let appDir: string;
    let build: CommandResult;

    beforeAll(async () => {
      appDir = await installed('cjs');
      build = await tsc(appDir, ['-p', 'tsconfig.json']);
    }, INSTALL_TIMEOUT_MS);

    it('type-checks and compiles with its own tsc, skipLibCheck off: the shipped .d.ts files are checked too', () => {
      assertSucceeded(build);
    });

    it(
      'signs in, reads the profile and signs out over HTTP, then refuses the old cookie with 401 SESSION_NOT_SIGNED_IN',
      async () => {
        await runQuickStart(appDir, 'dist/src/main.js');
      },
      COMMAND_TIMEOUT_MS,
    );

    it(
      'gets one copy of the library and of @nestjs/common from require() and import() alike (no dual-package hazard)',
      async () => {
        // A second copy would mean a second SessionStore token and a second module instance.
        const script = `
        const required = [require('nestjs-session-sync'), require('@nestjs/common')];
        Promise.all([import('nestjs-session-sync'), import('@nestjs/common')]).then((imported) => {
          console.log(JSON.stringify({
            sessionModule: required[0].SessionModule === imported[0].SessionModule,
            sessionStore: required[0].SessionStore === imported[0].SessionStore,
            nestInjectable: required[1].Injectable === imported[1].Injectable,
          }));
        });`;
        const run = await runCommand(process.execPath, ['-e', script], { cwd: appDir, timeoutMs: COMMAND_TIMEOUT_MS });
        assertSucceeded(run);
        expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toEqual({ sessionModule: true, sessionStore: true, nestInjectable: true });
      },
      COMMAND_TIMEOUT_MS,
    );

    it(
      'passes the store conformance kit under node:test, with expect from the expect package',
      async () => {
        const run = await runCommand(process.execPath, ['--test', '--test-reporter=tap', 'dist/test/map.store.test.js'], {
          cwd: appDir,
          timeoutMs: COMMAND_TIMEOUT_MS,
        });
        assertSucceeded(run);
        const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(run.stdout)?.[1] ?? NaN);
        expect({ passed: count('pass') > 0, failed: count('fail') }).toEqual({ passed: true, failed: 0 });
      },
      COMMAND_TIMEOUT_MS,
    );
  });
});
