// Measures what the session pipeline costs on the sample application (memory store), side by
// side in one run: a route without a session, a read-only session request, and a write.
// Rounds are interleaved so that noise from a shared machine hits every case alike.
// Usage: npm run bench   (writes BENCHMARKS.md)
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../dist/sample/app.module.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const app = await NestFactory.create(AppModule.forEnv({ SESSION_SECRET: 'benchmark-secret-0123456789abcdefghij' }), {
  logger: false,
});
await app.listen(0, '127.0.0.1');
const { port } = app.getHttpServer().address();
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(method, path, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: cookie ? { cookie } : {} }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode < 400 ? resolve(res.headers['set-cookie']) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function load(method, path, cookie) {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) await send(method, path, cookie);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return REQUESTS / seconds;
}

const cookie = (await send('POST', '/visits'))[0].split(';')[0];
const cases = [
  ['GET /health (no session)', 'GET', '/health', undefined],
  ['GET /session (load, no write)', 'GET', '/session', cookie],
  ['POST /visits (load + delta commit)', 'POST', '/visits', cookie],
];
const results = cases.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [i, [, method, path, c]] of cases.entries()) results[i].push(await load(method, path, c));
}
await app.close();
agent.destroy();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const baseline = median(results[0]);
const rows = cases.map(([name], i) => {
  const rps = median(results[i]);
  return `| ${name} | ${Math.round(rps)} | ${(rps / baseline).toFixed(2)} |`;
});
const table = [
  '| case | requests/s (median of rounds) | ratio to no-session route |',
  '|---|---|---|',
  ...rows,
].join('\n');
const doc = `# Benchmarks

Produced by \`npm run bench\` (${REQUESTS} requests × ${ROUNDS} interleaved rounds per case,
concurrency ${CONCURRENCY}, keep-alive, in-process sample app on the memory store).

Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB,
Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.

${table}

How to read it: the ratio column compares each case with a route that never touches the
session, measured in the same run; absolute numbers depend on the machine and its load.
`;
writeFileSync(new URL('../BENCHMARKS.md', import.meta.url), doc);
console.log(table);
