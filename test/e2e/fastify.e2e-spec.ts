import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Post, HttpCode, Req } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyRequest } from 'fastify';
import request from 'supertest';
import { Session, SessionModule } from '../../lib/index.js';
import type { SessionObject } from '../../lib/index.js';
import { cookieHeader, requireSid, SECRET } from '../fixtures/index.js';
import { RecordingLogger } from '../support/recording-logger.js';

/**
 * What only Fastify has: its own request object beside Node's. The session is on both, so
 * Fastify code reads `request.session` as Express code reads `req.session`; and a `session`
 * another plugin already put there is left alone, with a warning.
 */

declare module '../../lib/index.js' {
  interface SessionData {
    color?: string;
  }
}

@Controller()
class FastifyRequestController {
  /** Writes through Fastify's request. */
  @Post('color')
  @HttpCode(200)
  paint(@Req() request: FastifyRequest) {
    // Typed by the package itself: no cast, no declaration of the application's own.
    request.session.color = 'green';
    return { ok: true };
  }

  /** Writes through the decorator. */
  @Post('color-by-decorator')
  @HttpCode(200)
  paintByDecorator(@Session() session: SessionObject) {
    session.color = 'blue';
    return { ok: true };
  }

  /** Reads through Fastify's request, and through the decorator, to compare. */
  @Get('color')
  color(@Req() request: FastifyRequest, @Session() session: SessionObject) {
    // Another plugin's request.session may be anything, even null (the last case below).
    return { fromRequest: request.session?.color ?? null, fromDecorator: session.color ?? null, same: request.session === session };
  }
}

describe('on Fastify', () => {
  let app: NestFastifyApplication | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(adapter: FastifyAdapter, logger?: RecordingLogger): Promise<NestFastifyApplication> {
    const moduleRef = await Test.createTestingModule({
      imports: [SessionModule.forRoot({ secret: SECRET, ...(logger && { logger }) })],
      controllers: [FastifyRequestController],
    }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(adapter, { logger: false });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    return app;
  }

  it("gives Fastify's request the session: request.session is what @Session() gives, and writes through it are stored", async () => {
    const started = await start(new FastifyAdapter());

    const cookie = requireSid(await request(started.getHttpServer()).post('/color').expect(200));

    const res = await request(started.getHttpServer()).get('/color').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(res.body).toEqual({ fromRequest: 'green', fromDecorator: 'green', same: true });
  });

  it("leaves another plugin's request.session alone, says so in a warning, and @Session() still works", async () => {
    const adapter = new FastifyAdapter();
    // What a session plugin such as @fastify/session does at registration (its own type for
    // request.session, which this package's typing of it does not know).
    adapter.getInstance().decorateRequest('session', null as never);
    const logger = new RecordingLogger();
    const started = await start(adapter, logger);

    const cookie = requireSid(await request(started.getHttpServer()).post('/color-by-decorator').expect(200));

    const res = await request(started.getHttpServer()).get('/color').set('Cookie', cookieHeader(cookie)).expect(200);
    expect(res.body).toEqual({ fromRequest: null, fromDecorator: 'blue', same: false });
    expect(logger.warnings).toEqual([expect.stringMatching(/Fastify requests already have a "session" property.*@Session\(\)/)]);
  });
});
