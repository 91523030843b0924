import { Injectable } from '@nestjs/common';
import type { LoggerService } from '@nestjs/common';
import { InjectSessionOptions } from './session.constants.js';
import { SessionMessages } from './session.errors.js';
import { moduleLogger } from './session.options.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionStore } from './stores/session-store.js';
import { withinTime } from './stores/index.js';

/** What the indicator reports beside its status. */
export interface SessionHealthDetails {
  /** The store type: `memory`, `file`, `redis`, `postgres`, `cookie` or a custom store's `kind`. */
  store: string;
  /** How long the ping took (until it failed, when down), in milliseconds. */
  latencyMs: number;
  /** Down only: `'SESSION_STORE_UNAVAILABLE'`. */
  code?: string;
  /**
   * Down only: that the ping failed, or timed out. Never the driver's own error, which can name
   * hosts and ports: a health endpoint is often public. That goes to the log.
   */
  message?: string;
}

/**
 * What the indicator answers: terminus's `HealthIndicatorResult<Key>`, written out here so that
 * neither the JavaScript nor the published declarations import terminus, an optional peer.
 */
export type SessionHealthResult<Key extends string = 'session'> = Record<Key, { status: 'up' | 'down' } & SessionHealthDetails>;

/**
 * A `@nestjs/terminus` health indicator for the session store: up when the store answers a ping
 * within the module's `storeTimeout`, down otherwise, with the store type and the latency.
 * A down result makes terminus's `HealthCheckService.check()` answer 503.
 *
 * Needs nothing from terminus at run time: it returns the result object terminus expects.
 *
 * @example
 * ```ts
 * @Controller('health')
 * export class HealthController {
 *   constructor(private readonly health: HealthCheckService, private readonly session: SessionHealthIndicator) {}
 *
 *   @Get()
 *   @HealthCheck()
 *   check() {
 *     return this.health.check([() => this.session.isHealthy()]);
 *   }
 * }
 * // 200 { status: 'ok', info: { session: { status: 'up', store: 'redis', latencyMs: 0.42 } }, … }
 * ```
 */
@Injectable()
export class SessionHealthIndicator {
  private readonly timeout: number;
  private readonly logger: LoggerService;

  constructor(
    private readonly store: SessionStore,
    @InjectSessionOptions() options: ResolvedSessionOptions,
  ) {
    this.timeout = options.storeTimeout;
    this.logger = moduleLogger(options);
  }

  /** Pings the store; `key` names the result in terminus's report. */
  async isHealthy<Key extends string = 'session'>(key: Key = 'session' as Key): Promise<SessionHealthResult<Key>> {
    const started = performance.now();
    const latencyMs = (): number => Math.round((performance.now() - started) * 100) / 100;
    const store = this.store.kind;
    const timedOut = new Error(SessionMessages.pingTimeout(this.timeout));
    try {
      await withinTime(this.store.ping(), this.timeout, () => timedOut);
    } catch (error) {
      this.logger.warn(SessionMessages.storePingFailed(store, error instanceof Error ? error.message : String(error)));
      const message = SessionMessages.storePingFailed(store, error === timedOut ? timedOut.message : undefined);
      return result(key, 'down', { store, latencyMs: latencyMs(), code: 'SESSION_STORE_UNAVAILABLE', message });
    }
    return result(key, 'up', { store, latencyMs: latencyMs() });
  }
}

function result<Key extends string>(key: Key, status: 'up' | 'down', details: SessionHealthDetails): SessionHealthResult<Key> {
  const report = {} as SessionHealthResult<Key>;
  report[key] = { status, ...details };
  return report;
}
