import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { SESSION_TOKEN_HEADER } from '../../lib/index.js';
import { AppModule } from '../../sample/app.module.js';
import { createPlatformApp, PLATFORMS } from '../fixtures/platforms.js';

const SECRET = 'sample-bearer-secret-0123456789abcdef';

/**
 * The sample's Bearer flow (SESSION_TRANSPORT=header): sign in, use the token, sign out. With
 * signed-id tokens, JWT tokens (SESSION_TOKEN_FORMAT=jwt) and the cookie store's sealed tokens.
 */
describe.each(PLATFORMS)('on %s', (platform) => {
  describe.each([
    { format: 'signed-id tokens', env: {}, revocable: true },
    { format: 'JWT tokens (SESSION_TOKEN_FORMAT=jwt)', env: { SESSION_TOKEN_FORMAT: 'jwt' }, revocable: true },
    { format: 'sealed tokens (SESSION_STORE=cookie)', env: { SESSION_STORE: 'cookie' }, revocable: false },
  ])('sample application with SESSION_TRANSPORT=header and $format', ({ env, revocable }) => {
    let app: INestApplication;
    const http = () => request(app.getHttpServer());

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [AppModule.forEnv({ SESSION_SECRET: SECRET, SESSION_TRANSPORT: 'header', ...env })],
      }).compile();
      app = await createPlatformApp(moduleRef, platform);
    });

    afterAll(async () => {
      await app?.close();
    });

    it(`signs in and serves GET /profile to the bearer token; after logout the token is ${revocable ? 'unusable' : 'dropped by the client (a stateless token cannot be revoked)'}`, async () => {
      const login = await http().post('/auth/login').send({ username: 'bearer-ann', password: 'demo' }).expect(200);
      const token = login.headers[SESSION_TOKEN_HEADER.toLowerCase()] as string;
      expect(token).toBeTruthy();
      expect(login.headers['set-cookie']).toBeUndefined();

      await http().get('/profile').set('Authorization', `Bearer ${token}`).expect(200, { userId: 'bearer-ann' });
      await http().get('/profile').expect(401);
      const logout = await http().post('/auth/logout').set('Authorization', `Bearer ${token}`).expect(204);
      // An empty token tells the client to drop the one it holds.
      expect(logout.headers[SESSION_TOKEN_HEADER.toLowerCase()]).toBe('');
      await http()
        .get('/profile')
        .set('Authorization', `Bearer ${token}`)
        .expect(revocable ? 401 : 200);
    });
  });
});
