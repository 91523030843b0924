import { Inject, Injectable } from '@nestjs/common';
import type { LoggerService, NestMiddleware } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { SessionCredentials } from './session.credentials.js';
import type { CredentialChannel, OpenedCredential, PresentedCredential, RequestCredential } from './session.credentials.js';
import { InjectSessionOptions } from '../session.constants.js';
import { hasTimedOut, shouldForbidCaching } from './session.decisions.js';
import type { CommittedSession } from './session.decisions.js';
import { SessionEvents } from '../session.events.js';
import { hashSessionId } from '../crypto/index.js';
import { LegacySessions } from '../legacy/legacy-sessions.js';
import type { LegacyTake } from '../legacy/legacy-sessions.js';
import { SessionMessages, toHttpException } from '../session.errors.js';
import { exposeSession, hookResponse } from './session.http.js';
import type { SessionRequest } from './session.http.js';
import { moduleLogger } from '../session.options.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { SessionState } from './session.state.js';
import type { LoadedSession } from './session.state.js';
import { StoreBudget, storeFailuresAsUnavailable } from '../stores/bounded-store.js';
import { SessionStore } from '../stores/session-store.js';
import type { SessionClient } from '../stores/session-store.js';

/** Longest user agent recorded: enough to tell devices apart, not a place to store a payload. */
const MAX_USER_AGENT = 256;

/**
 * The request pipeline, in the order one request meets it:
 *   1. resolve: the credential the request presents (`SessionCredentials.read`: the cookie or a
 *      bearer token, and the channel it came in on), the session it opens to, and that session
 *      loaded from the store unless its time is over (`hasTimedOut`). Without a credential, and
 *      with the `legacy` option, express-session's cookie: its session is taken over (`migrate`);
 *   2. expose: `req.session` (made on first read when there is no session), and
 *      `Cache-Control: no-store` for a signed-in session (`shouldForbidCaching`);
 *   3. guards and the handler read and write the session (`SessionState`, session.object.ts);
 *   4. commit, before the response's first byte: the one store write `plannedWrite` decides on
 *      (create, rotate, a delta commit or a touch; `maxSessionsPerUser` admits a sign-in);
 *   5. hand out the credential, on the channel the request came in on (`credentialDecision`,
 *      `SessionCredentials.write`).
 * Every decision on the way is a named function in session.decisions.ts. It runs as middleware
 * so the session is loaded before guards; the commit runs before the response's first byte
 * leaves, so whatever the client does next sees it.
 */
@Injectable()
export class SessionMiddleware implements NestMiddleware {
  private readonly logger: LoggerService;
  /** The store as configured, which gives each request its view (see SessionStore.forRequest). */
  private readonly configured: SessionStore;
  /** The same store, its failures turned into the 503 error: what requests use unless they get a view of their own. */
  private readonly store: SessionStore;

  constructor(
    @InjectSessionOptions() private readonly options: ResolvedSessionOptions,
    store: SessionStore,
    private readonly credentials: SessionCredentials,
    private readonly events: SessionEvents,
    // Null without the `legacy` option.
    @Inject(LegacySessions) private readonly legacy: LegacySessions | null = null,
  ) {
    this.logger = moduleLogger(options);
    this.configured = store;
    // Bounded per request, not per call: every store wait of a request draws on its StoreBudget.
    this.store = storeFailuresAsUnavailable(store);
  }

  use(req: SessionRequest, res: ServerResponse, next: (error?: unknown) => void): Promise<void> | void {
    // 1. Resolve the credential. None: an anonymous session, with no store access and, until
    // the application reads `req.session`, no session state either (see exposeAnonymous).
    const presented = this.credentials.read(req);
    if (!presented) {
      // Or the signed cookie of the express-session deployment this one replaces: taken over.
      const { legacy } = this;
      const legacyId = legacy?.presented(req);
      if (legacy && legacyId) return this.migrate(req, res, legacy, legacyId, next);
      this.exposeAnonymous(req, res, null, undefined);
      return next();
    }
    return this.resolve(req, res, presented, next);
  }

  /**
   * Opens the credential and loads its session. One that does not verify: an anonymous session,
   * with no store access. A store that does not answer fails only the code that reads the session.
   */
  private async resolve(req: SessionRequest, res: ServerResponse, presented: PresentedCredential, next: (error?: unknown) => void): Promise<void> {
    // The store this request talks to: the shared one, or (the cookie store) a view of this client's own.
    const store = this.configured.forRequest() ?? this.store;
    const now = Date.now();
    let opened: OpenedCredential | null = null;
    let loaded: LoadedSession | null = null;
    let budget: StoreBudget | undefined;
    try {
      opened = await this.credentials.open(presented, store);
      if (opened) {
        // The load draws on the request's store time; the commit gets what is left.
        budget = new StoreBudget(store.kind, this.options.storeTimeout);
        const id = opened.id;
        loaded = await budget.spend('get', () => this.load(store, id, now));
      }
    } catch (error) {
      this.logger.warn(`Could not load session ${opened ? store.keyOf(opened.id) : ''}: ${String(error)}`);
      exposeFailure(req, error);
      return next();
    }
    // The channel counts even when its credential opened to nothing: the answer goes back on it.
    if (!loaded) {
      this.exposeAnonymous(req, res, presented.channel, budget, store);
      return next();
    }
    // 2. Expose the session; steps 4 and 5 run in the response hook that begin() sets.
    // Set before the handler runs, so it holds whether or not the handler reads the session.
    if (shouldForbidCaching(loaded.stored, this.options)) res.setHeader('Cache-Control', 'no-store');
    const state = this.begin(req, res, store, loaded, { channel: presented.channel, opened }, now, budget);
    // Made with a secret being retired: the commit touches the session, and the response hands
    // out its credential again, under the newest secret.
    if (opened?.stale) await state.touch();
    next();
  }

  /**
   * Takes over the express-session session the request's old cookie names (the `legacy` option):
   * out of the old store in one step, then created here under a new id before the handler runs,
   * so that this very request is signed in. Its response hands out this module's credential and
   * clears the old cookie. Of two requests with the same old cookie, one takes the session and
   * the other is anonymous. When the take or the create fails, the old session stays (or is put
   * back) where it was, and only code that reads the session fails, as with a load.
   */
  private async migrate(
    req: SessionRequest,
    res: ServerResponse,
    legacy: LegacySessions,
    legacyId: string,
    next: (error?: unknown) => void,
  ): Promise<void> {
    const store = this.configured.forRequest() ?? this.store;
    const now = Date.now();
    const budget = new StoreBudget(store.kind, this.options.storeTimeout);
    let state: SessionState | null = null;
    try {
      const taken = await budget.spend(`take (${legacy.kind})`, () => legacy.take(legacyId));
      if (taken) state = await this.createTakenOver(req, store, taken, now, budget);
    } catch (error) {
      this.logger.warn(`Could not take over express-session session ${hashSessionId(legacyId)}: ${String(error)}`);
      exposeFailure(req, error);
      return next();
    }
    // Taken over, or nothing left to take (expired, or taken by another request): the old cookie is done with.
    legacy.clearCookie(req, res);
    const credential: RequestCredential = { channel: 'cookie', opened: null };
    if (state) this.serve(req, res, store, state, credential);
    else this.exposeAnonymous(req, res, credential.channel, budget, store);
    next();
  }

  /**
   * The taken-over session, created in this module's store with the old data; null when the old
   * session held no data of the application's (express-session stores such sessions when its
   * `saveUninitialized` is on). A create that fails puts the old session back.
   */
  private async createTakenOver(
    req: SessionRequest,
    store: SessionStore,
    taken: LegacyTake,
    now: number,
    budget: StoreBudget,
  ): Promise<SessionState | null> {
    if (Object.keys(taken.fields).length === 0) return null;
    const state = this.newState(req, store, null, now, budget);
    state.adopt(taken.fields);
    try {
      await state.save();
    } catch (error) {
      await taken.putBack().catch((failure: unknown) => this.logger.warn(SessionMessages.legacyPutBackFailed(taken.key, String(failure))));
      throw error;
    }
    this.events.moved('migrated', taken.key, state.key, state.committed.userId);
    return state;
  }

  /**
   * No session to load: none is made until the application reads `req.session`, so a request
   * that never does costs no session state and no response hold at all.
   */
  private exposeAnonymous(
    req: SessionRequest,
    res: ServerResponse,
    channel: CredentialChannel | null,
    budget: StoreBudget | undefined,
    // The store the credential was opened with, if one was presented: the session stays on it.
    opened?: SessionStore,
  ): void {
    const now = Date.now();
    let state: SessionState | undefined;
    exposeSession(req, () => {
      state ??= this.begin(req, res, opened ?? this.configured.forRequest() ?? this.store, null, { channel, opened: null }, now, budget);
      return state.proxy;
    });
  }

  /**
   * Starts the request's session: its state, `req.session` (a getter, since regenerate() hands
   * out a new Session object, as express-session does), and the response hook that commits it
   * and hands out the credential before the response's first byte.
   */
  private begin(
    req: SessionRequest,
    res: ServerResponse,
    store: SessionStore,
    loaded: LoadedSession | null,
    credential: RequestCredential,
    now: number,
    budget: StoreBudget | undefined,
  ): SessionState {
    const state = this.newState(req, store, loaded, now, budget);
    this.serve(req, res, store, state, credential);
    return state;
  }

  private newState(
    req: SessionRequest,
    store: SessionStore,
    loaded: LoadedSession | null,
    now: number,
    budget: StoreBudget | undefined,
  ): SessionState {
    const client = this.options.recordClient ? clientOf(req) : undefined;
    return new SessionState(store, this.options, loaded, now, { events: this.events, client, budget });
  }

  /** Exposes the request's session as `req.session`, and hooks the response to commit it and hand out its credential. */
  private serve(req: SessionRequest, res: ServerResponse, store: SessionStore, state: SessionState, credential: RequestCredential): void {
    exposeSession(req, () => state.proxy);
    let handedOut = state.committed;
    hookResponse(res, {
      // Nothing to write and no credential to hand out: the response leaves without waiting.
      idle: () => !state.hasPendingWrite() && !this.credentials.pending(state.committed, credential),
      beforeHeaders: async () => {
        // 4. Commit, then 5. hand out the credential the committed session calls for.
        await state.commit();
        await this.credentials.write(req, res, state.committed, credential, store);
        handedOut = state.committed;
      },
      beforeEnd: async () => {
        await state.commit();
        this.warnIfCredentialLate(state, handedOut);
      },
      onError: (error) => this.commitFailed(error, state),
    });
  }

  /** The session stored under the id's key, unless the timeouts in force now say it is over. */
  private async load(store: SessionStore, id: string, now: number): Promise<LoadedSession | null> {
    const stored = await store.get(store.keyOf(id));
    return stored && !hasTimedOut(stored, this.options, now) ? { id, stored } : null;
  }

  /**
   * A streamed response sends its headers with its first chunk: a session created or rotated
   * after that (or, with a sealed session or JWT, changed at all) has a credential the client
   * can no longer be given.
   */
  private warnIfCredentialLate(state: SessionState, handedOut: CommittedSession): void {
    const now = state.committed;
    if (now.writes === handedOut.writes) return;
    if (now.id !== handedOut.id || this.credentials.changesOnWrite) this.logger.warn(SessionMessages.credentialLate());
  }

  private commitFailed(error: unknown, state: SessionState): { status: number; body: object } {
    const answer = toHttpException(error);
    if (answer.getStatus() >= 500) this.logger.warn(`Could not save session ${state.key}: ${String(error)}`);
    return { status: answer.getStatus(), body: answer.getResponse() as object };
  }
}

/** `req.session` for a request whose session could not be loaded: reading it fails with the answer for `error` (a 503 for a store down). */
function exposeFailure(req: SessionRequest, error: unknown): void {
  const answer = toHttpException(error);
  exposeSession(req, () => {
    throw answer;
  });
}

/** What `recordClient` records of a request: its user agent, and its IP as the platform sees it. */
function clientOf(req: SessionRequest): SessionClient {
  const client: SessionClient = {};
  const userAgent = req.headers['user-agent'];
  if (typeof userAgent === 'string' && userAgent !== '') client.userAgent = userAgent.slice(0, MAX_USER_AGENT);
  const ip = (req as SessionRequest & { ip?: string }).ip ?? req.socket?.remoteAddress;
  if (ip) client.ip = ip;
  return client;
}
