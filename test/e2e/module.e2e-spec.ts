import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Body, Controller, Get, HttpCode, Module, Post, UseGuards } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import {
  AllowAnonymous,
  InjectSessionStore,
  MemoryStore,
  Session,
  SESSION_OPTIONS,
  SessionConfigError,
  SessionGuard,
  SessionModule,
  SessionService,
  SessionStore,
} from '../../lib/index.js';
import type { ResolvedSessionOptions, SessionModuleOptions } from '../../lib/index.js';
import {
  closeAll,
  ConfigModuleLike,
  ConfigServiceLike,
  cookieHeader,
  CountingStore,
  delay,
  PLATFORMS,
  requireSid,
  SECRET,
  SessionConfigFactory,
  SessionConfigFactoryModule,
  sessionOptionsFrom,
  startApp,
} from '../fixtures/index.js';
import type { FixtureApp, FixtureAppSetup, SessionBag } from '../fixtures/index.js';

/** Proves the module works end to end: a write gives a cookie that reads the write back. */
async function roundTrip(app: FixtureApp, cookieName = 'sid'): Promise<void> {
  const res = await app.http().post('/set').send({ probe: 42 }).expect(200);
  const cookie = requireSid(res, cookieName);
  const read = await app.http().get('/read').set('Cookie', cookieHeader(cookie, cookieName)).expect(200);
  expect(read.body.data).toEqual({ probe: 42 });
}

// ---- A feature module that never imports SessionModule ----------------------------------------

@Controller('feature')
class FeatureController {
  constructor(
    private readonly sessions: SessionService,
    @InjectSessionStore() private readonly store: SessionStore,
  ) {}

  @Get('mine')
  @UseGuards(SessionGuard)
  mine(@Session() session: Session) {
    return this.sessions.list(String((session as SessionBag).userId), session.id);
  }

  @Get('store')
  storeKind() {
    return { kind: this.store.kind };
  }
}

@Module({ controllers: [FeatureController] })
class FeatureModule {}

// ---- A store provided by another module --------------------------------------------------------

@Module({
  providers: [{ provide: CountingStore, useFactory: () => new CountingStore() }],
  exports: [CountingStore],
})
class StoreModule {}

// ---- Controllers for SessionGuard as APP_GUARD -------------------------------------------------

@Controller('app')
class GloballyGuardedController {
  @AllowAnonymous()
  @Post('login')
  @HttpCode(200)
  login(@Body() body: { userId: string }, @Session() session: Session) {
    (session as SessionBag).userId = body.userId;
    return { ok: true };
  }

  @Get('private')
  private(@Session('userId') userId: string) {
    return { userId };
  }

  @AllowAnonymous()
  @Get('public')
  public() {
    return { public: true };
  }
}

@AllowAnonymous()
@Controller('open')
class OpenController {
  @Get()
  open() {
    return { open: true };
  }
}

/** What compiling a module gives when start-up is expected to fail. */
async function startupError(root: DynamicModule): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({ imports: [root] }).compile();
    await moduleRef.close();
  } catch (error) {
    return error;
  }
  throw new Error('expected start-up to fail, but the module compiled');
}

describe.each(PLATFORMS)('SessionModule (%s)', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  async function start(root: DynamicModule, setup?: FixtureAppSetup): Promise<FixtureApp> {
    const app = await startApp(root, { ...setup, platform });
    apps.push(app);
    return app;
  }

  describe('forRoot', () => {
    it('serves sessions with the defaults filled in', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET }));

      await roundTrip(app);
      const options = app.moduleRef.get<ResolvedSessionOptions>(SESSION_OPTIONS);
      expect(options.cookie).toMatchObject({ name: 'sid', path: '/', httpOnly: true, secure: 'auto', sameSite: 'lax' });
      expect(options.idleTimeout).toBe(30 * 60_000);
      expect(options.absoluteTimeout).toBe(12 * 60 * 60_000);
      expect(options.saveUninitialized).toBe(false);
      expect(app.store).toBeInstanceOf(MemoryStore);
    });
  });

  describe('forRootAsync', () => {
    it('builds the options with useFactory, injecting a ConfigService from imported modules', async () => {
      const app = await start(
        SessionModule.forRootAsync({
          imports: [ConfigModuleLike],
          inject: [ConfigServiceLike],
          useFactory: (config: ConfigServiceLike) => sessionOptionsFrom(config),
        }),
      );

      await roundTrip(app, 'app_sid');
      expect(app.moduleRef.get<ResolvedSessionOptions>(SESSION_OPTIONS).idleTimeout).toBe(20 * 60_000);
    });

    it('accepts an async useFactory', async () => {
      const app = await start(
        SessionModule.forRootAsync({
          useFactory: async () => {
            await delay(10);
            return { secret: SECRET, cookie: { name: 'late_sid' } };
          },
        }),
      );

      await roundTrip(app, 'late_sid');
    });

    it('builds the options with useClass: a class whose create() returns them', async () => {
      const app = await start(
        SessionModule.forRootAsync({
          imports: [ConfigModuleLike],
          useClass: SessionConfigFactory,
        }),
      );

      await roundTrip(app, 'app_sid');
    });

    it('builds the options with useExisting: a factory provided by another module', async () => {
      const app = await start(
        SessionModule.forRootAsync({
          imports: [SessionConfigFactoryModule],
          useExisting: SessionConfigFactory,
        }),
      );

      await roundTrip(app, 'app_sid');
    });

    it('uses a custom store provided through DI by another module, and sends it the writes', async () => {
      const app = await start(
        SessionModule.forRootAsync({
          imports: [StoreModule],
          inject: [CountingStore],
          useFactory: (store: CountingStore): SessionModuleOptions => ({ secret: SECRET, store }),
        }),
      );
      const store = app.moduleRef.get(CountingStore);

      await roundTrip(app);

      // The module's view of it (sealed at rest, see sealedAtRest()) is the same store to everything else.
      expect(app.moduleRef.get(SessionStore)).toBeInstanceOf(CountingStore);
      expect(app.moduleRef.get(SessionStore).kind).toBe(store.kind);
      expect(store.calls.create).toBe(1);
      expect(store.calls.get).toBe(1);
    });
  });

  describe('isGlobal', () => {
    it('is global by default: SessionGuard, SessionService and SessionStore are injectable in a module that does not import SessionModule', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET }), { imports: [FeatureModule] });

      await app.http().get('/feature/mine').expect(401);
      const cookie = requireSid(await app.http().post('/login').send({ userId: 'u1' }).expect(200));
      const mine = await app.http().get('/feature/mine').set('Cookie', cookieHeader(cookie)).expect(200);
      expect(mine.body).toEqual([expect.objectContaining({ current: true })]);
      await app.http().get('/feature/store').expect(200, { kind: 'memory' });
    });

    it('is global by default with forRootAsync too', async () => {
      const app = await start(SessionModule.forRootAsync({ useFactory: () => ({ secret: SECRET }) }), {
        imports: [FeatureModule],
      });

      await app.http().get('/feature/store').expect(200, { kind: 'memory' });
    });

    it.each([
      ['forRoot', () => SessionModule.forRoot({ secret: SECRET, isGlobal: false })],
      ['forRootAsync', () => SessionModule.forRootAsync({ isGlobal: false, useFactory: () => ({ secret: SECRET }) })],
    ])('with isGlobal: false (%s), is not injectable in a module that does not import it', async (_name, root) => {
      const compiling = Test.createTestingModule({ imports: [root(), FeatureModule] }).compile();

      await expect(compiling).rejects.toThrow(/can't resolve dependencies[\s\S]*is available in the FeatureModule/);
    });

    it('with isGlobal: false, still serves sessions and exports its providers to the importing module', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET, isGlobal: false }));

      await roundTrip(app);
      expect(app.moduleRef.get(SessionService)).toBeInstanceOf(SessionService);
    });
  });

  describe('start-up validation', () => {
    const badOptions: Array<[string, Record<string, unknown>, RegExp]> = [
      ['a short secret', { secret: 'too-short' }, /"secret" must be at least 32 characters/],
      ['a missing secret', {}, /"secret" is required/],
      ['a bad idleTimeout', { secret: SECRET, idleTimeout: 'soon' }, /"idleTimeout"/],
      ['an unknown option', { secret: SECRET, idelTimeout: '5m' }, /"idelTimeout" is not a known option/],
      ['a bad cookie.sameSite', { secret: SECRET, cookie: { sameSite: 'sometimes' } }, /"cookie\.sameSite"/],
      ['an unknown store type', { secret: SECRET, store: { type: 'mongo' } }, /"store\.type"/],
      ['a bad store.maxSessions', { secret: SECRET, store: { type: 'memory', maxSessions: 0 } }, /"store\.maxSessions"/],
    ];

    it.each(badOptions)('fails forRoot with %s, with a SessionConfigError naming the option', async (_case, options, message) => {
      const error = await startupError(SessionModule.forRoot(options as unknown as SessionModuleOptions));

      expect(error).toBeInstanceOf(SessionConfigError);
      expect((error as Error).message).toMatch(message);
    });

    it.each(badOptions)('fails forRootAsync (useFactory) with %s, alike', async (_case, options, message) => {
      const error = await startupError(SessionModule.forRootAsync({ useFactory: () => options as unknown as SessionModuleOptions }));

      expect(error).toBeInstanceOf(SessionConfigError);
      expect((error as Error).message).toMatch(message);
    });

    it('fails forRootAsync (useClass) with a bad option, alike', async () => {
      class BadOptionsFactory {
        create(): SessionModuleOptions {
          return { secret: SECRET, absoluteTimeout: 'never' };
        }
      }

      const error = await startupError(SessionModule.forRootAsync({ useClass: BadOptionsFactory }));

      expect(error).toBeInstanceOf(SessionConfigError);
      expect((error as Error).message).toMatch(/"absoluteTimeout"/);
    });
  });

  describe('SessionGuard as APP_GUARD', () => {
    const setup: FixtureAppSetup = {
      controllers: [GloballyGuardedController, OpenController],
      providers: [{ provide: APP_GUARD, useClass: SessionGuard }],
    };

    it('answers 401 on every route that is not exempt, until the session is signed in', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET }), setup);

      const denied = await app.http().get('/app/private').expect(401);
      expect(denied.body).toMatchObject({ statusCode: 401 });
      const cookie = requireSid(await app.http().post('/app/login').send({ userId: 'u9' }).expect(200));
      await app.http().get('/app/private').set('Cookie', cookieHeader(cookie)).expect(200, { userId: 'u9' });
    });

    it('lets anyone through a route marked @AllowAnonymous()', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET }), setup);

      await app.http().get('/app/public').expect(200, { public: true });
    });

    it('lets anyone through a controller marked @AllowAnonymous()', async () => {
      const app = await start(SessionModule.forRoot({ secret: SECRET }), setup);

      await app.http().get('/open').expect(200, { open: true });
    });
  });

  describe('shutdown', () => {
    class ShutdownCountingStore extends MemoryStore {
      shutdowns = 0;

      override onApplicationShutdown(): void {
        this.shutdowns += 1;
        super.onApplicationShutdown();
      }
    }

    it("calls the store's onApplicationShutdown on app.close()", async () => {
      const store = new ShutdownCountingStore();
      const app = await startApp(SessionModule.forRoot({ secret: SECRET, store }), { platform });

      expect(store.shutdowns).toBe(0);
      await app.close();

      expect(store.shutdowns).toBe(1);
    });

    it('stops the sweeper of the memory store it built from a config object', async () => {
      const app = await startApp(SessionModule.forRoot({ secret: SECRET, store: { type: 'memory', sweepInterval: 50 } }), { platform });
      const store = app.store as MemoryStore;
      const expiringSoon = (id: string) => {
        const now = Date.now();
        return { id, data: {}, createdAt: now, lastSeenAt: now, expiresAt: now + 20, userId: null };
      };

      // While the app runs, the sweeper reclaims expired sessions by itself…
      await store.create(expiringSoon('a'.repeat(43)));
      await delay(200);
      expect(store.size).toBe(0);

      // …and once the app is closed, it no longer runs.
      await app.close();
      await store.create(expiringSoon('b'.repeat(43)));
      await delay(200);
      expect(store.size).toBe(1);
    });
  });
});
