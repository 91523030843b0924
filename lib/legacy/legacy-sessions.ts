import type { LoggerService, OnApplicationShutdown } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { hashSessionId } from '../crypto/index.js';
import { SessionMessages } from '../session.errors.js';
import { storeFailure } from '../stores/bounded-store.js';
import { appendSetCookie, cookieHeaderOf, isSecureRequest } from '../pipeline/session.http.js';
import type { SessionRequest } from '../pipeline/session.http.js';
import { moduleLogger } from '../session.options.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import type { SessionFields, SessionStore } from '../stores/session-store.js';
import { CookieTransport } from '../transports/index.js';
import { LegacyCookieVerifier, MAX_LEGACY_COOKIE_LENGTH } from './legacy-cookie.js';
import { readLegacySession } from './legacy-entry.js';
import type { ResolvedLegacyOptions } from './legacy-options.js';
import { openLegacyStore } from './legacy-stores.js';
import type { LegacyStore } from './legacy-stores.js';

/** An old session taken over: its data fields, and how to put it back if it cannot be created here. */
export interface LegacyTake {
  /** The old id, hashed as this module's stores hash ids: how logs and the `migrated` event name it. */
  key: string;
  fields: SessionFields;
  putBack(): Promise<void>;
}

/**
 * The sessions of an express-session deployment (the `legacy` option), taken over one by one as
 * their users come back: the request pipeline asks {@link presented} of a request without a
 * credential of this module, {@link take}s the old session out of its store, creates it here
 * under a new id, and clears the old cookie. The old id stays usable nowhere: its entry is gone
 * from the old store the moment it is taken.
 */
export class LegacySessions implements OnApplicationShutdown {
  private readonly verifier: LegacyCookieVerifier;
  private readonly cookie: CookieTransport;

  private constructor(
    options: ResolvedLegacyOptions,
    private readonly store: LegacyStore,
    private readonly logger: LoggerService,
  ) {
    this.verifier = new LegacyCookieVerifier(options.secrets);
    // Only name, path and domain tell a browser's cookies apart: the clearing header needs no more.
    const { name, path, domain } = options.cookie;
    this.cookie = new CookieTransport(
      { name, path, domain, httpOnly: true, secure: 'auto', sameSite: 'lax', partitioned: false },
      MAX_LEGACY_COOKIE_LENGTH,
    );
  }

  /** The old sessions of the `legacy` option, or null without one. */
  static async open(options: ResolvedSessionOptions, moduleStore: SessionStore): Promise<LegacySessions | null> {
    if (!options.legacy) return null;
    const logger = moduleLogger(options);
    return new LegacySessions(options.legacy, await openLegacyStore(options.legacy, moduleStore, () => logger), logger);
  }

  /** `'connect-redis'` or `'connect-pg-simple'`. */
  get kind(): string {
    return this.store.kind;
  }

  /**
   * The old session id the request's express-session cookie names, once a legacy secret is found
   * to have signed it; null when the request brings no such cookie. Costs no store access.
   */
  presented(req: SessionRequest): string | null {
    const value = this.cookie.read(cookieHeaderOf(req));
    return typeof value === 'string' ? this.verifier.open(value) : null;
  }

  /**
   * Takes the old session out of its store, in one step. Null when there is none to take over:
   * expired, taken by another request already, or unreadable (logged, and removed: no request
   * could ever use it). A store that fails rejects, and the entry stays where it was.
   */
  async take(id: string): Promise<LegacyTake | null> {
    const taken = await this.store.take(id).catch(storeFailure(this.store.kind, 'take'));
    if (!taken) return null;
    const key = hashSessionId(id);
    const reading = readLegacySession(taken.json);
    if ('problem' in reading) {
      this.logger.warn(SessionMessages.legacyUnreadable(key, reading.problem));
      return null;
    }
    return { key, fields: reading.fields, putBack: taken.putBack };
  }

  /** Clears express-session's cookie, with the path and domain it was set with. */
  clearCookie(req: SessionRequest, res: ServerResponse): void {
    appendSetCookie(res, this.cookie.clear(isSecureRequest(req)));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}
