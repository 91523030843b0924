import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { platformFromEnv, sampleHttpAdapter } from './http-platform.js';

async function bootstrap(): Promise<void> {
  const env = process.env;
  const platform = platformFromEnv(env);
  // abortOnError: false hands start-up errors (a bad option) to the catch below, printed plainly.
  const app = await NestFactory.create(AppModule.forEnv(env), await sampleHttpAdapter(env), { abortOnError: false });
  app.enableShutdownHooks();
  const port = Number(env.PORT ?? 3000);
  // Fastify listens on localhost only unless told otherwise; Express, like this, on every interface.
  await (platform === 'fastify' ? app.listen(port, '0.0.0.0') : app.listen(port));
  new Logger('Sample').log(`Listening on http://localhost:${port} (${platform}, store: ${env.SESSION_STORE ?? 'memory'})`);
}

bootstrap().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
