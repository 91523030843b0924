import { Inject, Module } from '@nestjs/common';
import type { MiddlewareConsumer, NestModule, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { SESSION_METRICS, SESSION_OPTIONS } from './session.constants.js';
import { SessionCredentials, SessionMiddleware, exposeSessionOnPlatform, mountOnPlatform } from './pipeline/index.js';
import { LegacySessions } from './legacy/index.js';
import { SessionEvents } from './session.events.js';
import { SessionGuard } from './session.guard.js';
import { SessionHealthIndicator } from './session.health.js';
import { SessionMetrics } from './session.metrics.js';
import { SESSION_MODULE_OPTIONS, SessionConfigurableModule } from './session.module-definition.js';
import { moduleLogger, resolveSessionOptions } from './session.options.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { createSessionStore, sealedAtRest, SessionStore } from './stores/index.js';

/**
 * Server-side sessions: loads the session of every request, exposes it as `@Session()` and
 * `req.session`, and commits what changed before the response is sent.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [
 *     SessionModule.forRootAsync({
 *       inject: [ConfigService],
 *       useFactory: (config: ConfigService) => ({ secret: config.getOrThrow('SESSION_SECRET') }),
 *     }),
 *   ],
 * })
 * export class AppModule {}
 * ```
 */
@Module({
  providers: [
    // Validation runs here, so forRoot and every forRootAsync flavour fail start-up alike.
    { provide: SESSION_OPTIONS, inject: [SESSION_MODULE_OPTIONS], useFactory: resolveSessionOptions },
    // null with metrics off: then prom-client is never loaded, and nothing below is wrapped or listened to.
    {
      provide: SESSION_METRICS,
      inject: [SESSION_OPTIONS],
      useFactory: (options: ResolvedSessionOptions) => (options.metrics ? SessionMetrics.create(options.metrics) : null),
    },
    {
      provide: SessionStore,
      inject: [SESSION_OPTIONS, SESSION_METRICS],
      useFactory: async (options: ResolvedSessionOptions, metrics: SessionMetrics | null) => {
        const created = await createSessionStore(options.store, options.secrets);
        if (options.logger) created.useLogger(options.logger);
        // A sealing store (the cookie store) keeps nothing on a server: nothing to seal at rest.
        const store = created.sealsSessions ? created : sealedAtRest(created, options.encryptionKeys, moduleLogger(options));
        return metrics ? metrics.instrument(store) : store;
      },
    },
    { provide: SessionCredentials, inject: [SESSION_OPTIONS, SessionStore], useFactory: SessionCredentials.create },
    // null without the `legacy` option: then no old cookie is looked for, and no driver is touched.
    { provide: LegacySessions, inject: [SESSION_OPTIONS, SessionStore], useFactory: LegacySessions.open },
    {
      provide: SessionEvents,
      inject: [SessionStore, SESSION_OPTIONS, SESSION_METRICS],
      useFactory: (store: SessionStore, options: ResolvedSessionOptions, metrics: SessionMetrics | null) => {
        const events = new SessionEvents(store, options);
        metrics?.countEvents(events, store);
        return events;
      },
    },
    SessionMiddleware,
    SessionGuard,
    SessionService,
    SessionHealthIndicator,
  ],
  exports: [SESSION_OPTIONS, SessionStore, SessionGuard, SessionService, SessionEvents, SessionHealthIndicator],
})
export class SessionModule extends SessionConfigurableModule implements NestModule, OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
    private readonly middleware: SessionMiddleware,
  ) {
    super();
  }

  configure(consumer: MiddlewareConsumer): void {
    // Every request, as early as the platform allows: on Express straight on the application.
    if (!mountOnPlatform(this.adapterHost.httpAdapter, this.middleware)) consumer.apply(SessionMiddleware).forRoutes('*');
  }

  onModuleInit(): void {
    // No HTTP adapter in a standalone application context: nothing to expose there.
    const warning = exposeSessionOnPlatform(this.adapterHost.httpAdapter);
    if (warning) moduleLogger(this.options).warn(warning);
  }
}
