/**
 * `npm run demo:cluster`: three sample nodes on one Redis behind a round-robin proxy, to see a
 * session survive being served by every node in turn, and the loss of a node.
 *
 *   npm run demo:cluster                    # prints curl commands, runs until Ctrl+C
 *   npm run demo:cluster -- --walkthrough   # scripted tour, exits 0 when every check passed
 *
 * Environment: REDIS_URL (use this Redis instead of starting a throwaway redis-server),
 * DEMO_PORT (the proxy's port, default 8080), DEMO_WALKTHROUGH=1 (same as --walkthrough),
 * DEMO_VERBOSE=1 or --verbose (echo the nodes' logs, prefixed with their names).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSampleNodes, type SampleNode } from './cluster-demo/nodes.js';
import { freePort, killAllChildrenNow } from './cluster-demo/processes.js';
import { startThrowawayRedis } from './cluster-demo/redis.js';
import { SERVED_BY_HEADER, startRoundRobinProxy, type RoundRobinProxy } from './cluster-demo/round-robin-proxy.js';
import { runWalkthrough } from './cluster-demo/walkthrough.js';

const walkthrough = process.argv.includes('--walkthrough') || process.env.DEMO_WALKTHROUGH === '1';
const verbose = process.argv.includes('--verbose') || process.env.DEMO_VERBOSE === '1';
const DEFAULT_PROXY_PORT = 8080;
const FIRST_NODE_PORT = 3101;

const log = (line = ''): void => console.log(line);

/** Clean-up steps, run once in reverse order; a step added after the run starts runs at once. */
class Teardown {
  private readonly steps: (() => Promise<unknown>)[] = [];
  private running: Promise<void> | undefined;

  add(step: () => Promise<unknown>): void {
    if (this.running) void step().catch(() => undefined);
    else this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch((error: unknown) => log(`clean-up: ${String(error)}`));
    })();
    return this.running;
  }
}

/** The proxy's port: DEMO_PORT exactly when set; otherwise 8080, or a free port if 8080 is taken. */
async function proxyPort(): Promise<number> {
  if (process.env.DEMO_PORT) {
    const port = Number(process.env.DEMO_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`DEMO_PORT must be a port number, got "${process.env.DEMO_PORT}".`);
    return port;
  }
  const port = await freePort(DEFAULT_PROXY_PORT);
  if (port !== DEFAULT_PROXY_PORT) log(`Port ${DEFAULT_PROXY_PORT} is taken: the proxy uses ${port} instead (set DEMO_PORT to choose).`);
  return port;
}

function printCurlTour(proxy: RoundRobinProxy, nodes: readonly SampleNode[], jar: string): void {
  const curl = 'curl -si -b "$JAR" -c "$JAR"';
  const json = `-H 'Content-Type: application/json'`;
  const victim = nodes[1];
  log(`
Try it from another shell; paste the JAR line first (the cookie jar keeps your session between commands):

  JAR=${jar}
  ${curl} ${json} -d '{"username":"alice","password":"demo"}' ${proxy.url}/auth/login
  ${curl} ${proxy.url}/profile      # repeat: ${SERVED_BY_HEADER} changes, you stay signed in
  ${curl} -X PUT ${json} -d '{"value":"dark"}' ${proxy.url}/prefs/theme
  ${curl} ${proxy.url}/session
  kill -9 ${victim.process.pid}      # ${victim.name} dies without a goodbye
  ${curl} ${proxy.url}/session      # repeat: still signed in, fields intact, served by the others

Press Ctrl+C to stop everything the demo started.`);
}

async function main(): Promise<void> {
  const teardown = new Teardown();
  const interrupt = new AbortController();
  let signals = 0;
  let started = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      // A second Ctrl+C: the user does not want to wait for a graceful stop.
      killAllChildrenNow();
      return;
    }
    log(`\n${signal}: stopping…`);
    // Ctrl+C is the documented way to end the interactive demo, so only an interrupted
    // walkthrough (or start-up) reports failure.
    if (walkthrough || !started) process.exitCode = 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1);
    interrupt.abort();
  };
  // SIGHUP too: a closed terminal would otherwise end the demo without its clean-up.
  const signalNames: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const name of signalNames) process.on(name, onSignal);
  // If the demo ends without its clean-up (an uncaught exception), still leave no process behind.
  process.on('exit', killAllChildrenNow);

  try {
    const echo = verbose ? (name: string, line: string) => log(`[${name}] ${line}`) : undefined;

    let redisUrl = process.env.REDIS_URL;
    if (redisUrl) {
      log(`Using the Redis at ${redisUrl} (REDIS_URL); sessions go under the key prefix "cluster-demo:".`);
    } else {
      const redis = await startThrowawayRedis({ signal: interrupt.signal });
      teardown.add(() => redis.stop());
      redisUrl = redis.url;
      log(`Started a throwaway redis-server on ${redis.url} (persists nothing, deleted on exit).`);
    }

    const nodes = await startSampleNodes({
      count: 3,
      entry: fileURLToPath(new URL('./main.js', import.meta.url)),
      basePort: FIRST_NODE_PORT,
      env: {
        SESSION_STORE: 'redis',
        REDIS_URL: redisUrl,
        // Own prefix: on a shared Redis (REDIS_URL) the demo's keys stay apart from other sessions.
        REDIS_PREFIX: 'cluster-demo:',
        // One secret for all nodes, as in any real deployment, but new per run: cookies of an
        // earlier run are worthless.
        SESSION_SECRET: randomBytes(32).toString('base64url'),
        // The nodes run on the platform the demo was asked for (HTTP_ADAPTER=fastify), else Express.
        ...(process.env.HTTP_ADAPTER && { HTTP_ADAPTER: process.env.HTTP_ADAPTER }),
      },
      echo,
      signal: interrupt.signal,
    });
    teardown.add(() => Promise.all(nodes.map((node) => node.process.stop())));
    for (const node of nodes) {
      log(`Started ${node.name} on ${node.url} (pid ${node.process.pid}).`);
      // Tell the user when a node dies while the demo runs (e.g. after their `kill -9`).
      void node.process.exited.then((exit) => {
        if (!walkthrough && started && !interrupt.signal.aborted)
          log(`\n${node.name} exited (code ${exit.code}, signal ${exit.signal}); the proxy skips it from now on.`);
      });
    }

    const proxy = await startRoundRobinProxy(
      nodes.map((node) => ({ name: node.name, url: node.url })),
      {
        port: await proxyPort(),
        onFailover: (node, error) => log(`   (proxy: ${node.name} failed with ${error.code}; the request goes to the next node)`),
      },
    );
    teardown.add(() => proxy.close());
    log(`Proxy on ${proxy.url}: round-robin over ${nodes.map((n) => n.name).join(', ')}, naming the node in ${SERVED_BY_HEADER}.`);
    started = true;
    if (interrupt.signal.aborted) return;

    if (walkthrough) {
      const ok = await runWalkthrough({ proxyUrl: proxy.url, nodes, print: log, signal: interrupt.signal });
      if (!interrupt.signal.aborted) process.exitCode = ok ? 0 : 1;
    } else {
      const jarDir = await mkdtemp(join(tmpdir(), 'nss-cluster-demo-'));
      teardown.add(() => rm(jarDir, { recursive: true, force: true }));
      printCurlTour(proxy, nodes, join(jarDir, 'cookies.txt'));
      await new Promise<void>((resolve) => interrupt.signal.addEventListener('abort', () => resolve(), { once: true }));
    }
  } catch (error) {
    if (!interrupt.signal.aborted) {
      log(`\nThe cluster demo failed: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    }
  } finally {
    await teardown.run();
    log('Stopped everything the demo started.');
    for (const name of signalNames) process.off(name, onSignal);
  }
}

await main();
