/**
 * A small round-robin reverse proxy for the cluster demo: it shows that any node can answer any
 * request of a session, and that losing a node loses nothing. It is a demonstration tool, not a
 * production load balancer (no TLS, no active health checks, request bodies buffered in memory).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import httpProxy from 'http-proxy';

/** One upstream the proxy can send requests to. */
export interface ProxyTarget {
  /** Shown to clients in the `X-Served-By` response header, e.g. `node-1`. */
  readonly name: string;
  /** Base URL of the node, e.g. `http://127.0.0.1:3101`. */
  readonly url: string;
}

/** Options of {@link createRoundRobinProxy} and {@link startRoundRobinProxy}. */
export interface RoundRobinProxyOptions {
  /**
   * How long a node that refused a connection is left out of the rotation (ms, default 1000).
   * Without it the request after a dead node's turn would always land on the same survivor; with
   * it the survivors share the load evenly, and the node is tried again afterwards (it may be back).
   */
  readonly downForMs?: number;
  /** Largest request body the proxy buffers (bytes, default 1 MiB); bigger ones get 413. */
  readonly maxBodyBytes?: number;
  /** Called when a node fails before answering and the request moves on to the next one. */
  readonly onFailover?: (from: ProxyTarget, error: NodeJS.ErrnoException) => void;
}

/** A listening proxy, as {@link startRoundRobinProxy} returns it. */
export interface RoundRobinProxy {
  readonly server: Server;
  readonly port: number;
  /** `http://127.0.0.1:PORT` (or the host it was started on). */
  readonly url: string;
  /** Stops listening and closes every open connection, keep-alive ones included. Idempotent. */
  close(): Promise<void>;
}

/** The response header naming the node that answered. */
export const SERVED_BY_HEADER = 'X-Served-By';

/**
 * Errors that mean the node never saw the request or died before answering it, so another node
 * may take it. ECONNRESET can also mean a node died *while* handling the request; replaying it
 * is acceptable here because the proxy only retries before the client got a single byte, and the
 * demo's writes are field sets (PUT), which are idempotent.
 */
const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ECONNABORTED']);

/** Reads the whole request body, so it can be replayed to another node if the first one fails. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        resolve(undefined);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    // Part of a response already went out: the only honest signal left is a cut connection.
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', Connection: 'close' });
  res.end(JSON.stringify({ statusCode: status, message }));
}

/**
 * Creates (does not start) an HTTP server that forwards each request to the next of `targets` in
 * turn and adds `X-Served-By: <target name>` to the response. A node that refuses or resets the
 * connection before answering is skipped: the request goes to the next node, so killing a node
 * does not fail requests while at least one node is alive. When none answers, the client gets 502.
 *
 * @param targets The nodes, in rotation order (at least one).
 * @param options See {@link RoundRobinProxyOptions}.
 * @returns A `node:http` server; call `listen()` on it, or use {@link startRoundRobinProxy}.
 *
 * @example
 * const server = createRoundRobinProxy([{ name: 'node-1', url: 'http://127.0.0.1:3101' }]);
 * server.listen(8080);
 */
export function createRoundRobinProxy(targets: readonly ProxyTarget[], options: RoundRobinProxyOptions = {}): Server {
  if (targets.length === 0) throw new Error('createRoundRobinProxy: at least one target is needed.');
  const downForMs = options.downForMs ?? 1_000;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const downUntil = new Map<ProxyTarget, number>();
  let next = 0;

  // No agent: http-proxy then opens a fresh connection per request (Connection: close), so no
  // pooled socket to a killed node is ever reused and a dead node shows up as ECONNREFUSED at once.
  const proxy = httpProxy.createProxyServer({ proxyTimeout: 30_000 });
  // Every proxy.web() call below has its own error callback; this only keeps a stray event from
  // becoming an uncaught exception.
  proxy.on('error', () => undefined);
  // A node that dies in the middle of a response: cut the client's connection rather than leave it
  // waiting for the rest forever.
  proxy.on('proxyRes', (proxyRes, _req, res) => {
    proxyRes.on('error', () => undefined);
    proxyRes.on('close', () => {
      if (!proxyRes.complete) (res as ServerResponse).destroy();
    });
  });

  /**
   * The order to try the nodes in for one request: the next healthy node in the rotation first,
   * then the other healthy ones, then those marked down.
   */
  function rotation(): ProxyTarget[] {
    const now = Date.now();
    const isUp = (target: ProxyTarget): boolean => (downUntil.get(target) ?? 0) <= now;
    const ordered = targets.map((_, i) => targets[(next + i) % targets.length]);
    const up = ordered.filter(isUp);
    // Nodes marked down are still tried last: better a late retry than a 502 while one might be back.
    return [...up, ...ordered.filter((target) => !isUp(target))];
  }

  function attempt(req: IncomingMessage, res: ServerResponse, body: Buffer, queue: ProxyTarget[]): void {
    const target = queue.shift();
    if (target === undefined) {
      sendError(res, 502, 'No node of the cluster answered.');
      return;
    }
    // The rotation continues after the node actually tried, so a dead node's turns are shared by
    // the survivors instead of all going to its neighbour.
    next = (targets.indexOf(target) + 1) % targets.length;
    // Set before proxying: http-proxy copies the node's headers onto `res` and keeps this one.
    res.setHeader(SERVED_BY_HEADER, target.name);
    const replay = new PassThrough();
    replay.end(body);
    proxy.web(req, res, { target: target.url, buffer: replay }, (error) => {
      const err = error as NodeJS.ErrnoException;
      if (!res.headersSent && !res.destroyed && RETRYABLE.has(err.code ?? '')) {
        downUntil.set(target, Date.now() + downForMs);
        options.onFailover?.(target, err);
        attempt(req, res, body, queue);
        return;
      }
      sendError(res, 502, `Node ${target.name} failed: ${err.code ?? err.message}`);
    });
  }

  return createServer((req, res) => {
    readBody(req, maxBodyBytes).then(
      (body) => {
        if (body === undefined) sendError(res, 413, `Request bodies over ${maxBodyBytes} bytes are not proxied.`);
        else attempt(req, res, body, rotation());
      },
      () => res.destroy(),
    );
  });
}

/** Options of {@link startRoundRobinProxy}: where to listen, plus the proxy's own options. */
export interface StartRoundRobinProxyOptions extends RoundRobinProxyOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Interface to bind (default `127.0.0.1`, so the demo is not exposed on the network). */
  readonly host?: string;
}

/**
 * Creates a {@link createRoundRobinProxy} server and starts it listening.
 *
 * @param targets The nodes, in rotation order.
 * @param options Port and host to listen on, and the proxy's options.
 * @returns Once listening: the server, its port and URL, and `close()`. Rejects when the port is
 *   taken (`EADDRINUSE`).
 *
 * @example
 * const proxy = await startRoundRobinProxy(nodes.map((n) => ({ name: n.name, url: n.url })), { port: 8080 });
 * console.log(`curl ${proxy.url}/health`);
 * await proxy.close();
 */
export function startRoundRobinProxy(targets: readonly ProxyTarget[], options: StartRoundRobinProxyOptions = {}): Promise<RoundRobinProxy> {
  const { port = 0, host = '127.0.0.1' } = options;
  const server = createRoundRobinProxy(targets, options);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const bound = (server.address() as AddressInfo).port;
      let closing: Promise<void> | undefined;
      resolve({
        server,
        port: bound,
        url: `http://${host}:${bound}`,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive clients (fetch, supertest) would otherwise hold close() open for seconds.
            server.closeAllConnections();
          })),
      });
    });
  });
}
