import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Req } from '@nestjs/common';
import type { INestApplication, MiddlewareConsumer, NestMiddleware, NestModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { SessionModule } from '../../lib/index.js';
import type { SessionRequest } from '../../lib/pipeline/index.js';
import { closeAll, cookieHeader, createFixtureApp, dataOf, requireSid, SECRET, setCookieLine } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';
import { FixtureController } from '../fixtures/fixture.controller.js';
import { createPlatformApp } from '../fixtures/platforms.js';
import { httpAdapterFor } from '../../sample/http-platform.js';

/**
 * On Express the module mounts its middleware on the application itself (as
 * `app.use(session())` does) and keeps `req.session` and the response hold on that application's
 * own request and response prototypes. These are the behaviours that placement must keep.
 */
describe('the session on an Express application', () => {
  const apps: Array<FixtureApp | INestApplication> = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  /** Records what the application's own middleware saw of the session. */
  @Injectable()
  class SeenByMiddleware implements NestMiddleware {
    static seen: unknown[] = [];
    use(req: SessionRequest, _res: ServerResponse, next: () => void): void {
      SeenByMiddleware.seen.push(req.session?.userId);
      next();
    }
  }

  it("is loaded before the application's own Nest middleware runs", async () => {
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET })], controllers: [FixtureController], providers: [SeenByMiddleware] })
    class AppModule implements NestModule {
      configure(consumer: MiddlewareConsumer): void {
        consumer.apply(SeenByMiddleware).forRoutes('*');
      }
    }
    const app = await startExpress(AppModule);
    const cookie = requireSid(await request(app.getHttpServer()).post('/login').send({ userId: 'ann' }).expect(200));
    SeenByMiddleware.seen = [];

    await request(app.getHttpServer()).get('/read').set('Cookie', cookieHeader(cookie)).expect(200);

    expect(SeenByMiddleware.seen).toEqual(['ann']);
  });

  it('holds a response whose methods an earlier middleware replaced (as compression does) until the commit, and keeps that middleware working', async () => {
    const wrapped = await startWrapped();

    const res = await request(wrapped.getHttpServer()).post('/set').send({ a: 1 }).expect(200);

    expect(res.headers['x-wrapped']).toBe('yes');
    expect(setCookieLine(res)).toBeDefined();
    expect(res.body).toEqual({ ok: true });
    const cookie = requireSid(res);
    const read = await request(wrapped.getHttpServer()).get('/read').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(read.body.data).toEqual({ a: 1 });
  });

  it('keeps each application its own sessions, and gives an application without the module no req.session', async () => {
    const first = await createFixtureApp({ cookie: { name: 'first' } });
    const second = await createFixtureApp({ cookie: { name: 'second' }, secret: `${SECRET}-second` });
    apps.push(first, second);

    @Controller()
    class PlainController {
      @Get('probe')
      probe(@Req() req: SessionRequest): { hasSession: boolean } {
        return { hasSession: 'session' in req };
      }
    }
    @Module({ controllers: [PlainController] })
    class PlainModule {}
    const plain = await startExpress(PlainModule);

    const firstCookie = requireSid(await first.http().post('/set').send({ app: 'first' }).expect(200), 'first');
    const secondCookie = requireSid(await second.http().post('/set').send({ app: 'second' }).expect(200), 'second');

    expect(await dataOf(first, firstCookie, 'first')).toEqual({ app: 'first' });
    expect(await dataOf(second, secondCookie, 'second')).toEqual({ app: 'second' });
    // Each cookie means nothing to the other application.
    expect(await dataOf(second, firstCookie, 'second')).toEqual({});
    expect(await dataOf(first, secondCookie, 'first')).toEqual({});
    expect((await request(plain.getHttpServer()).get('/probe').expect(200)).body).toEqual({ hasSession: false });
  });

  async function startExpress(root: new () => unknown): Promise<INestApplication> {
    const moduleRef = await Test.createTestingModule({ imports: [root] }).compile();
    const app = await createPlatformApp(moduleRef, 'express');
    apps.push(app);
    return app;
  }

  /**
   * The fixture app, with a middleware registered before the module's that replaces `res.end` on
   * each response, as compression and on-headers do: it wraps whatever the session installs.
   */
  async function startWrapped(): Promise<INestApplication> {
    const moduleRef = await Test.createTestingModule({
      imports: [SessionModule.forRoot({ secret: SECRET })],
      controllers: [FixtureController],
    }).compile();
    const app = moduleRef.createNestApplication(await httpAdapterFor('express'), { logger: false });
    app.use((_req: unknown, res: ServerResponse, next: () => void) => {
      const end = res.end;
      res.end = function (this: ServerResponse, ...args: Parameters<typeof end>) {
        if (!res.headersSent) res.setHeader('x-wrapped', 'yes');
        return end.apply(this, args);
      } as typeof end;
      next();
    });
    await app.init();
    apps.push(app);
    return app;
  }
});
