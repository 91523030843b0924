/**
 * Everything that depends on the HTTP platform lives here: reading the request's cookies and
 * protocol, adding response headers, and holding the response back until the session is
 * committed. It works on Node's own request/response objects, which Express hands to
 * middleware as they are (and Fastify exposes as `request.raw` / `reply.raw`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ExecutionContext } from '@nestjs/common';
import type { SessionObject } from './session.state.js';

/** A request as the pipeline sees it. `secure` is Express's trust-proxy-aware protocol check. */
export interface SessionRequest extends IncomingMessage {
  session?: SessionObject;
  secure?: boolean;
}

export function cookieHeaderOf(req: SessionRequest): string | undefined {
  return req.headers.cookie;
}

/** HTTPS as the application sees it: Express's `req.secure` honours `trust proxy`. */
export function isSecureRequest(req: SessionRequest): boolean {
  if (typeof req.secure === 'boolean') return req.secure;
  return Boolean((req.socket as TLSSocket | undefined)?.encrypted);
}

/** Adds a `Set-Cookie` value without dropping the ones the application already set. */
export function appendSetCookie(res: ServerResponse, value: string): void {
  const existing = res.getHeader('Set-Cookie');
  const values = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('Set-Cookie', [...values, value]);
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
    hold('writeHead', args);
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

/** The session of the request an execution context handles (Express, or Fastify's raw request). */
export function sessionOf(ctx: ExecutionContext): SessionObject | undefined {
  const req = ctx.switchToHttp().getRequest<SessionRequest & { raw?: SessionRequest }>();
  return req.session ?? req.raw?.session;
}
