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

/** The kinds of server (run.js) with no sessions to sign in to. */
const SESSIONLESS = new Set(['baseline', 'noop-middleware']);

/** `name=value` of the first Set-Cookie header. */
const cookieOf = (setCookie) => setCookie[0]?.split(';')[0];

/**
 * Signs in `count` sessions (users `user-<first>` … zero-padded to 6 digits), 16 at a time, and
 * returns their cookies; `fields`: sessions of that many top-level fields (apps.js fillerFields).
 * Servers without sessions (the baseline, the no-op middleware) get made-up cookies of the length
 * of ours (`sid=` + 43-char id + '.' + 43-char signature), so their requests carry the same bytes.
 */
export async function signIn(server, count, first = 0, { fields } = {}) {
  if (SESSIONLESS.has(server.kind)) {
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
          const res = await request(server.port, 'POST', `/login?u=${user}${fields ? `&fields=${fields}` : ''}`, { agent });
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
  // Each request a new user, so every login creates a session of its own (and an index entry).
  login: { method: 'POST', path: '/login', withCookie: false, newUser: true, label: 'login (POST /login?u=<new user>, no cookie)' },
};

/**
 * Drives one server with one workload: `connections` keep-alive connections, each request taking
 * the next cookie round-robin. Either `duration` (s) or `amount` (requests) bounds the run.
 */
export async function drive(server, workload, cookies, { connections, duration, amount }) {
  const { method, path, withCookie, newUser } = WORKLOADS[workload];
  let turn = 0;
  const req = { method, path };
  if (withCookie) req.setupRequest = (r) => ({ ...r, headers: { ...r.headers, cookie: cookies[turn++ % cookies.length] } });
  // Users signIn() never makes (those are digits only), numbered on from the server's last login.
  if (newUser) req.setupRequest = (r) => ({ ...r, path: `${path}?u=L${(server.logins = (server.logins ?? 0) + 1)}` });
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

/**
 * The order of each round's cells: each round starts further along the list, so no cell is always
 * first or always last, and every other round runs backwards, so no cell always follows the same
 * one (a slow patch of a busy machine then hits every cell alike).
 */
export function roundOrders(cells, rounds) {
  const step = Math.max(1, Math.ceil(cells.length / rounds));
  return Array.from({ length: rounds }, (_, round) => {
    const shift = (round * step) % cells.length;
    const rotated = [...cells.slice(shift), ...cells.slice(0, shift)];
    return round % 2 === 1 ? rotated.reverse() : rotated;
  });
}

export const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * One cell's rounds (drive() results) as the tables show them: medians, and the spread of the
 * rounds' req/s ((max − min) ÷ median), how much the machine moved while they ran.
 */
export function summarize(runs) {
  const rps = runs.map((m) => m.rps);
  return {
    rps: median(rps),
    spread: (Math.max(...rps) - Math.min(...rps)) / median(rps),
    p50: median(runs.map((m) => m.p50)),
    p99: median(runs.map((m) => m.p99)),
    bad: runs.reduce((a, m) => a + m.bad, 0),
  };
}
