/**
 * The scripted tour of `npm run demo:cluster -- --walkthrough`: one user signs in through the
 * proxy, is served by every node in turn, writes a few fields, loses a node to SIGKILL, and is
 * still signed in with every field intact. Each step is printed, and each claim is checked.
 */
import { request } from 'node:http';
import type { SampleNode } from './nodes.js';
import { SERVED_BY_HEADER } from './round-robin-proxy.js';

/** Options of {@link runWalkthrough}. */
export interface WalkthroughOptions {
  /** The round-robin proxy, e.g. `http://127.0.0.1:8080`. */
  readonly proxyUrl: string;
  /** The nodes behind it; the second one is killed half-way. */
  readonly nodes: readonly SampleNode[];
  /** Where the tour is printed (default: console.log). */
  readonly print?: (line: string) => void;
  /** Ends the tour before its next request (the demo is being interrupted). */
  readonly signal?: AbortSignal;
}

/** A response as the tour needs it. */
interface Reply {
  readonly status: number;
  readonly servedBy: string;
  readonly body: unknown;
}

/** A client with a one-cookie-per-name jar, as a browser (or `curl -b jar -c jar`) would be. */
class Browser {
  private readonly jar = new Map<string, string>();

  constructor(private readonly baseUrl: string) {}

  send(method: string, path: string, body?: unknown): Promise<Reply> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
    return new Promise((resolve, reject) => {
      // agent: false, a connection per request: the tour must not depend on a pooled socket.
      const req = request(`${this.baseUrl}${path}`, {
        method,
        agent: false,
        timeout: 10_000,
        headers: {
          ...(cookie && { Cookie: cookie }),
          ...(payload && { 'Content-Type': 'application/json', 'Content-Length': payload.length }),
        },
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.on('response', (res) => {
        for (const line of res.headers['set-cookie'] ?? []) {
          const [pair] = line.split(';');
          const name = pair.slice(0, pair.indexOf('='));
          const value = pair.slice(pair.indexOf('=') + 1);
          // An empty value is how a server clears a cookie (on logout).
          if (value === '') this.jar.delete(name);
          else this.jar.set(name, value);
        }
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          resolve({ status: res.statusCode ?? 0, servedBy: String(res.headers[SERVED_BY_HEADER.toLowerCase()] ?? '-'), body: parsed });
        });
        res.on('error', reject);
      });
      req.end(payload);
    });
  }

  cookie(name: string): string | undefined {
    return this.jar.get(name);
  }
}

/**
 * Runs the tour against a running proxy and its nodes, printing each request, which node served
 * it, and each check. Kills `nodes[1]` with SIGKILL half-way (it stays dead).
 *
 * @returns true when every check passed. Request failures count as failed checks, not exceptions.
 */
export async function runWalkthrough(options: WalkthroughOptions): Promise<boolean> {
  const print = options.print ?? ((line: string) => console.log(line));
  const browser = new Browser(options.proxyUrl);
  let passed = 0;
  let failed = 0;
  let stepNumber = 0;

  const step = (title: string): void => print(`\n${++stepNumber}. ${title}`);
  const check = (ok: boolean, claim: string, detail = ''): void => {
    if (ok) passed++;
    else failed++;
    print(`   ${ok ? '✓' : '✗'} ${claim}${!ok && detail ? ` (${detail})` : ''}`);
  };
  const call = async (method: string, path: string, body?: unknown): Promise<Reply> => {
    if (options.signal?.aborted) throw new Error('interrupted');
    const reply = await browser.send(method, path, body);
    const sent = body === undefined ? '' : ` ${JSON.stringify(body)}`;
    const json = reply.body === undefined ? '' : JSON.stringify(reply.body);
    const got = json.length > 90 ? ` ${json.slice(0, 89)}…` : json && ` ${json}`;
    print(`   ${`${method} ${path}${sent}`.padEnd(36)} → ${reply.status}${got}`.padEnd(86) + `  [${reply.servedBy}]`);
    return reply;
  };
  const readProfile = async (times: number): Promise<Reply[]> => {
    const replies: Reply[] = [];
    for (let i = 0; i < times; i++) replies.push(await call('GET', '/profile'));
    return replies;
  };
  const isAlice = (reply: Reply): boolean => reply.status === 200 && (reply.body as { userId?: string })?.userId === 'alice';
  const distinct = (replies: Reply[]): string[] => [...new Set(replies.map((r) => r.servedBy))].sort();

  const victim = options.nodes[1];
  const expectedData = { userId: 'alice', 'pref:theme': 'dark', 'pref:lang': 'en', visits: 2 };
  const sessionMatches = (reply: Reply): boolean => {
    const data = (reply.body as { data?: Record<string, unknown> })?.data ?? {};
    return reply.status === 200 && Object.entries(expectedData).every(([key, value]) => data[key] === value);
  };

  try {
    step('Sign in as alice through the proxy');
    const login = await call('POST', '/auth/login', { username: 'alice', password: 'demo' });
    check(
      login.status === 200 && browser.cookie('sid') !== undefined,
      'signed in, the browser holds a session cookie (sid)',
      `status ${login.status}`,
    );

    step('Read /profile six times: the proxy sends each request to the next node');
    const before = await readProfile(6);
    check(before.every(isAlice), 'every read answered 200 for alice, whichever node served it');
    const servedBefore = distinct(before);
    check(servedBefore.length === options.nodes.length, `served by ${servedBefore.length} different nodes: ${servedBefore.join(', ')}`);

    step('Write some session fields, each through whichever node is next');
    await call('PUT', '/prefs/theme', { value: 'dark' });
    await call('PUT', '/prefs/lang', { value: 'en' });
    await call('POST', '/visits');
    await call('POST', '/visits');
    const written = await call('GET', '/session');
    check(sessionMatches(written), 'the session holds theme=dark, lang=en and 2 visits, written on different nodes');

    step(`Kill ${victim.name} with SIGKILL (pid ${victim.process.pid}): no shutdown hook, no goodbye`);
    victim.process.kill('SIGKILL');
    const exit = await victim.process.exited;
    check(exit.signal === 'SIGKILL', `${victim.name} is gone (signal ${exit.signal})`);

    step('Keep reading through the proxy');
    const after = await readProfile(6);
    check(after.every(isAlice), 'still signed in as alice on every read');
    const servedAfter = distinct(after);
    check(
      !servedAfter.includes(victim.name) && servedAfter.length === options.nodes.length - 1,
      `${victim.name} served none; ${servedAfter.join(' and ')} took over`,
      `served by ${servedAfter.join(', ')}`,
    );
    const survived = await call('GET', '/session');
    check(sessionMatches(survived), 'every field survived: theme=dark, lang=en, 2 visits');

    step('Sign out through the proxy');
    const logout = await call('POST', '/auth/logout');
    const denied = await readProfile(2);
    check(logout.status === 204 && denied.every((r) => r.status === 401), 'signed out on every node: /profile answers 401');
  } catch (error) {
    failed++;
    print(`   ✗ the tour stopped: ${error instanceof Error ? error.message : String(error)}`);
  }

  print(failed === 0 ? `\nAll ${passed} checks passed.` : `\n${failed} check(s) failed, ${passed} passed.`);
  return failed === 0;
}
