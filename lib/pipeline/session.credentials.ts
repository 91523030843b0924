import type { ServerResponse } from 'node:http';
import { loadJose, SessionIdSigner, SessionJwt } from '../crypto/index.js';
import { SessionTooLargeError } from '../session.errors.js';
import { appendSetCookie, cookieHeaderOf, isSecureRequest } from './session.http.js';
import type { SessionRequest } from './session.http.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { credentialDecision } from './session.decisions.js';
import type { CommittedSession, CredentialDecision, CredentialSubject } from './session.decisions.js';
import { MAX_CREDENTIAL_BYTES } from '../stores/index.js';
import type { SessionStore } from '../stores/session-store.js';
import { CookieTransport, readBearerToken, SESSION_TOKEN_HEADER } from '../transports/index.js';

/** Where a credential travels: the session cookie, or the Authorization / X-Session-Token headers. */
export type CredentialChannel = 'cookie' | 'header';

/** A credential as a request presented it: `value` is null when it is there but unusable (too long, malformed). */
export interface PresentedCredential {
  channel: CredentialChannel;
  value: string | null;
}

/**
 * What a request brought: the channel its credential came in on (null: none at all), and the
 * session that credential opened to (null: none, or one that does not open).
 */
export interface RequestCredential {
  channel: CredentialChannel | null;
  opened: OpenedCredential | null;
}

/** A credential read back: the session it names, and whether an older secret made it. */
export interface OpenedCredential {
  id: string;
  /** Made with a secret other than the first: worth handing out again under the newest. */
  stale: boolean;
}

/**
 * How a credential names its session, and back. `store` is the store of the request, which the
 * sealed format uses: there the credential is the session itself.
 */
export interface CredentialFormat {
  /** Longest credential of this format: anything longer is ignored without any crypto work. */
  readonly maxLength: number;
  /** The credential carries the session's state (expiry, user, data): hand it out after every write. */
  readonly changesOnWrite: boolean;
  /** The session a credential names, or null for one that is not valid. Never throws for bad input. */
  open(value: string, store: SessionStore): Promise<OpenedCredential | null>;
  issue(subject: CredentialSubject, store: SessionStore): Promise<string>;
}

/** `id.signature` (HMAC-SHA256): names a server-side session; opening costs no store access. */
function signedIdFormat(secrets: readonly string[]): CredentialFormat {
  const signer = new SessionIdSigner(secrets);
  return {
    maxLength: 87,
    changesOnWrite: false,
    open: async (value) => signer.open(value),
    issue: async ({ id }) => signer.sign(id),
  };
}

/** A signed JWT naming a server-side session, with the user and expiry as claims. */
async function jwtFormat(secrets: readonly string[]): Promise<CredentialFormat> {
  const jwt = new SessionJwt(await loadJose('JWT session tokens (tokenFormat: "jwt")'), secrets);
  return {
    // The limit every credential is issued under (a longer one is refused with a 413).
    maxLength: MAX_CREDENTIAL_BYTES,
    changesOnWrite: true,
    open: (value) => jwt.verify(value),
    issue: (subject) => jwt.issue(subject),
  };
}

/**
 * The whole session, sealed by a store that keeps sessions in the credential (the cookie store):
 * the credential is the session, opened and issued by the request's view of that store.
 */
function sealedFormat(maxLength: number): CredentialFormat {
  return {
    maxLength,
    changesOnWrite: true,
    open: (value, store) => store.openCredential(value),
    issue: ({ id }, store) => store.issueCredential(id),
  };
}

/**
 * Steps 1 and 5 of the request pipeline: reads the credential a request presents, and hands out
 * the one the client must hold next. With `'both'`, a request's Authorization header wins over
 * its cookie, and a credential goes out only on the channel the request came in on (valid or
 * not): a browser holding the HttpOnly cookie never gets a bearer token a page script could read
 * and replay from anywhere. Only a request that brought no credential at all gets both, and the
 * client keeps the one it uses.
 */
export class SessionCredentials {
  private readonly channels: readonly CredentialChannel[];
  /** One-channel lists, made once rather than per request. */
  private readonly single: Readonly<Record<CredentialChannel, readonly CredentialChannel[]>> = { cookie: ['cookie'], header: ['header'] };
  private readonly cookies: CookieTransport;

  private constructor(
    private readonly options: ResolvedSessionOptions,
    private readonly formats: Readonly<Record<CredentialChannel, CredentialFormat>>,
  ) {
    const { transport } = options;
    this.channels = transport === 'both' ? ['cookie', 'header'] : [transport];
    this.cookies = new CookieTransport(options.cookie, formats.cookie.maxLength);
  }

  /** The credential formats the options and the store call for (async: `jose` loads here). */
  static async create(options: ResolvedSessionOptions, store: SessionStore): Promise<SessionCredentials> {
    if (store.sealsSessions) {
      const sealed = sealedFormat(store.maxCredentialLength);
      return new SessionCredentials(options, { cookie: sealed, header: sealed });
    }
    const signedId = signedIdFormat(options.secrets);
    const header = options.tokenFormat === 'jwt' ? await jwtFormat(options.secrets) : signedId;
    return new SessionCredentials(options, { cookie: signedId, header });
  }

  /** True when some channel's credential changes with every write to the session. */
  get changesOnWrite(): boolean {
    return this.channels.some((channel) => this.formats[channel].changesOnWrite);
  }

  /**
   * The credential the request presents, or undefined when it brings none on any channel of the
   * transport. One it brings but we cannot use still names its channel (value null), since that
   * is where the answer goes: a planted or oversized session cookie must not make a browser's
   * request look like a cookie-less one that gets a bearer token too.
   */
  read(req: SessionRequest): PresentedCredential | undefined {
    const { transport } = this.options;
    let header: PresentedCredential | undefined;
    if (transport !== 'cookie') {
      const token = readBearerToken(req.headers.authorization, this.formats.header.maxLength);
      if (token !== undefined) header = { channel: 'header', value: token };
      if (typeof token === 'string') return header;
    }
    if (transport !== 'header') {
      const value = this.cookies.read(cookieHeaderOf(req));
      // A usable cookie beats an unusable token; an unusable one leaves the header first, as documented.
      if (typeof value === 'string') return { channel: 'cookie', value };
      if (value === null) return header ?? { channel: 'cookie', value: null };
    }
    return header;
  }

  async open(presented: PresentedCredential, store: SessionStore): Promise<OpenedCredential | null> {
    return presented.value === null ? null : this.formats[presented.channel].open(presented.value, store);
  }

  /**
   * Hands out a new credential (or takes it back) on every channel that needs it, once the
   * session is committed. A credential over the browser's per-cookie limit is refused with a
   * 413 before any header is set: never a cookie the browser would silently drop.
   */
  async write(
    req: SessionRequest,
    res: ServerResponse,
    session: CommittedSession,
    credential: RequestCredential,
    store: SessionStore,
  ): Promise<void> {
    const headers: Array<[CredentialChannel, string]> = [];
    for (const channel of this.channelsFor(credential)) {
      const decision = this.decision(channel, session, credential.opened);
      if (decision.action === 'none') continue;
      const value = decision.action === 'set' ? await this.formats[channel].issue(decision.subject, store) : null;
      headers.push([channel, channel === 'cookie' ? this.setCookie(req, value) : (value ?? '')]);
    }
    for (const [channel, header] of headers) {
      const bytes = Buffer.byteLength(header);
      const carrier = channel === 'cookie' ? `cookie "${this.options.cookie.name}"` : `${SESSION_TOKEN_HEADER} token`;
      if (bytes > MAX_CREDENTIAL_BYTES) throw new SessionTooLargeError(bytes, MAX_CREDENTIAL_BYTES, carrier);
    }
    for (const [channel, header] of headers) {
      // An empty token tells an API client to drop the one it holds.
      if (channel === 'cookie') appendSetCookie(res, header);
      else res.setHeader(SESSION_TOKEN_HEADER, header);
    }
    // A response that hands out a session credential must never be cached by anyone.
    if (headers.length > 0) res.setHeader('Cache-Control', 'no-store');
  }

  /** True when {@link write} would hand out (or take back) a credential on some channel now. */
  pending(session: CommittedSession, credential: RequestCredential): boolean {
    return this.channelsFor(credential).some((channel) => this.decision(channel, session, credential.opened).action !== 'none');
  }

  /** Where this request's credential goes out: the channel it came in on, or every channel if none. */
  private channelsFor(credential: RequestCredential): readonly CredentialChannel[] {
    return credential.channel === null ? this.channels : this.single[credential.channel];
  }

  private decision(channel: CredentialChannel, session: CommittedSession, presented: OpenedCredential | null): CredentialDecision {
    return credentialDecision(session, presented?.id ?? null, this.renewsOnWrite(channel, presented));
  }

  /**
   * Whether the channel's credential carries the session's state, so that every write hands out
   * a new one: a sealed session or a JWT (its `exp`), a cookie with Max-Age, and a credential made
   * with a secret being retired (its session was touched, so the write renews it).
   */
  private renewsOnWrite(channel: CredentialChannel, presented: OpenedCredential | null): boolean {
    return this.formats[channel].changesOnWrite || presented?.stale === true || (channel === 'cookie' && this.options.cookie.maxAge !== undefined);
  }

  private setCookie(req: SessionRequest, value: string | null): string {
    const { secure } = this.options.cookie;
    const isSecure = secure === 'auto' ? isSecureRequest(req) : secure;
    return value === null ? this.cookies.clear(isSecure) : this.cookies.set(value, isSecure);
  }
}
