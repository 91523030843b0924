import { Module } from '@nestjs/common';
import type { MiddlewareConsumer, NestModule } from '@nestjs/common';
import { SESSION_OPTIONS } from './session.constants.js';
import { SessionCredentials } from './session.credentials.js';
import { SessionEvents } from './session.events.js';
import { SessionGuard } from './session.guard.js';
import { SessionMiddleware } from './session.middleware.js';
import { SESSION_MODULE_OPTIONS, SessionConfigurableModule } from './session.module-definition.js';
import { resolveSessionOptions } from './session.options.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { createSessionStore, SessionStore } from './stores/index.js';

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
    {
      provide: SessionStore,
      inject: [SESSION_OPTIONS],
      useFactory: async (options: ResolvedSessionOptions) => {
        const store = await createSessionStore(options.store, options.secrets);
        if (options.logger) store.useLogger(options.logger);
        return store;
      },
    },
    { provide: SessionCredentials, inject: [SESSION_OPTIONS, SessionStore], useFactory: SessionCredentials.create },
    SessionEvents,
    SessionMiddleware,
    SessionGuard,
    SessionService,
  ],
  exports: [SESSION_OPTIONS, SessionStore, SessionGuard, SessionService, SessionEvents],
})
export class SessionModule extends SessionConfigurableModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(SessionMiddleware).forRoutes('*');
  }
}
