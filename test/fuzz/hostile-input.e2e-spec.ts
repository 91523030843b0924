import 'reflect-metadata';
import { afterAll, describe, expect, it } from '@jest/globals';
import { appendFileSync } from 'node:fs';
import type { Server } from 'node:http';
import request from 'supertest';
import { startSampleNode } from '../fixtures/redis-apps.js';
import type { Platform } from '../fixtures/platforms.js';
import { startRedisServer } from '../support/redis-topology.js';
import type { RedisServer } from '../support/redis-topology.js';
import type { CredentialFormat } from './forgery.js';
import { Oracle } from './oracle.js';
import type { StoreKind, Transport } from './oracle.js';
import { hash32, Rng, seedFromEnv } from './prng.js';
import { watchProcess } from './process-watch.js';
import { describe as describeRequest, FuzzReport } from './report.js';
import type { Answer, FailureClass, SentRequest } from './report.js';
import { Traffic } from './traffic.js';

/**
 * The hostile-input fuzz test: thousands of hostile requests against the sample application's HTTP
 * contract (SPEC §4), in process, on the memory, Redis and cookie stores, with `transport:
 * 'both'` (and JWT tokens where a server-side store makes them possible) and with the default
 * cookie transport. Forged and mangled cookies and tokens, naughty user names, keys and values,
 * bad JSON, deep nesting, bodies over the limit, polluting keys, mixed in with real users who
 * sign in and use their credentials (the material forgeries are built from).
 *
 * Whatever the input: no status of 500 or more (SPEC §3.6, §3.13), no 503 from a store that is
 * up, no crash (every request answered, GET /health still 200, no uncaught error in the
 * process), no forged sign-in (every signed-in answer traces back to a live credential the
 * server issued to that very user), no user's listing or revocation reaching sessions that are
 * not that user's (§3.12), no credential on a channel the request did not use (§2 `'both'`), no
 * polluted prototype.
 *
 * Seeded: `FUZZ_SEED=<n>` replays a run (the seed is in every summary); `FUZZ_REQUESTS=<n>` sets
 * the budget of each configuration; `FUZZ_TRACE=<file>` appends every request and its status to
 * a file, to follow a failure back through the requests that led to it. Sequential requests, so
 * a seed replays the same inputs.
 */

const SEED = seedFromEnv(process.env, 20_260_416);
const BUDGET = Number(process.env.FUZZ_REQUESTS) || undefined;
const TRACE = process.env.FUZZ_TRACE;
/** A hang is a failure to answer, not something to wait out. */
const ANSWER_TIMEOUT_MS = 10_000;
const RUN_TIMEOUT_MS = 300_000;

interface FuzzConfig {
  name: string;
  store: StoreKind;
  transport: Transport;
  platform: Platform;
  env: Record<string, string>;
  cookieFormat: CredentialFormat;
  headerFormat: CredentialFormat;
  requests: number;
}

const BOTH_WITH_JWT = { SESSION_TRANSPORT: 'both', SESSION_TOKEN_FORMAT: 'jwt' };

/**
 * JWT tokens need a server-side store, so the cookie store runs `'both'` with its sealed
 * sessions on both channels. About 9,500 requests in all, 35–50 s on two cores.
 */
const CONFIGS: FuzzConfig[] = [
  {
    name: 'memory store, transport both, JWT tokens',
    store: 'memory',
    transport: 'both',
    platform: 'express',
    env: BOTH_WITH_JWT,
    cookieFormat: 'signed-id',
    headerFormat: 'jwt',
    requests: 2500,
  },
  {
    name: 'memory store, cookie transport (the default)',
    store: 'memory',
    transport: 'cookie',
    platform: 'express',
    env: {},
    cookieFormat: 'signed-id',
    headerFormat: 'signed-id',
    requests: 1500,
  },
  {
    name: 'Redis store, transport both, JWT tokens',
    store: 'redis',
    transport: 'both',
    platform: 'express',
    env: { SESSION_STORE: 'redis', ...BOTH_WITH_JWT },
    cookieFormat: 'signed-id',
    headerFormat: 'jwt',
    requests: 2500,
  },
  {
    name: 'cookie store, transport both (sealed sessions)',
    store: 'cookie',
    transport: 'both',
    platform: 'express',
    env: { SESSION_STORE: 'cookie', SESSION_TRANSPORT: 'both' },
    cookieFormat: 'sealed',
    headerFormat: 'sealed',
    requests: 2000,
  },
  {
    name: 'memory store on Fastify, transport both, JWT tokens',
    store: 'memory',
    transport: 'both',
    platform: 'fastify',
    env: BOTH_WITH_JWT,
    cookieFormat: 'signed-id',
    headerFormat: 'jwt',
    requests: 1000,
  },
];

const FAILURE_CLASSES: FailureClass[] = [
  'status >= 500',
  'status 503',
  'no answer',
  'forged sign-in',
  'cross-user effect',
  'credential on the wrong channel',
];

/** Sends one request as written (raw body, headers as given) and returns whatever came back. */
async function send(server: Server, req: SentRequest): Promise<Answer> {
  const method = req.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'patch' | 'head' | 'options';
  let test = request(server)[method](req.path).timeout(ANSWER_TIMEOUT_MS);
  for (const [name, value] of Object.entries(req.headers)) test = test.set(name, value);
  // The body's text, parsed here: a response that is not JSON is data, not a client error.
  test = test.buffer(true).parse((res, done) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    res.on('end', () => done(null, text));
  });
  try {
    const res = await (req.body === undefined ? test : test.send(req.body));
    return { status: res.status, headers: res.headers as Answer['headers'], body: parseJson(res.body as string) };
  } catch (error) {
    const { status, response } = error as { status?: number; response?: { status: number; headers: Answer['headers']; body: unknown } };
    if (response && status) return { status: response.status, headers: response.headers, body: parseJson(response.body as string) };
    return { status: 0, headers: {}, body: undefined, error: String((error as Error).message ?? error) };
  }
}

function parseJson(text: string | undefined): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return text;
  }
}

/** One line of `FUZZ_TRACE`: the request (long values kept), its status, the credentials it was handed, the body. */
function traceLine(at: string, req: SentRequest, answer: Answer): string {
  const credentials = `${JSON.stringify(answer.headers['set-cookie'] ?? '')} ${String(answer.headers['x-session-token'] ?? '')}`;
  return `${at} ${req.kind}: ${describeRequest(req, 600)} -> ${answer.error ?? answer.status} ${credentials} ${JSON.stringify(answer.body)?.slice(0, 200)}\n`;
}

let redis: RedisServer | undefined;

async function envFor(config: FuzzConfig): Promise<Record<string, string>> {
  if (config.store !== 'redis') return config.env;
  // A throwaway server, never the shared 6379; started on first use, stopped in afterAll.
  redis ??= await startRedisServer();
  return { ...config.env, REDIS_URL: redis.url, REDIS_PREFIX: `fuzz-${hash32(config.name)}:` };
}

/** One configuration's run: its own app, its own stream of requests (from the seed and its name), one report. */
async function fuzz(config: FuzzConfig): Promise<{ report: FuzzReport; elapsedMs: number; health: Answer; process: string[] }> {
  const seed = hash32(`${SEED}:${config.name}`);
  const report = new FuzzReport(config.name, SEED);
  const node = await startSampleNode(await envFor(config), config.platform);
  const watch = watchProcess();
  const started = Date.now();
  try {
    // One listening server for the whole run: supertest then reuses its address rather than
    // listening anew for every request.
    await node.app.listen(0, '127.0.0.1');
    const server = node.app.getHttpServer() as Server;
    const oracle = new Oracle(config.store, config.transport, config.cookieFormat === config.headerFormat, report);
    const traffic = new Traffic(new Rng(seed), oracle, config);
    for (let i = 0; i < (BUDGET ?? config.requests); i++) {
      const [req, client] = await traffic.next();
      const answer = await send(server, req);
      oracle.judge(req, answer);
      traffic.update(client, req, answer);
      if (TRACE) appendFileSync(TRACE, traceLine(`${config.name} #${i}`, req, answer));
    }
    const health = await send(server, { kind: 'health', method: 'GET', path: '/health', headers: {} });
    return { report, elapsedMs: Date.now() - started, health, process: watch.problems() };
  } finally {
    watch.stop();
    await node.close();
  }
}

describe('the sample application under hostile input (seeded fuzz)', () => {
  afterAll(async () => {
    await redis?.stop();
  });

  it.each(CONFIGS)(
    '$name: no 5xx, no crash, no forged sign-in, no cross-user effect, no credential on the wrong channel, no prototype pollution',
    async (config) => {
      const { report, elapsedMs, health, process: processProblems } = await fuzz(config);
      const summary = report.format(elapsedMs);
      // Printed every time: the run's size and time, and anything noted, are worth seeing when it passes too.
      console.log(summary);

      const failures = Object.fromEntries(FAILURE_CLASSES.map((c) => [c, report.failuresOf(c)]));
      const failed = Object.values(failures).some((n) => n > 0) || processProblems.length > 0 || health.status !== 200;
      const verdict = failed
        ? [`${JSON.stringify(failures)}; GET /health at the end: ${health.error ?? health.status}`, ...processProblems, summary].join('\n')
        : 'no failures';
      expect(verdict).toBe('no failures');
    },
    RUN_TIMEOUT_MS,
  );
});
