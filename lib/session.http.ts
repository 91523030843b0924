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
  /** Runs once, before the response's first byte: commit the session here. */
  beforeEnd(): Promise<void>;
  /** Runs once, just before the headers are written: add the cookie here. */
  beforeHeaders(): void;
  /** A failed `beforeEnd`: the status and JSON body to answer with instead, if headers are unsent. */
  onError(error: unknown): { status: number; body: object };
}

/**
 * Holds `res.end()` until `beforeEnd` resolves, so the client's next request (on any node) sees
 * the write: read-your-writes. Headers are completed in `writeHead`, which Node calls from the
 * original `end()` (or from the first `write()` of a streamed body).
 */
export function hookResponse(res: ServerResponse, hooks: ResponseHooks): void {
  const writeHead = res.writeHead;
  const end = res.end;
  let headersDone = false;
  let ending = false;

  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!headersDone) {
      headersDone = true;
      hooks.beforeHeaders();
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;

  res.end = function (this: ServerResponse, ...args: unknown[]) {
    if (ending) return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
    ending = true;
    hooks.beforeEnd().then(
      () => (end as (...a: unknown[]) => ServerResponse).apply(res, args),
      (error: unknown) => {
        if (res.headersSent) return res.destroy(error instanceof Error ? error : undefined);
        const { status, body } = hooks.onError(error);
        const payload = JSON.stringify(body);
        for (const name of res.getHeaderNames()) if (name !== 'set-cookie') res.removeHeader(name);
        res.statusCode = status;
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', Buffer.byteLength(payload));
        res.setHeader('Cache-Control', 'no-store');
        (end as (...a: unknown[]) => ServerResponse).call(res, payload);
      },
    );
    return res;
  } as typeof res.end;
}

/**
 * Exposes the session as `req.session`. When the store could not be read, reading it throws
 * the given error: routes that never look at the session keep working through an outage.
 */
export function exposeSession(req: SessionRequest, session: SessionObject | (() => never)): void {
  Object.defineProperty(req, 'session', {
    configurable: true,
    enumerable: true,
    get: typeof session === 'function' ? session : () => session,
  });
}

/** The session of the request an execution context handles (Express, or Fastify's raw request). */
export function sessionOf(ctx: ExecutionContext): SessionObject | undefined {
  const req = ctx.switchToHttp().getRequest<SessionRequest & { raw?: SessionRequest }>();
  return req.session ?? req.raw?.session;
}
