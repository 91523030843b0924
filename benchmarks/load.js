// Talking to the servers: a small keep-alive HTTP client for sign-ins and the lost-update
// demonstration, and autocannon for the measured load.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import autocannon from 'autocannon';
import { HOST } from './infra.js';

/** One request, body read to the end (express-session holds the last byte back until it saved). */
export function request(port, method, path, { cookie, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path, agent, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, setCookie: res.headers['set-cookie'] ?? [], body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** `name=value` of the first Set-Cookie header. */
const cookieOf = (setCookie) => setCookie[0]?.split(';')[0];

/**
 * Signs in `count` sessions (users `user-<first>` … zero-padded to 6 digits), 16 at a time, and
 * returns their cookies. The baseline has no sessions: it gets made-up cookies of the length of
 * ours (`sid=` + 43-char id + '.' + 43-char signature), so its requests carry the same bytes.
 */
export async function signIn(server, count, first = 0) {
  if (server.kind === 'baseline') {
    return Array.from({ length: count }, () => `sid=${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`);
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const cookies = Array.from({ length: count });
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < count; i = next++) {
          const user = String(first + i).padStart(6, '0');
          const res = await request(server.port, 'POST', `/login?u=${user}`, { agent });
          const cookie = cookieOf(res.setCookie);
          if (res.status !== 200 || !cookie) throw new Error(`${server.name}: POST /login answered ${res.status} without a cookie: ${res.body}`);
          cookies[i] = cookie;
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return cookies;
}

/** The workloads: what one request of each is. */
export const WORKLOADS = {
  read: { method: 'GET', path: '/read', withCookie: true, label: 'read (GET /read, cookie)' },
  change: { method: 'POST', path: '/change', withCookie: true, label: 'change (POST /change, cookie)' },
  nocred: { method: 'GET', path: '/none', withCookie: false, label: 'no credential (GET /none, no cookie)' },
};

/**
 * Drives one server with one workload: `connections` keep-alive connections, each request taking
 * the next cookie round-robin. Either `duration` (s) or `amount` (requests) bounds the run.
 */
export async function drive(server, workload, cookies, { connections, duration, amount }) {
  const { method, path, withCookie } = WORKLOADS[workload];
  let turn = 0;
  const req = { method, path };
  if (withCookie) req.setupRequest = (r) => ({ ...r, headers: { ...r.headers, cookie: cookies[turn++ % cookies.length] } });
  const result = await autocannon({
    url: `http://${HOST}:${server.port}`,
    connections,
    pipelining: 1,
    ...(amount ? { amount } : { duration }),
    requests: [req],
  });
  const seconds = (result.finish - result.start) / 1000 || result.duration;
  return {
    rps: result.requests.total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    sent: result.requests.sent,
    bad: result.non2xx + result.errors + result.timeouts,
  };
}
