import { Injectable } from '@nestjs/common';
import { maskSessionId } from './crypto/index.js';
import { InjectSessionOptions } from './session.decorators.js';
import { toHttpException } from './session.errors.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { boundStoreCalls } from './stores/bounded-store.js';
import { SessionStore } from './stores/session-store.js';

/** One of a user's live sessions, as shown to that user. */
export interface UserSessionView {
  /** A masked id: enough to tell sessions apart, never enough to use one. */
  id: string;
  createdAt: string;
  lastSeenAt: string;
  current: boolean;
}

/**
 * Lists and revokes sessions through the store's per-user index.
 *
 * @example
 * ```ts
 * @Delete('auth/sessions')
 * revokeOthers(@Session() session: Session) {
 *   return this.sessions.revokeOthers(session.userId!, session.id);
 * }
 * ```
 */
@Injectable()
export class SessionService {
  private readonly store: SessionStore;

  constructor(store: SessionStore, @InjectSessionOptions() options: ResolvedSessionOptions) {
    this.store = boundStoreCalls(store, options.storeTimeout);
  }

  /** The user's live sessions, oldest first, marking the one with `currentId`. */
  async listForUser(userId: string, currentId?: string): Promise<UserSessionView[]> {
    const sessions = await this.call(() => this.store.listByUser(userId));
    return sessions.map((s) => ({
      id: maskSessionId(s.id),
      createdAt: new Date(s.createdAt).toISOString(),
      lastSeenAt: new Date(s.lastSeenAt).toISOString(),
      current: s.id === currentId,
    }));
  }

  /** Destroys every session of the user except `currentId` ("log out everywhere else"). */
  async revokeOthers(userId: string, currentId: string): Promise<{ revoked: number }> {
    return { revoked: await this.call(() => this.store.destroyByUser(userId, currentId)) };
  }

  /** Destroys every session of the user. */
  async revokeAll(userId: string): Promise<{ revoked: number }> {
    return { revoked: await this.call(() => this.store.destroyByUser(userId)) };
  }

  /** Store failures answer 503 to the request that asked, as everywhere in the module. */
  private call<T>(operation: () => Promise<T>): Promise<T> {
    return operation().catch((error: unknown) => Promise.reject(toHttpException(error, this.store.kind)));
  }
}
