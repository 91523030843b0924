/**
 * Everything that depends on the HTTP platform lives here: reading the request's cookies and
 * protocol, adding response headers, and holding the response back until the session is
 * committed. It works on Node's own request/response objects, which both platforms hand to
 * Nest middleware: Express as they are (its `req`/`res` extend them), Fastify through
 * `@fastify/middie` as `request.raw` / `reply.raw`, on which middie copies `protocol`, `ip` and
 * `hostname` from the Fastify request.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ExecutionContext } from '@nestjs/common';
import { SessionMessages } from '../session.errors.js';
import type { SessionObject } from './session.state.js';

/*
 * `req.session` on each platform's own request type, once the package is imported anywhere in
 * the program: Express's `Request` through the global `Express` namespace its types merge from
 * (as express-session does), Fastify's `FastifyRequest` by module augmentation (as
 * @fastify/session does). Neither needs the other platform's types to be installed.
 */
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** This request's session (see `@Session()`); made on first read. */
      session: SessionObject;
    }
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's session (see `@Session()`); made on first read. */
    session: SessionObject;
  }
}

/**
 * A request as the pipeline sees it. `secure` is Express's trust-proxy-aware protocol check;
 * `protocol` is Fastify's (copied onto the raw request by middie); `raw` is the Node request
 * behind a Fastify request, as guards and decorators receive it.
 */
export interface SessionRequest extends IncomingMessage {
  session?: SessionObject;
  secure?: boolean;
  protocol?: string;
  raw?: SessionRequest;
}

export function cookieHeaderOf(req: SessionRequest): string | undefined {
  return req.headers.cookie;
}

/**
 * HTTPS as the application sees it, behind a proxy only when the application trusts it:
 * Express's `req.secure` honours `trust proxy`, Fastify's `protocol` its `trustProxy`.
 */
export function isSecureRequest(req: SessionRequest): boolean {
  if (typeof req.secure === 'boolean') return req.secure;
  if (typeof req.protocol === 'string') return req.protocol === 'https';
  return Boolean((req.socket as TLSSocket | undefined)?.encrypted);
}

/** Adds `Set-Cookie` values without dropping the ones the application already set. */
export function appendSetCookie(res: ServerResponse, value: string | readonly string[]): void {
  const existing = res.getHeader('Set-Cookie');
  const values = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('Set-Cookie', values.concat(value));
}

/**
 * Moves the headers a held `writeHead(status, [message], headers)` carries onto the response,
 * and returns the call without them. Fastify sends all its headers this way; left in the call,
 * they would override the session's own when it is replayed (Node lets `writeHead`'s headers
 * win over `setHeader`'s), dropping its `Set-Cookie` and `Cache-Control: no-store`. Moved first,
 * they are the application's headers that the commit then adds to, as on Express.
 */
function foldHeadersOf(res: ServerResponse, args: unknown[]): unknown[] {
  const last = args[args.length - 1];
  if (args.length < 2 || typeof last !== 'object' || last === null) return args;
  const entries: Array<[string, unknown]> = Array.isArray(last)
    ? // A raw header list: name, value, name, value…
      Array.from({ length: Math.floor(last.length / 2) }, (_, i) => [String(last[2 * i]), last[2 * i + 1]])
    : Object.entries(last as OutgoingHttpHeaders);
  for (const [name, value] of entries) {
    if (value === undefined) continue;
    if (name.toLowerCase() === 'set-cookie') appendSetCookie(res, Array.isArray(value) ? value.map(String) : String(value));
    else res.setHeader(name, value as number | string | readonly string[]);
  }
  return args.slice(0, -1);
}

export interface ResponseHooks {
  /**
   * True when `beforeHeaders` would do nothing now (no write due, no credential to hand out):
   * the response then leaves at once, with no hold.
   */
  idle(): boolean;
  /**
   * Runs once, before the response's first byte: commit the session and add its credential
   * here. The response waits for it, however it is written (`end`, a streamed `write`, or an
   * explicit `writeHead`).
   */
  beforeHeaders(): Promise<void>;
  /** Runs when a response whose headers left before its end (a streamed body) ends. */
  beforeEnd(): Promise<void>;
  /** A failed `beforeHeaders`: the status and JSON body to answer with instead. */
  onError(error: unknown): { status: number; body: object };
}

type ResponseMethod = 'writeHead' | 'write' | 'end';
type AnyMethod = (...args: unknown[]) => unknown;

/**
 * Holds the response until `beforeHeaders` resolves, so that the commit is acknowledged before
 * the client sees anything (read-your-writes: its next request, on any node, sees the write),
 * and so that a credential made asynchronously (a sealed session, a JWT) can still go in the
 * headers. Calls made meanwhile (`writeHead`, `write`, `end`) are replayed in order; a held
 * `write` returns false and `drain` follows the release, so a piped stream waits instead of
 * filling memory.
 */
export function hookResponse(res: ServerResponse, hooks: ResponseHooks): void {
  const original: Record<ResponseMethod, AnyMethod> = {
    writeHead: res.writeHead as AnyMethod,
    write: res.write as AnyMethod,
    end: res.end as AnyMethod,
  };
  const held: Array<{ method: ResponseMethod; args: unknown[] }> = [];
  // A session first read after the headers left (a streamed body) can only commit at the end.
  let phase: 'open' | 'holding' | 'released' | 'failed' = res.headersSent ? 'released' : 'open';
  let heldWrite = false;
  let ended = false;

  const call = (method: ResponseMethod, args: unknown[]): unknown => original[method].apply(res, args);

  const release = (): void => {
    phase = 'released';
    for (const { method, args } of held.splice(0)) {
      if (method === 'end') ended = true;
      call(method, args);
    }
    if (heldWrite && !ended) res.emit('drain');
  };

  const fail = (error: unknown): void => {
    phase = 'failed';
    held.length = 0;
    const { status, body } = hooks.onError(error);
    const payload = JSON.stringify(body);
    for (const name of res.getHeaderNames()) if (name !== 'set-cookie') res.removeHeader(name);
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(payload));
    res.setHeader('Cache-Control', 'no-store');
    call('end', [payload]);
  };

  const hold = (method: ResponseMethod, args: unknown[]): void => {
    held.push({ method, args });
    if (phase !== 'open') return;
    phase = 'holding';
    hooks.beforeHeaders().then(release, fail);
  };

  /** Nothing to wait for: the response goes out as it is, and only a later change waits for its end. */
  const passIfIdle = (): boolean => {
    if (phase === 'open' && hooks.idle()) phase = 'released';
    return phase === 'released';
  };

  res.writeHead = function (...args: unknown[]) {
    if (passIfIdle()) return call('writeHead', args);
    // Failed: only the error answer's own headers (from Node's end()) go out, once.
    if (phase === 'failed') return res.headersSent ? res : call('writeHead', args);
    hold('writeHead', foldHeadersOf(res, args));
    return res;
  } as typeof res.writeHead;

  res.write = function (...args: unknown[]) {
    if (passIfIdle()) return call('write', args);
    // After a failure the error answer is already sent: the rest of a streamed body is dropped.
    if (phase === 'failed') return true;
    hold('write', args);
    heldWrite = true;
    return false;
  } as typeof res.write;

  res.end = function (...args: unknown[]) {
    if (phase === 'failed') return res;
    if (phase === 'open' && hooks.idle()) {
      phase = 'released';
      ended = true;
      return call('end', args);
    }
    if (phase !== 'released') {
      hold('end', args);
      return res;
    }
    if (ended) return call('end', args);
    ended = true;
    // The headers left with the first chunk of a streamed body: commit what changed since.
    hooks.beforeEnd().then(
      () => call('end', args),
      (error: unknown) => res.destroy(error instanceof Error ? error : undefined),
    );
    return res;
  } as typeof res.end;
}

/**
 * Exposes the session as `req.session`. When the store could not be read, reading it throws
 * the given error: routes that never look at the session keep working through an outage.
 */
export function exposeSession(req: SessionRequest, session: () => SessionObject): void {
  Object.defineProperty(req, 'session', { configurable: true, enumerable: true, get: session });
}

/** What this file needs of Nest's HTTP adapter (`HttpAdapterHost.httpAdapter`). */
export interface PlatformAdapter {
  getType(): string;
  getInstance(): unknown;
}

/** The part of a Fastify instance that adds a property to its requests. */
interface FastifyRequestDecorators {
  hasRequestDecorator(name: string): boolean;
  decorateRequest(name: string, decorator: { getter(this: { raw: SessionRequest }): SessionObject | undefined }): unknown;
}

/**
 * On Fastify, gives Fastify's own request a `session` too. Nest middleware runs on the raw Node
 * request, so that is where the pipeline puts the session; Fastify code reads
 * `request.session`, as Express code reads `req.session`. Returns a warning to log when the
 * name is already taken (another session plugin), else undefined.
 */
export function exposeSessionOnPlatform(adapter: PlatformAdapter | undefined): string | undefined {
  if (adapter?.getType() !== 'fastify') return undefined;
  const fastify = adapter.getInstance() as FastifyRequestDecorators;
  if (fastify.hasRequestDecorator('session')) return SessionMessages.fastifySessionTaken();
  fastify.decorateRequest('session', {
    getter() {
      return this.raw.session;
    },
  });
  return undefined;
}

/** The session of the request an execution context handles (Express, or Fastify's raw request). */
export function sessionOf(ctx: ExecutionContext): SessionObject | undefined {
  const req = ctx.switchToHttp().getRequest<SessionRequest>();
  return req.session ?? req.raw?.session;
}
