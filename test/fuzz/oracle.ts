import { hashSessionId } from '../../lib/index.js';
import type { ForgeryMaterial } from './forgery.js';
import {
  bearerCandidates,
  cookieCandidates,
  issuedCookie,
  issuedToken,
  parsedSid,
  safeDecode,
  sessionNamedBy,
  sidPairs,
  strictBearer,
} from './reading.js';
import { asText, routeOf } from './report.js';
import type { Answer, FuzzReport, SentRequest } from './report.js';

/**
 * The fuzz test's oracle. It keeps the ledger of what the server legitimately handed out (each
 * credential, the user it was issued to, the session it names, and which sessions have since
 * been ended) and judges every answer against it: a status of 500 or more, a signed-in answer
 * to a request that presented no live credential issued to that user, a credential handed out on
 * a channel the request did not use.
 *
 * It only ever judges from what the test itself knows to be true, so it errs towards silence:
 * where the server's reading of a request is ambiguous (two credentials on two channels), a
 * session is not counted as ended.
 */

export type StoreKind = 'memory' | 'redis' | 'cookie';
export type Transport = 'cookie' | 'header' | 'both';

type Channel = 'cookie' | 'header';

interface Issued {
  /** Where it was handed out: a credential opens on another channel only if both carry one format. */
  channels: Set<Channel>;
  /** Who the session was signed in as when this credential was issued (null: nobody), read leniently. */
  users: Set<string | null>;
  /** The same, only through credentials the server surely read as the test did: what the notes trust. */
  surely: Set<string>;
  /** The session it names, when the format shows it (not the cookie store's sealed sessions). */
  session?: string;
}

const MATERIAL_KEPT = 300;

export class Oracle {
  private readonly issued = new Map<string, Issued>();
  private readonly sessionsOfUser = new Map<string, Set<string>>();
  private readonly ended = new Set<string>();
  /** Sessions an ambiguous request (two credentials) may have ended. */
  private readonly maybeEnded = new Set<string>();
  private readonly cookies: string[] = [];
  private readonly tokens: string[] = [];
  private readonly sessionIds: string[] = [];
  private readonly users: string[] = [];
  private readonly endedCookies: string[] = [];
  private readonly endedTokens: string[] = [];
  /** Every credential issued for each session, to replay once the session has ended. */
  private readonly credentialsOf = new Map<string, string[]>();
  /** Hashed ids `GET /auth/sessions` listed, for `DELETE /auth/sessions/:id`. */
  readonly listedIds: string[] = [];

  constructor(
    private readonly store: StoreKind,
    private readonly transport: Transport,
    /** The cookie and the Authorization header carry the same format (signed ids, or sealed sessions). */
    private readonly sameFormat: boolean,
    private readonly report: FuzzReport,
  ) {}

  /** Live views of what was handed out, for the forger to build on. */
  readonly material: ForgeryMaterial = {
    cookies: this.cookies,
    tokens: this.tokens,
    sessionIds: this.sessionIds,
    users: this.users,
    endedCookies: this.endedCookies,
    endedTokens: this.endedTokens,
  };

  /** Judges one answer, then books what it handed out and what it ended. */
  judge(req: SentRequest, answer: Answer): void {
    this.report.count(req, answer);
    const route = routeOf(req);
    if (answer.error !== undefined) this.report.fail('no answer', req, answer, answer.error);
    else if (answer.status === 503) this.report.fail('status 503', req, answer, 'the store is up: a 503 here is not an outage');
    else if (answer.status >= 500 && this.isDocumented501(route, answer)) this.report.note('documented 501', req, answer);
    else if (answer.status >= 500) this.report.fail('status >= 500', req, answer);
    if (answer.error !== undefined) return;

    this.checkSignedIn(req, answer, route);
    this.checkChannels(req, answer);
    this.book(req, answer, route);
  }

  /** The cookie store cannot list or revoke a user's sessions, and says so with a 501 (docs/stores.md). */
  private isDocumented501(route: string, answer: Answer): boolean {
    return this.store === 'cookie' && answer.status === 501 && route.includes('/auth/sessions') && codeOf(answer) === 'SESSION_STORE_UNSUPPORTED';
  }

  /** 0 forged sign-ins: every signed-in answer traces back to a live credential issued to that user. */
  private checkSignedIn(req: SentRequest, answer: Answer, route: string): void {
    if (answer.status !== 200) {
      if (route === 'GET /profile' && answer.status === 401) this.noteRefusedLiveSession(req, answer);
      return;
    }
    const body = answer.body as Record<string, unknown> | undefined;
    if (route === 'POST /auth/login') {
      const sent = req.login;
      if (sent && (sent.password !== 'demo' || typeof sent.username !== 'string')) {
        this.report.fail(
          'forged sign-in',
          req,
          answer,
          `signed in with password ${show(sent.password)} and user name ${show(sent.username)}`,
          'wrong password',
        );
      } else if (sent && body?.userId !== sent.username) {
        this.report.fail('forged sign-in', req, answer, `signed in as ${show(body?.userId)} for user name ${show(sent.username)}`, 'another user');
      }
      return;
    }
    let claimed: string | undefined;
    if (route === 'GET /profile') claimed = asText(body?.userId);
    else if (route === 'GET /session') {
      const userId = (body?.data as Record<string, unknown> | undefined)?.userId;
      if (userId === undefined) return;
      claimed = asText(userId);
    } else if (!route.includes('/auth/sessions')) return;
    const problem = this.illegitimate(req, claimed);
    if (problem) this.report.fail('forged sign-in', req, answer, problem[1], problem[0]);
  }

  /** Why a signed-in answer (as `claimed`, or as anyone) was not earned, as [variant, detail], or undefined when it was. */
  private illegitimate(req: SentRequest, claimed: string | undefined): [string, string] | undefined {
    const as = `answered as ${show(claimed ?? 'a signed-in user')}`;
    const known = this.presented(req);
    if (known.length === 0) return ['never issued', `${as} to a credential the server never issued`];
    const live = known.filter((i) => !this.isEnded(i));
    if (live.length === 0) return ['ended session', `${as} to a credential of an ended session (logout, rotation or revoke)`];
    const matches = live.some((i) => (claimed === undefined ? [...i.users].some((u) => u !== null) : i.users.has(claimed)));
    if (matches) return undefined;
    const owners = [...new Set(live.flatMap((i) => [...i.users]))].map(show).join(', ');
    return ['another user', `${as} to a credential issued to ${owners}`];
  }

  /** `'both'`: a request with only a cookie gets no bearer token, and one with only a token no cookie. */
  private checkChannels(req: SentRequest, answer: Answer): void {
    if (this.transport !== 'both') return;
    const cookie = req.headers.Cookie;
    const authorization = req.headers.Authorization;
    const token = issuedToken(answer);
    const setCookie = issuedCookie(answer);
    if (authorization === undefined && cookieCandidates(cookie).some((c) => this.lookup('cookie', c)) && token) {
      this.report.fail(
        'credential on the wrong channel',
        req,
        answer,
        'a request with a session cookie received an X-Session-Token a script can read',
        'token to a cookie request',
      );
    }
    if (cookie === undefined && this.lookup('header', strictBearer(authorization)) && setCookie) {
      this.report.fail(
        'credential on the wrong channel',
        req,
        answer,
        'a request with a Bearer token received a session cookie',
        'cookie to a token request',
      );
    }
  }

  /** A 401 on `GET /profile` for the one live, signed-in credential a request presented. */
  private noteRefusedLiveSession(req: SentRequest, answer: Answer): void {
    const only = this.effective(req);
    if (only && !this.isEnded(only) && !this.maybeEnded.has(only.session ?? '') && only.surely.size > 0) {
      this.report.note('signed-in session answered 401', req, answer, `issued to ${[...only.surely].map(show).join(', ')}`);
    }
  }

  /**
   * Books the credentials an answer hands out, and the sessions it ended: for certain when the
   * request carried one credential the server must have read, else only as "maybe ended" (which
   * silences the notes on them, and never turns a sign-in into a forgery).
   */
  private book(req: SentRequest, answer: Answer, route: string): void {
    const live = this.presented(req).filter((i) => !this.isEnded(i));
    const surelyRead = this.readStrictly(req).filter((i) => !this.isEnded(i));
    const handedOut = (
      [
        ['cookie', issuedCookie(answer)],
        ['header', issuedToken(answer)],
      ] as const
    ).filter((c): c is readonly [Channel, string] => !!c[1]);
    const login = route === 'POST /auth/login' && answer.status === 200;
    const userId = asText((answer.body as { userId?: unknown } | undefined)?.userId);
    for (const [channel, value] of handedOut) {
      // A sign-in's credential is its user's. Any other names either the session a presented live
      // credential named (a renewed JWT: that credential's user) or a new, anonymous one.
      const session = sessionNamedBy(value);
      const renews = (i: Issued): boolean => session === undefined || i.session === undefined || i.session === session;
      const users = new Set<string | null>(login ? [userId, null] : [null, ...live.filter(renews).flatMap((i) => [...i.users])]);
      const surely = new Set<string>(login ? [userId] : surelyRead.filter(renews).flatMap((i) => [...i.surely]));
      this.remember(channel, value, users, surely, login ? userId : undefined);
    }
    if (this.store === 'cookie') return;

    const only = this.effective(req);
    const end = (session: string): void => (only ? this.end(session) : void this.maybeEnded.add(session));
    const newSessions = handedOut.map(([, value]) => sessionNamedBy(value));
    for (const subject of only ? [only] : live) {
      const { session } = subject;
      // An ended session is no session: the server answered that request as anonymous.
      if (session === undefined || this.isEnded(subject)) continue;
      if (login && !newSessions.includes(session)) end(session);
      if (route === 'POST /auth/logout' && answer.status === 204) end(session);
      const user = [...subject.users].filter((u): u is string => u !== null);
      if (answer.status === 200 && user.length === 1) this.bookUserEffects(req, answer, route, user[0], session, end, only !== undefined);
    }
  }

  /** Listing and revoking a user's sessions, by a request that carried a credential of that user. */
  private bookUserEffects(
    req: SentRequest,
    answer: Answer,
    route: string,
    user: string,
    current: string,
    end: (session: string) => void,
    certain: boolean,
  ): void {
    const live = [...(this.sessionsOfUser.get(user) ?? [])].filter((s) => !this.ended.has(s));
    if (route === 'GET /auth/sessions' && Array.isArray(answer.body)) {
      for (const entry of answer.body as Array<{ id?: unknown }>) if (typeof entry.id === 'string') remember(this.listedIds, entry.id);
      const sure = live.filter((s) => !this.maybeEnded.has(s));
      // More than the test ever issued to this user and did not see end: another user's sessions, or dead ones.
      if (certain && answer.body.length > live.length)
        this.report.fail(
          'cross-user effect',
          req,
          answer,
          `${answer.body.length} listed, at most ${live.length} issued to ${show(user)} (${sure.length} surely live)`,
          'listed more sessions than the user has',
        );
    }
    if (route === 'DELETE /auth/sessions') {
      const others = live.filter((s) => s !== current);
      const revoked = (answer.body as { revoked?: unknown }).revoked;
      if (certain && typeof revoked === 'number' && revoked > others.length)
        this.report.fail(
          'cross-user effect',
          req,
          answer,
          `${revoked} revoked, at most ${others.length} others of ${show(user)}`,
          'revoked more sessions than the user had',
        );
      others.forEach(end);
    }
    if (route === 'DELETE /auth/sessions/:id') {
      const hashed = safeDecode(req.path.slice('/auth/sessions/'.length));
      const target = [...this.issued.values()].find((i) => i.session !== undefined && hashSessionId(i.session) === hashed);
      if (certain && target?.session && !target.users.has(user)) {
        this.report.fail(
          'cross-user effect',
          req,
          answer,
          `${show(user)} revoked a session issued to ${[...target.users].map(show).join(', ')}`,
          "revoked another user's session by id",
        );
      }
      if (target?.session) end(target.session);
    }
  }

  private remember(channel: Channel, value: string, users: Set<string | null>, surely: Set<string>, loginUser: string | undefined): void {
    const session = sessionNamedBy(value);
    const entry = this.issued.get(value) ?? { channels: new Set(), users: new Set(), surely: new Set(), session };
    entry.channels.add(channel);
    users.forEach((u) => entry.users.add(u));
    surely.forEach((u) => entry.surely.add(u));
    this.issued.set(value, entry);
    // Every issue counts, repeats too: a JWT renewed within the same second is the same text, and
    // whether it is depends on the clock, which must not change what a seed replays.
    remember(channel === 'cookie' ? this.cookies : this.tokens, value, false);
    if (session) {
      remember(this.sessionIds, session);
      this.credentialsOf.set(session, [...(this.credentialsOf.get(session) ?? []), value]);
    }
    if (loginUser !== undefined) {
      remember(this.users, loginUser);
      if (session) this.sessionsOfUser.set(loginUser, (this.sessionsOfUser.get(loginUser) ?? new Set()).add(session));
    }
  }

  /** A session surely ended: its credentials become replays that must fail. */
  private end(session: string): void {
    this.ended.add(session);
    for (const value of this.credentialsOf.get(session) ?? []) {
      remember(this.issued.get(value)?.channels.has('cookie') ? this.endedCookies : this.endedTokens, value, false);
    }
    this.credentialsOf.delete(session);
  }

  private isEnded(issued: Issued): boolean {
    return this.store !== 'cookie' && issued.session !== undefined && this.ended.has(issued.session);
  }

  /** What was issued as `value`, if it opens on `channel`. */
  private lookup(channel: Channel, value: string | undefined): Issued | undefined {
    const issued = value === undefined ? undefined : this.issued.get(value);
    return issued && (issued.channels.has(channel) || this.sameFormat) ? issued : undefined;
  }

  /** Every issued credential the server could have read from the request, on the channels it reads. */
  private presented(req: SentRequest): Issued[] {
    const found: Array<Issued | undefined> = [];
    if (this.transport !== 'header') found.push(...cookieCandidates(req.headers.Cookie).map((c) => this.lookup('cookie', c)));
    if (this.transport !== 'cookie') found.push(...bearerCandidates(req.headers.Authorization).map((t) => this.lookup('header', t)));
    return found.filter((i): i is Issued => i !== undefined);
  }

  /** The credentials the server reads as the test reads them: the parsed cookie, a well-formed Bearer token. */
  private readStrictly(req: SentRequest): Issued[] {
    const cookie = this.transport !== 'header' ? parsedSid(req.headers.Cookie) : undefined;
    const token = this.transport !== 'cookie' ? strictBearer(req.headers.Authorization) : undefined;
    return [this.lookup('cookie', cookie), this.lookup('header', token)].filter((i): i is Issued => i !== undefined);
  }

  /**
   * The one credential the server certainly read: a single session cookie and no Authorization
   * header, or a Bearer token and no Cookie header (on the channels the transport reads). Else
   * undefined: the ledger does not guess which of two credentials the server took.
   */
  private effective(req: SentRequest): Issued | undefined {
    const cookie = this.transport !== 'header' ? req.headers.Cookie : undefined;
    const authorization = this.transport !== 'cookie' ? req.headers.Authorization : undefined;
    if (cookie !== undefined && authorization === undefined && sidPairs(cookie) === 1) {
      return this.lookup('cookie', parsedSid(cookie));
    }
    if (authorization !== undefined && cookie === undefined) return this.lookup('header', strictBearer(authorization));
    return undefined;
  }
}

/** Keeps `value` among the last {@link MATERIAL_KEPT} (once, if `unique`). */
function remember(list: string[], value: string, unique = true): void {
  if (unique && list.includes(value)) return;
  list.push(value);
  if (list.length > MATERIAL_KEPT) list.shift();
}

function codeOf(answer: Answer): unknown {
  return (answer.body as { code?: unknown } | undefined)?.code;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
