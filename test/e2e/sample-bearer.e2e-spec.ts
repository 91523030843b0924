import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { SESSION_TOKEN_HEADER } from '../../lib/index.js';
import { AppModule } from '../../sample/app.module.js';

/** The sample's Bearer flow (SESSION_TRANSPORT=header): sign in, use the token, sign out. */
describe('sample application with SESSION_TRANSPORT=header', () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forEnv({ SESSION_SECRET: 'sample-bearer-secret-0123456789abcdef', SESSION_TRANSPORT: 'header' })],
    }).compile();
    app = moduleRef.createNestApplication();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
  });

  it('signs in, serves GET /profile to the bearer token, and makes the token unusable after logout', async () => {
    const http = () => request(app.getHttpServer());
    const login = await http().post('/auth/login').send({ username: 'bearer-ann', password: 'demo' }).expect(200);
    const token = login.headers[SESSION_TOKEN_HEADER.toLowerCase()] as string;
    expect(token).toBeTruthy();
    expect(login.headers['set-cookie']).toBeUndefined();

    await http().get('/profile').set('Authorization', `Bearer ${token}`).expect(200, { userId: 'bearer-ann' });
    await http().get('/profile').expect(401);
    await http().post('/auth/logout').set('Authorization', `Bearer ${token}`).expect(204);
    await http().get('/profile').set('Authorization', `Bearer ${token}`).expect(401);
  });
});
