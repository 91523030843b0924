import { Injectable, Logger } from '@nestjs/common';
import type { NestMiddleware } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { maskSessionId, SessionIdSigner } from './crypto/index.js';
import { InjectSessionOptions } from './session.decorators.js';
import { toHttpException } from './session.errors.js';
import { appendSetCookie, cookieHeaderOf, exposeSession, hookResponse, isSecureRequest } from './session.http.js';
import type { SessionRequest } from './session.http.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionState } from './session.state.js';
import { boundStoreCalls } from './stores/bounded-store.js';
import { SessionStore } from './stores/session-store.js';
import type { StoredSession } from './stores/session-store.js';
import { CookieTransport, readBearerToken, SESSION_TOKEN_HEADER } from './transports/index.js';

/**
 * The request pipeline, top to bottom:
 *   resolve the id → load the session → (guards, handler) → diff → commit → set the cookie.
 * It runs as middleware so the session is loaded before guards; the commit runs when the
 * response ends, before its first byte leaves, so whatever the client does next sees it.
 */
@Injectable()
export class SessionMiddleware implements NestMiddleware {
  private readonly logger = new Logger('SessionModule');
  private readonly cookies: CookieTransport;
  private readonly signer: SessionIdSigner;
  private readonly store: SessionStore;

  constructor(@InjectSessionOptions() private readonly options: ResolvedSessionOptions, store: SessionStore) {
    this.cookies = new CookieTransport(options.cookie);
    this.signer = new SessionIdSigner(options.secrets);
    this.store = boundStoreCalls(store, options.storeTimeout);
  }

  async use(req: SessionRequest, res: ServerResponse, next: (error?: unknown) => void): Promise<void> {
    // 1. Resolve the id. No credential: no store access. A bad signature: anonymous, no store access.
    const raw = this.readCredential(req);
    const presentedId = raw === undefined ? null : this.signer.unsign(raw);
    const now = Date.now();

    // 2. Load. A store that does not answer fails only the code that reads the session.
    let loaded: StoredSession | null = null;
    if (presentedId) {
      try {
        loaded = await this.load(presentedId, now);
      } catch (error) {
        this.logger.warn(`Could not load session ${maskSessionId(presentedId)}: ${String(error)}`);
        const answer = toHttpException(error, this.store.kind);
        exposeSession(req, () => {
          throw answer;
        });
        return next();
      }
    }
    const state = new SessionState(this.store, this.options, loaded, now);
    exposeSession(req, state.proxy);

    // 3–5. After the handler: diff and commit before the response leaves, then set the cookie.
    hookResponse(res, {
      beforeEnd: () => state.commit(),
      beforeHeaders: () => this.writeCredential(req, res, state, presentedId),
      onError: (error) => this.commitFailed(error, state),
    });
    next();
  }

  /** The stored session, unless the timeouts in force now say it is over. */
  private async load(id: string, now: number): Promise<StoredSession | null> {
    const session = await this.store.get(id);
    if (!session) return null;
    // Checked here too so that shortening a timeout takes effect on sessions already stored.
    const { idleTimeout, absoluteTimeout } = this.options;
    const idleOver = session.lastSeenAt + idleTimeout <= now;
    const absoluteOver = absoluteTimeout !== false && session.createdAt + absoluteTimeout <= now;
    return idleOver || absoluteOver ? null : session;
  }

  /** The raw credential: with `'both'`, an Authorization header wins over a cookie. */
  private readCredential(req: SessionRequest): string | undefined {
    const { transport } = this.options;
    const bearer = transport === 'cookie' ? undefined : readBearerToken(req.headers.authorization);
    return bearer ?? (transport === 'header' ? undefined : this.cookies.read(cookieHeaderOf(req)));
  }

  /** Hands out a new or rotated credential (or takes it back), on every channel of the transport. */
  private writeCredential(req: SessionRequest, res: ServerResponse, state: SessionState, presentedId: string | null): void {
    const decision = state.cookieDecision(presentedId);
    if (decision.action === 'none') return;
    const signed = decision.action === 'set' ? this.signer.sign(decision.id) : null;
    const { transport, cookie } = this.options;
    if (transport !== 'header') {
      const isSecure = cookie.secure === 'auto' ? isSecureRequest(req) : cookie.secure;
      appendSetCookie(res, signed === null ? this.cookies.clear(isSecure) : this.cookies.set(signed, isSecure));
    }
    // An empty token tells an API client to drop the one it holds.
    if (transport !== 'cookie') res.setHeader(SESSION_TOKEN_HEADER, signed ?? '');
    // A response that hands out a session credential must never be cached by anyone.
    res.setHeader('Cache-Control', 'no-store');
  }

  private commitFailed(error: unknown, state: SessionState): { status: number; body: object } {
    const answer = toHttpException(error, this.store.kind);
    if (answer.getStatus() >= 500) this.logger.warn(`Could not save session ${maskSessionId(state.id)}: ${String(error)}`);
    return { status: answer.getStatus(), body: answer.getResponse() as object };
  }
}
