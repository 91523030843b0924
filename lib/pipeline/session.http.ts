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
import type { ExecutionContext, NestMiddleware } from '@nestjs/common';
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

/** The response methods the hold stands between the application and Node. */
const RESPONSE_METHODS = ['writeHead', 'write', 'end'] as const;
type ResponseMethod = (typeof RESPONSE_METHODS)[number];
type AnyMethod = (...args: unknown[]) => unknown;
type ResponseMethods = Record<ResponseMethod, AnyMethod>;

/** The response methods `target` has now (its own or inherited), to call once the hold lets go. */
const methodsOf = (target: ServerResponse): ResponseMethods =>
  Object.fromEntries(RESPONSE_METHODS.map((method) => [method, target[method] as AnyMethod])) as ResponseMethods;

/*
 * Where a request's session and its response hold live. On Express, each application has its
 * own request and response prototypes (`app.request`, `app.response`), so `req.session` and the
 * response methods are installed there once, and a request only fills two slots: no property is
 * defined and no method replaced per request, and every request and response keeps one shape
 * (Node's HTTP code runs measurably slower on responses whose methods were replaced one by one).
 * Elsewhere (Fastify's raw Node objects, whose prototypes every server in the process shares),
 * each request gets its own property and its response its own methods.
 */
const SESSION = Symbol('nestjs-session-sync.session');
const HOLD = Symbol('nestjs-session-sync.hold');
/** On a request prototype prepared by {@link mountOnPlatform}: `req.session` reads {@link SESSION}. */
const PREPARED = Symbol('nestjs-session-sync.prepared');
/** On a response prototype prepared by {@link mountOnPlatform}: the response methods it inherited. */
const INHERITED = Symbol('nestjs-session-sync.inherited');

interface SessionSlots {
  [SESSION]?: () => SessionObject;
  [PREPARED]?: true;
  [HOLD]?: ResponseHold;
  [INHERITED]?: ResponseMethods;
}

/**
 * Holds the response until `beforeHeaders` resolves, so that the commit is acknowledged before
 * the client sees anything (read-your-writes: its next request, on any node, sees the write),
 * and so that a credential made asynchronously (a sealed session, a JWT) can still go in the
 * headers. Calls made meanwhile (`writeHead`, `write`, `end`) are replayed in order; a held
 * `write` returns false and `drain` follows the release, so a piped stream waits instead of
 * filling memory.
 */
export function hookResponse(res: ServerResponse, hooks: ResponseHooks): void {
  const slots = res as ServerResponse & SessionSlots;
  const inherited = slots[INHERITED];
  if (inherited) {
    slots[HOLD] = new ResponseHold(res, hooks, inherited);
    return;
  }
  const hold = new ResponseHold(res, hooks, methodsOf(res));
  for (const method of RESPONSE_METHODS) (res as unknown as Record<ResponseMethod, AnyMethod>)[method] = (...args: unknown[]) => hold[method](args);
}

/** One response's hold: what {@link hookResponse} puts between the application and `original`. */
class ResponseHold {
  private held: Array<{ method: ResponseMethod; args: unknown[] }> = [];
  // A session first read after the headers left (a streamed body) can only commit at the end.
  private phase: 'open' | 'holding' | 'released' | 'failed';
  private heldWrite = false;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly hooks: ResponseHooks,
    private readonly original: ResponseMethods,
  ) {
    this.phase = res.headersSent ? 'released' : 'open';
  }

  writeHead(args: unknown[]): unknown {
    if (this.passIfIdle()) return this.call('writeHead', args);
    // Failed: only the error answer's own headers (from Node's end()) go out, once.
    if (this.phase === 'failed') return this.res.headersSent ? this.res : this.call('writeHead', args);
    this.hold('writeHead', foldHeadersOf(this.res, args));
    return this.res;
  }

  write(args: unknown[]): unknown {
    if (this.passIfIdle()) return this.call('write', args);
    // After a failure the error answer is already sent: the rest of a streamed body is dropped.
    if (this.phase === 'failed') return true;
    this.hold('write', args);
    this.heldWrite = true;
    return false;
  }

  end(args: unknown[]): unknown {
    if (this.phase === 'failed') return this.res;
    if (this.phase === 'open' && this.hooks.idle()) {
      this.phase = 'released';
      this.ended = true;
      return this.call('end', args);
    }
    if (this.phase !== 'released') {
      this.hold('end', args);
      return this.res;
    }
    if (this.ended) return this.call('end', args);
    this.ended = true;
    // The headers left with the first chunk of a streamed body: commit what changed since.
    this.hooks.beforeEnd().then(
      () => this.call('end', args),
      (error: unknown) => this.res.destroy(error instanceof Error ? error : undefined),
    );
    return this.res;
  }

  private call(method: ResponseMethod, args: unknown[]): unknown {
    return this.original[method].apply(this.res, args);
  }

  /** Nothing to wait for: the response goes out as it is, and only a later change waits for its end. */
  private passIfIdle(): boolean {
    if (this.phase === 'open' && this.hooks.idle()) this.phase = 'released';
    return this.phase === 'released';
  }

  private hold(method: ResponseMethod, args: unknown[]): void {
    this.held.push({ method, args });
    if (this.phase !== 'open') return;
    this.phase = 'holding';
    this.hooks.beforeHeaders().then(
      () => this.release(),
      (error: unknown) => this.fail(error),
    );
  }

  private release(): void {
    this.phase = 'released';
    for (const { method, args } of this.held.splice(0)) {
      if (method === 'end') this.ended = true;
      this.call(method, args);
    }
    if (this.heldWrite && !this.ended) this.res.emit('drain');
  }

  private fail(error: unknown): void {
    const { res } = this;
    this.phase = 'failed';
    this.held.length = 0;
    const { status, body } = this.hooks.onError(error);
    const payload = JSON.stringify(body);
    for (const name of res.getHeaderNames()) if (name !== 'set-cookie') res.removeHeader(name);
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(payload));
    res.setHeader('Cache-Control', 'no-store');
    this.call('end', [payload]);
  }
}

/**
 * Exposes the session as `req.session`. When the store could not be read, reading it throws
 * the given error: routes that never look at the session keep working through an outage.
 */
export function exposeSession(req: SessionRequest, session: () => SessionObject): void {
  const slots = req as SessionRequest & SessionSlots;
  if (slots[PREPARED]) slots[SESSION] = session;
  else Object.defineProperty(req, 'session', { configurable: true, enumerable: true, get: session });
}

/** The part of an Express application {@link mountOnPlatform} uses. */
interface ExpressApplication {
  request: object;
  response: object;
  use(handler: (req: SessionRequest, res: ServerResponse, next: (error?: unknown) => void) => void): unknown;
}

/**
 * Runs `middleware` for every request of an Express application, as `app.use(session())` does,
 * and gives the application's request and response prototypes `req.session` and the response
 * hold (see {@link SESSION}). Nest's own middleware layer (`forRoutes('*')`) would add its route
 * matching and wrappers to every request, for a middleware that applies to all of them anyway.
 * Returns false on another platform: the module then registers the middleware through Nest.
 */
export function mountOnPlatform(adapter: PlatformAdapter | undefined, middleware: NestMiddleware<SessionRequest, ServerResponse>): boolean {
  if (adapter?.getType() !== 'express') return false;
  const app = adapter.getInstance() as ExpressApplication;
  const request = app.request as SessionSlots;
  const response = app.response as ServerResponse & SessionSlots;
  if (!response[INHERITED]) {
    const inherited = methodsOf(response);
    Object.defineProperty(response, INHERITED, { value: inherited });
    for (const method of RESPONSE_METHODS) {
      Object.defineProperty(response, method, {
        configurable: true,
        writable: true,
        value(this: ServerResponse & SessionSlots, ...args: unknown[]) {
          const hold = this[HOLD];
          return hold ? hold[method](args) : inherited[method].apply(this, args);
        },
      });
    }
    Object.defineProperty(request, PREPARED, { value: true });
    Object.defineProperty(request, 'session', {
      configurable: true,
      get(this: SessionSlots) {
        return this[SESSION]?.();
      },
    });
  }
  app.use((req, res, next) => {
    const pending = middleware.use(req, res, next) as Promise<void> | undefined;
    // What Nest's layer would do with a failure the pipeline did not answer itself (a bug): pass it on.
    pending?.catch(next);
  });
  return true;
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
