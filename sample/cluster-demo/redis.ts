/**
 * A throwaway Redis for the cluster demo, so that `npm run demo:cluster` needs nothing running
 * beforehand and never reads or writes anyone's existing Redis data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, pollUntil, startChild, type ChildHandle } from './processes.js';

/** A `redis-server` started by {@link startThrowawayRedis}. */
export interface ThrowawayRedis {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** The server's process, run under a guardian that kills it if the demo dies (`exitWithParent`). */
  readonly process: ChildHandle;
  /** Stops the server and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startThrowawayRedis}. */
export interface ThrowawayRedisOptions {
  /** The server binary (default `redis-server`, found on PATH). */
  readonly command?: string;
  /** Start-up limit (ms, default 10 s). */
  readonly timeoutMs?: number;
  /** Stops waiting when aborted (the demo is being interrupted). */
  readonly signal?: AbortSignal;
}

/** Sends PING over a raw socket: no Redis client library needed just to know the server is up. */
function ping(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (answer: string): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => done('timeout'));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) done(reply.trim());
    });
    socket.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1, in a fresh temp directory, persisting nothing
 * (`--save '' --appendonly no`), and resolves once it answers PING. A port taken between the check
 * and the bind is replaced by another.
 *
 * @throws When `redis-server` is not installed (the message says so and suggests `REDIS_URL`), or
 *   does not answer within the time limit (the message quotes its output).
 *
 * @example
 * const redis = await startThrowawayRedis();
 * try { use(redis.url); } finally { await redis.stop(); }
 */
export async function startThrowawayRedis(options: ThrowawayRedisOptions = {}): Promise<ThrowawayRedis> {
  const command = options.command ?? 'redis-server';
  const dir = await mkdtemp(join(tmpdir(), 'nss-cluster-demo-redis-'));
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const server = startChild(
        'redis',
        command,
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        // Redis needs no variables of ours; PATH and HOME keep it behaving as from a shell.
        { env: { PATH: process.env.PATH, HOME: process.env.HOME }, exitWithParent: true, orphanDir: dir },
      );
      const failedToStart = async (): Promise<string | undefined> => {
        if (server.running) return undefined;
        const exit = await server.exited;
        // Under its guardian, a missing binary shows as exit code 127 and "redis-server: ENOENT".
        if (exit.code === 127 && /ENOENT/.test(server.output())) {
          throw new Error(`'${command}' is not on PATH: install Redis, or point the demo at a running one with REDIS_URL=redis://HOST:PORT.`);
        }
        return `${command} exited during start-up (code ${exit.code}, signal ${exit.signal}).\n${server.output()}`;
      };
      try {
        await pollUntil(
          async (note) => {
            const failure = await failedToStart();
            if (failure !== undefined) throw new Error(failure);
            const answer = await ping(port);
            note(answer);
            return answer === '+PONG';
          },
          { timeoutMs: options.timeoutMs ?? 10_000, what: `redis-server on port ${port}`, signal: options.signal },
        );
      } catch (error) {
        await server.stop();
        if (attempt < 3 && /Address already in use/i.test(server.output())) continue;
        throw error;
      }
      let stopping: Promise<void> | undefined;
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        process: server,
        stop: () =>
          (stopping ??= (async () => {
            await server.stop();
            await rm(dir, { recursive: true, force: true });
          })()),
      };
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
