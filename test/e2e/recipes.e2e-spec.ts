import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Module } from '@nestjs/common';
import type { Type } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { plainToInstance } from 'class-transformer';
import { IsIn, IsOptional, IsString, MinLength, validateSync } from 'class-validator';
import { SessionModule } from '../../lib/index.js';
import type { SessionModuleOptions } from '../../lib/index.js';
import { closeAll, cookieHeader, createFixtureApp, dataOf, PLATFORMS, requireSid, SECRET, startApp } from '../fixtures/index.js';
import type { FixtureApp } from '../fixtures/index.js';

/**
 * The README's recipes, run as written there (on both platforms): ConfigModule with a validated
 * environment, and what a client of an express-session app brings. The TLS-terminating proxy
 * recipe's settings are pipeline.e2e-spec's "trust proxy" cases.
 */

// ---- Recipe: ConfigModule with env validation (README "Recipes") ---------------------------

class Env {
  @IsString()
  @MinLength(32)
  SESSION_SECRET!: string;

  @IsOptional()
  @IsIn(['memory', 'redis'])
  SESSION_STORE?: 'memory' | 'redis';

  @IsOptional()
  @IsString()
  REDIS_URL?: string;
}

function validate(config: Record<string, unknown>): Env {
  const env = plainToInstance(Env, config);
  const errors = validateSync(env);
  if (errors.length > 0) {
    throw new Error(`Invalid environment: ${errors.flatMap((error) => Object.values(error.constraints ?? {})).join('; ')}`);
  }
  return env;
}

/**
 * The recipe's AppModule. Built in a function because `ConfigModule.forRoot()` reads and
 * validates the environment when it is called, i.e. when an application declares its module;
 * a bad one fails the application's start-up.
 */
function recipeAppModule(): Type<unknown> {
  @Module({
    imports: [
      ConfigModule.forRoot({ validate, ignoreEnvFile: true }),
      SessionModule.forRootAsync({
        imports: [ConfigModule],
        inject: [ConfigService],
        useFactory: (config: ConfigService<Env, true>): SessionModuleOptions => ({
          secret: config.get('SESSION_SECRET', { infer: true }),
          store:
            config.get('SESSION_STORE', { infer: true }) === 'redis'
              ? { type: 'redis', url: config.get('REDIS_URL', { infer: true }) }
              : { type: 'memory' },
        }),
      }),
    ],
  })
  class AppModule {}
  return AppModule;
}

/** Runs `body` with these environment variables set, and puts the environment back after. */
async function withEnv<T>(vars: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  try {
    return await body();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

describe.each(PLATFORMS)('README recipes (%s)', (platform) => {
  const apps: FixtureApp[] = [];

  afterEach(async () => {
    await closeAll(apps);
  });

  describe('ConfigModule with env validation', () => {
    const startRecipeApp = async (): Promise<FixtureApp> => {
      const app = await startApp({ imports: [recipeAppModule()] }, { platform });
      apps.push(app);
      return app;
    };

    it('starts from a valid environment, and its sessions work', async () => {
      const app = await withEnv({ SESSION_SECRET: SECRET, SESSION_STORE: 'memory' }, () => startRecipeApp());

      const cookie = requireSid(await app.http().post('/set').send({ theme: 'dark' }).expect(200));

      await expect(dataOf(app, cookie)).resolves.toEqual({ theme: 'dark' });
    });

    it('refuses to start from an environment with a short secret, naming the variable', async () => {
      const starting = withEnv({ SESSION_SECRET: 'too-short', SESSION_STORE: 'memory' }, () => startRecipeApp());

      await expect(starting).rejects.toThrow(/Invalid environment: SESSION_SECRET must be longer than or equal to 32 characters/);
    });

    it('refuses to start from an environment naming an unknown store, listing the ones it takes', async () => {
      const starting = withEnv({ SESSION_SECRET: SECRET, SESSION_STORE: 'mongo' }, () => startRecipeApp());

      await expect(starting).rejects.toThrow(/Invalid environment: SESSION_STORE must be one of the following values: memory, redis/);
    });
  });

  describe('migrating from express-session', () => {
    it('gives a client still holding an express-session cookie a fresh session, not an error', async () => {
      const app = await createFixtureApp({}, { platform });
      apps.push(app);
      // express-session's format: "s:" + id + "." + HMAC-SHA256 in base64, signed by cookie-signature.
      const legacy = encodeURIComponent('s:Wd3ohD1LbS9o3XnJ0lqXkZ6r5YJ-3P6m.zK9h1cFqzE9o2eQ7gQ2X9Jm5d3eYh0v8m4m0c2b1a0A');

      const res = await app.http().get('/read').set('Cookie', cookieHeader(legacy)).expect(200);

      expect(res.body).toEqual({ data: {}, isNew: true });
    });
  });
});
