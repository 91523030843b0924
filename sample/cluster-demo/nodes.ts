/**
 * The sample application started as several OS processes ("nodes") sharing one session store,
 * the way a deployment behind a load balancer runs it.
 */
import { get } from 'node:http';
import { freePort, pollUntil, startChild, type ChildHandle } from './processes.js';

/** One sample process started by {@link startSampleNodes}. */
export interface SampleNode {
  /** `node-1`, `node-2`… */
  readonly name: string;
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly process: ChildHandle;
}

/** Options of {@link startSampleNodes}. */
export interface StartSampleNodesOptions {
  /** How many nodes (default 3). */
  readonly count?: number;
  /** The compiled sample entry, `dist/sample/main.js`. */
  readonly entry: string;
  /**
   * The sample's configuration (SESSION_STORE, REDIS_URL, SESSION_SECRET…); PORT is set per node.
   * The sample's variables in this process's environment are not inherited: every node must see
   * exactly the same configuration.
   */
  readonly env: Record<string, string>;
  /** Node `i` (from 0) prefers port `basePort + i` when it is free (default: any free port). */
  readonly basePort?: number;
  /** Receives each line a node prints, with its name; silent when absent. */
  readonly echo?: (name: string, line: string) => void;
  /** Per-node start-up limit (ms, default 20 s). */
  readonly timeoutMs?: number;
  /** Stops waiting when aborted (the demo is being interrupted). */
  readonly signal?: AbortSignal;
}

/** Variables the sample reads (its `sample.config.ts`); a node gets only those it is given. */
const SAMPLE_VARIABLES = /^(PORT|HTTP_ADAPTER|SESSION_.*|REDIS_.*|DATABASE_URL|TRUST_PROXY)$/;

/** GET /health with a short timeout; resolves with the status code or the error's code. */
function health(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = get(`${url}/health`, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** Starts one node and waits for GET /health to answer 200; a port lost to a race is replaced. */
async function startNode(index: number, options: StartSampleNodesOptions): Promise<SampleNode> {
  const name = `node-${index + 1}`;
  const base: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!SAMPLE_VARIABLES.test(key)) base[key] = value;

  for (let attempt = 1; ; attempt++) {
    const port = await freePort(attempt === 1 && options.basePort !== undefined ? options.basePort + index : undefined);
    const url = `http://127.0.0.1:${port}`;
    const child = startChild(name, process.execPath, [options.entry], {
      env: { ...base, ...options.env, PORT: String(port) },
      echo: options.echo && ((line) => options.echo!(name, line)),
      exitWithParent: true,
    });
    try {
      await pollUntil(
        async (note) => {
          if (!child.running) {
            const exit = await child.exited;
            throw new Error(`${name} exited during start-up (code ${exit.code}, signal ${exit.signal}).\n${child.output()}`);
          }
          const status = await health(url);
          note(`GET /health: ${status}`);
          return status === '200';
        },
        { timeoutMs: options.timeoutMs ?? 20_000, what: `${name} on port ${port} to answer GET /health`, signal: options.signal },
      );
      return { name, port, url, process: child };
    } catch (error) {
      await child.stop();
      if (attempt < 3 && /EADDRINUSE/.test(child.output())) continue;
      throw error;
    }
  }
}

/**
 * Starts `count` sample nodes (`node <entry>`, each on its own port of 127.0.0.1 with the same
 * `env`) in parallel, and resolves once every one answers GET /health with 200. Each node exits
 * by itself if this process dies (see `exitWithParent`).
 *
 * @throws When a node exits or stays unhealthy during start-up; the nodes already started are
 *   stopped first, and the message quotes the failing node's output.
 *
 * @example
 * const nodes = await startSampleNodes({ entry: 'dist/sample/main.js', env: { SESSION_STORE: 'redis', REDIS_URL, SESSION_SECRET } });
 */
export async function startSampleNodes(options: StartSampleNodesOptions): Promise<SampleNode[]> {
  const count = options.count ?? 3;
  const started = await Promise.allSettled(Array.from({ length: count }, (_, i) => startNode(i, options)));
  const failure = started.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await Promise.all(started.map((result) => (result.status === 'fulfilled' ? result.value.process.stop() : undefined)));
    throw failure.reason;
  }
  return started.map((result) => (result as PromiseFulfilledResult<SampleNode>).value);
}
