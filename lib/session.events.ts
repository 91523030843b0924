import { Injectable } from '@nestjs/common';
import type { LoggerService, OnApplicationShutdown } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { InjectSessionOptions } from './session.constants.js';
import { moduleLogger } from './session.options.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionStore } from './stores/session-store.js';
import type { ExpiredSession } from './stores/session-store.js';

/**
 * What can happen to a session. `migrated`: a session of the express-session deployment named by
 * the `legacy` option was taken over (it follows the `created` of the session that holds it now).
 */
export type SessionEventType = 'created' | 'rotated' | 'destroyed' | 'expired' | 'revoked' | 'migrated';

/**
 * One thing that happened to one session. Ids are hashed (`hashSessionId()`): the key the store
 * keeps the session under, the same one `SessionService.list()` shows, never a usable id.
 */
export interface SessionEvent {
  type: SessionEventType;
  /** The hashed id of the session (for `rotated` and `migrated`, its new id). */
  sessionId: string;
  /** The signed-in user of the session when it happened, or null. */
  userId: string | null;
  /**
   * `rotated`: the hashed id the session had before. `migrated`: the express-session id it had,
   * hashed the same way.
   */
  previousSessionId?: string;
  /**
   * `revoked` only: `'revoked'` by `SessionService`, or `'evicted'` by `maxSessionsPerUser` when
   * the user signed in once more.
   */
  reason?: 'revoked' | 'evicted';
  /** When it happened, ms since the epoch. */
  at: number;
}

export type SessionEventListener = (event: SessionEvent) => void;

/**
 * The in-process event bus of the module: the request pipeline and `SessionService` report
 * here what they did, the store reports the expiries it finds, and the application listens
 * through `SessionService.on()`.
 *
 * Delivery: `created`, `rotated`, `destroyed` and `revoked` are emitted on the node that did it,
 * once the store has acknowledged it. `expired` is emitted on the one node whose store
 * reclaimed the session (see the store's `watchExpiry()`), and only while that node has an
 * `expired` listener. Listeners run synchronously; one that throws is logged and does not
 * affect the request or the other listeners.
 */
@Injectable()
export class SessionEvents implements OnApplicationShutdown {
  private readonly emitter = new EventEmitter();
  private readonly logger: LoggerService;
  private stopWatchingExpiry: (() => void) | undefined;

  constructor(
    private readonly store: SessionStore,
    @InjectSessionOptions() options: ResolvedSessionOptions,
  ) {
    this.logger = moduleLogger(options);
    // Listeners are the application's: as many as it likes, without Node's leak warning.
    this.emitter.setMaxListeners(0);
  }

  on(type: SessionEventType, listener: SessionEventListener): void {
    this.emitter.on(type, listener);
    // The store watches expiries only while somebody listens: a Redis subscription is not free.
    if (type === 'expired' && !this.stopWatchingExpiry) {
      this.stopWatchingExpiry = this.store.watchExpiry((expired) => this.expired(expired));
    }
  }

  off(type: SessionEventType, listener: SessionEventListener): void {
    this.emitter.off(type, listener);
    if (type === 'expired' && this.emitter.listenerCount('expired') === 0) this.stopExpiryWatch();
  }

  /** Reports what happened to the session with this key (its hashed id, as the store knows it). */
  emit(type: Exclude<SessionEventType, 'rotated' | 'migrated'>, key: string, userId: string | null, reason?: SessionEvent['reason']): void {
    this.deliver({ type, sessionId: key, userId, ...(reason ? { reason } : {}), at: Date.now() });
  }

  /** The session now kept under `key` was kept under `previousKey` before: a new id, or a session taken over. */
  moved(type: 'rotated' | 'migrated', previousKey: string, key: string, userId: string | null): void {
    this.deliver({ type, sessionId: key, previousSessionId: previousKey, userId, at: Date.now() });
  }

  onApplicationShutdown(): void {
    this.stopExpiryWatch();
    this.emitter.removeAllListeners();
  }

  private expired({ id, userId }: ExpiredSession): void {
    this.emit('expired', id, userId);
  }

  private stopExpiryWatch(): void {
    this.stopWatchingExpiry?.();
    this.stopWatchingExpiry = undefined;
  }

  private deliver(event: SessionEvent): void {
    for (const listener of this.emitter.listeners(event.type) as SessionEventListener[]) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error(`A "${event.type}" session event listener threw: ${String(error)}`);
      }
    }
  }
}
