import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FileStore } from '../../lib/stores/file/index.js';
import type { ExpiredSession, SessionChange, StoredSession } from '../../lib/stores/session-store.js';

/**
 * FileStore shared by separate OS processes, as under Node cluster or PM2. Each worker is a plain
 * ESM script (test/fixtures/file-store-worker.mjs) running the library's own source, transpiled
 * here once per run: the test needs no prior build.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKER = join(ROOT, 'test', 'fixtures', 'file-store-worker.mjs');
const HOUR = 60 * 60_000;
/** Far beyond the test timeout: in these tests a lock is never freed by age, only by release or a dead holder. */
const LOCK_TIMEOUT = 10 * 60_000;

const newId = (): string => randomBytes(32).toString('base64url');
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function newSession(overrides: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  return { id: newId(), data: { base: true }, createdAt: now, lastSeenAt: now, expiresAt: now + HOUR, userId: null, ...overrides };
}

function change(set: Record<string, unknown>): SessionChange {
  return { set, unset: [], expiresAt: Date.now() + HOUR, lastSeenAt: Date.now() };
}

function sessionDir(directory: string, id: string): string {
  const hash = sha256(id);
  return join(directory, 'sessions', hash.slice(0, 2), hash.slice(2, 4));
}

const exists = (path: string): Promise<boolean> =>
  lstat(path).then(
    () => true,
    () => false,
  );

/**
 * Transpiles `entry` and every library file it imports into `outDir`, keeping the layout, as
 * ES modules (the lib uses NodeNext `.js` specifiers, which then resolve as they are).
 */
async function transpileLib(entry: string, outDir: string): Promise<void> {
  const queue = [entry];
  const done = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = await readFile(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
      },
    });
    const target = join(outDir, relative(ROOT, file)).replace(/\.ts$/, '.js');
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, outputText);
    for (const { fileName } of ts.preProcessFile(source).importedFiles) {
      if (fileName.startsWith('.')) queue.push(resolve(dirname(file), fileName).replace(/\.js$/, '.ts'));
    }
  }
  // Under node_modules, Node would take .js files for CommonJS without this.
  await writeFile(join(outDir, 'package.json'), '{ "type": "module" }\n');
}

/** A worker process with a FileStore on the shared directory, driven over IPC. */
class StoreProcess {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  private output = '';

  private constructor(private readonly child: ChildProcess) {}

  static start(storesDir: string, directory: string): Promise<StoreProcess> {
    const child = fork(WORKER, [storesDir, directory, String(LOCK_TIMEOUT)], { execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const worker = new StoreProcess(child);
    child.stdout!.on('data', (chunk: Buffer) => (worker.output += chunk));
    child.stderr!.on('data', (chunk: Buffer) => (worker.output += chunk));
    return new Promise((resolve, reject) => {
      child.on('exit', (code, signal) => {
        const error = new Error(`worker ${child.pid} exited (${code ?? signal}):\n${worker.output}`);
        reject(error);
        for (const { reject: fail } of worker.pending.values()) fail(error);
      });
      child.on('message', (message: { ready?: true; seq?: number; result?: unknown; error?: string }) => {
        if (message.ready) return resolve(worker);
        const call = worker.pending.get(message.seq!);
        worker.pending.delete(message.seq!);
        if (message.error !== undefined) call?.reject(new Error(`in worker ${child.pid}: ${message.error}`));
        else call?.resolve(message.result);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  call<T>(op: string, ...args: unknown[]): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.child.send({ seq, op, args });
    });
  }

  get(id: string): Promise<StoredSession | null> {
    return this.call('get', id);
  }

  commit(id: string, set: Record<string, unknown>): Promise<boolean> {
    return this.call('commit', id, change(set));
  }

  /** Ends the process at once, as a crash would: no clean-up of any kind. */
  async kill(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}

describe('FileStore shared by two processes', () => {
  let build: string;
  let storesDir: string;
  let directory: string;
  let first: StoreProcess;
  let second: StoreProcess;
  const started: StoreProcess[] = [];

  const start = async (): Promise<StoreProcess> => {
    const worker = await StoreProcess.start(storesDir, directory);
    started.push(worker);
    return worker;
  };

  beforeAll(async () => {
    await mkdir(join(ROOT, 'node_modules', '.cache'), { recursive: true });
    build = await mkdtemp(join(ROOT, 'node_modules', '.cache', 'nss-file-store-'));
    await transpileLib(join(ROOT, 'lib', 'stores', 'file', 'index.ts'), build);
    storesDir = join(build, 'lib', 'stores');
    directory = await mkdtemp(join(tmpdir(), 'nss-file-mp-'));
    [first, second] = await Promise.all([start(), start()]);
  });

  afterAll(async () => {
    await Promise.all(started.map((worker) => worker.stop()));
    await rm(build, { recursive: true, force: true });
    await rm(directory, { recursive: true, force: true });
  });

  it('runs the two stores in two different processes', () => {
    expect(new Set([first.pid, second.pid, process.pid]).size).toBe(3);
  });

  it('reads in one process, with its data and user, a session created in the other', async () => {
    const session = newSession({ data: { cart: ['a', 'b'], name: 'Ada' }, userId: 'u-ada' });

    await first.call('create', session);

    await expect(second.get(session.id)).resolves.toMatchObject({ id: session.id, data: { cart: ['a', 'b'], name: 'Ada' }, userId: 'u-ada' });
    await expect(second.call('listByUser', 'u-ada')).resolves.toMatchObject([{ id: session.id }]);
  });

  it('keeps all fifty fields when fifty commits to different fields of one session are split across the two processes', async () => {
    const session = newSession();
    await first.call('create', session);

    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? first : second).commit(session.id, { [`field${i}`]: i })));

    expect(results).toEqual(Array.from({ length: 50 }, () => true));
    const expected: Record<string, unknown> = { base: true };
    for (let i = 0; i < 50; i++) expected[`field${i}`] = i;
    await expect(first.get(session.id)).resolves.toMatchObject({ data: expected });
    await expect(second.get(session.id)).resolves.toMatchObject({ data: expected });
  });

  it('keeps a session dead when a destroy in one process races commits in the other', async () => {
    for (let round = 0; round < 5; round++) {
      const session = newSession();
      await first.call('create', session);

      const racing = Array.from({ length: 30 }, (_, i) => second.commit(session.id, { [`late${i}`]: i }));
      // Once the first commit is in, the destroy lands in the middle of the others.
      await Promise.race(racing);
      const destroying = first.call('destroy', session.id);
      const results = await Promise.all(racing);
      await destroying;
      const after = await Promise.all(Array.from({ length: 5 }, (_, i) => second.commit(session.id, { [`after${i}`]: i })));

      expect(results.every((result) => typeof result === 'boolean')).toBe(true);
      expect(after).toEqual([false, false, false, false, false]);
      await expect(first.get(session.id)).resolves.toBeNull();
      await expect(second.get(session.id)).resolves.toBeNull();
      expect(await exists(join(sessionDir(directory, session.id), `${session.id}.json`))).toBe(false);
    }
    expect((await readdir(join(directory, 'sessions'), { recursive: true })).filter((name) => /\.(tmp|lock)$/.test(name))).toEqual([]);
  });

  it('lets both processes sweep at once: each expired session is deleted, and counted, once', async () => {
    const local = await FileStore.open({ directory });
    const expired = Array.from({ length: 30 }, () => newSession({ expiresAt: Date.now() - 1 }));
    for (const session of expired) await local.create(session);
    await local.onApplicationShutdown();

    const [a, b] = await Promise.all([first.call<number>('sweep'), second.call<number>('sweep')]);

    expect(a + b).toBe(30);
    for (const session of expired) expect(await exists(join(sessionDir(directory, session.id), `${session.id}.json`))).toBe(false);
  });

  it('never lets the critical sections of one user overlap when the two processes run them at once', async () => {
    const traceFile = join(directory, 'user-lock-trace.txt');
    const userId = `user-${randomBytes(6).toString('hex')}`;
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`);

    const results = await Promise.all(names.map((name, i) => (i % 2 ? first : second).call('tracedUserLock', userId, traceFile, name)));

    expect(results).toEqual(names);
    const trace = (await readFile(traceFile, 'utf8')).trim().split('\n');
    expect(trace).toHaveLength(2 * names.length);
    for (let i = 0; i < trace.length; i += 2) expect(trace[i + 1]).toBe(trace[i].replace('enter', 'exit'));
  });

  it('reports each expiry once across the two processes when both watch and sweep at once', async () => {
    await Promise.all([first.call('watchExpiry'), second.call('watchExpiry')]);
    const userId = `user-${randomBytes(6).toString('hex')}`;
    const expired = Array.from({ length: 30 }, (_, i) => newSession({ userId: i % 2 ? userId : null, expiresAt: Date.now() - 1 }));
    for (const session of expired) await first.call('create', session);

    await Promise.all([first.call('sweep'), second.call('sweep'), first.call('sweep'), second.call('sweep')]);
    await Promise.all([first.call('sweep'), second.call('sweep')]);

    const reports = [...(await first.call<ExpiredSession[]>('expiryReports')), ...(await second.call<ExpiredSession[]>('expiryReports'))];
    const about = reports.filter((report) => expired.some((session) => session.id === report.id));
    expect(about).toHaveLength(expired.length);
    expect(about).toEqual(expect.arrayContaining(expired.map((session) => ({ id: session.id, userId: session.userId }))));
  });

  it('frees the lock of a process killed while holding it, without waiting for lockTimeout', async () => {
    const session = newSession();
    await first.call('create', session);
    const doomed = await start();
    await doomed.call('holdLock', join(sessionDir(directory, session.id), `${session.id}.lock`));
    await doomed.kill();

    await expect(second.commit(session.id, { after: 'crash' })).resolves.toBe(true);

    await expect(first.get(session.id)).resolves.toMatchObject({ data: { base: true, after: 'crash' } });
  });
});
