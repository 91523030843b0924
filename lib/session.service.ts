import { Injectable } from '@nestjs/common';
import { InjectSessionOptions } from './session.constants.js';
import { toHttpException } from './session.errors.js';
import { SessionEvents } from './session.events.js';
import type { SessionEventListener, SessionEventType } from './session.events.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { boundStoreCalls } from './stores/bounded-store.js';
import { assertUserIdKeepable, SessionStore } from './stores/session-store.js';
import type { SessionSummary } from './stores/session-store.js';

/** One of a user's live sessions, as shown to that user. */
export interface UserSessionView {
  /**
   * The session's hashed id (`hashSessionId()`): enough to tell sessions apart and to revoke one
   * with {@link SessionService.revoke}, never enough to use one.
   */
  id: string;
  createdAt: string;
  lastSeenAt: string;
  /** True for the session of the request that asked. */
  current: boolean;
  /** With `recordClient: true`: the user agent of the request that signed the session in. */
  userAgent?: string;
  /** With `recordClient: true`: the IP address of the request that signed the session in. */
  ip?: string;
}

/**
 * A user's sessions, on every node: list, count and revoke them through the store's per-user
 * index, and listen to what happens to sessions (`on('created' | 'rotated' | 'destroyed' |
 * 'expired' | 'revoked', listener)`).
 *
 * A revoked session is gone from the store, so its next request, on any node, is anonymous (a
 * `SessionGuard` answers 401).
 *
 * @example
 * ```ts
 * @Delete('auth/sessions')
 * @UseGuards(SessionGuard)
 * revokeOthers(@Session() session: SessionObject) {
 *   return this.sessions.revokeOthers(session.userId!, session.id);
 * }
 *
 * onModuleInit() {
 *   this.sessions.on('revoked', (event) => this.audit.record(event.userId, event.sessionId));
 * }
 * ```
 */
@Injectable()
export class SessionService {
  private readonly store: SessionStore;

  constructor(
    store: SessionStore,
    @InjectSessionOptions() options: ResolvedSessionOptions,
    private readonly events: SessionEvents,
  ) {
    this.store = boundStoreCalls(store, options.storeTimeout);
  }

  /** The user's live sessions, oldest first, marking the one whose (raw) id is `currentId`. */
  async list(userId: string, currentId?: string): Promise<UserSessionView[]> {
    const sessions = await this.sessionsOf(userId);
    const currentKey = currentId === undefined ? undefined : this.store.keyOf(currentId);
    return sessions.map((s) => ({
      id: s.id,
      createdAt: new Date(s.createdAt).toISOString(),
      lastSeenAt: new Date(s.lastSeenAt).toISOString(),
      current: s.id === currentKey,
      ...(s.client?.userAgent === undefined ? {} : { userAgent: s.client.userAgent }),
      ...(s.client?.ip === undefined ? {} : { ip: s.client.ip }),
    }));
  }

  /** How many live sessions the user has. */
  async count(userId: string): Promise<number> {
    return (await this.sessionsOf(userId)).length;
  }

  /**
   * Ends one of the user's sessions, named by the hashed id {@link list} shows. A hash that names
   * none of this user's live sessions revokes nothing: one user cannot end another's session.
   */
  async revoke(userId: string, sessionId: string): Promise<{ revoked: number }> {
    const sessions = await this.sessionsOf(userId);
    const target = sessions.find((s) => s.id === sessionId);
    if (!target) return { revoked: 0 };
    await this.call(() => this.store.destroy(target.id));
    this.events.emit('revoked', target.id, userId, 'revoked');
    return { revoked: 1 };
  }

  /** Ends every session of the user except `currentId` (a raw id): "log out everywhere else". */
  async revokeOthers(userId: string, currentId: string): Promise<{ revoked: number }> {
    return this.revokeWhere(userId, currentId);
  }

  /** Ends every session of the user. */
  async revokeAll(userId: string): Promise<{ revoked: number }> {
    return this.revokeWhere(userId);
  }

  /** Listens to one kind of session event, on this node. @see SessionEvents for the delivery rules. */
  on(type: SessionEventType, listener: SessionEventListener): this {
    this.events.on(type, listener);
    return this;
  }

  /** Stops a listener added with {@link on}. */
  off(type: SessionEventType, listener: SessionEventListener): this {
    this.events.off(type, listener);
    return this;
  }

  /**
   * The user's live sessions from the store. A user id no store can keep exactly is refused
   * first (a 400), whatever the store: a custom one might not check it.
   */
  private sessionsOf(userId: string): Promise<SessionSummary[]> {
    assertUserIdKeepable(userId);
    return this.call(() => this.store.listByUser(userId));
  }

  private async revokeWhere(userId: string, exceptId?: string): Promise<{ revoked: number }> {
    assertUserIdKeepable(userId);
    const exceptKey = exceptId === undefined ? undefined : this.store.keyOf(exceptId);
    const ids = await this.call(() => this.store.destroyByUser(userId, exceptKey));
    for (const id of ids) this.events.emit('revoked', id, userId, 'revoked');
    return { revoked: ids.length };
  }

  /** Store failures answer 503 to the request that asked, as everywhere in the module. */
  private call<T>(operation: () => Promise<T>): Promise<T> {
    return operation().catch((error: unknown) => Promise.reject(toHttpException(error)));
  }
}
