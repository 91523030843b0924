import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';

async function bootstrap(): Promise<void> {
  // abortOnError: false hands start-up errors (a bad option) to the catch below, printed plainly.
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forEnv(process.env), { abortOnError: false });
  // Behind a TLS-terminating proxy, trust its X-Forwarded-Proto so secure: 'auto' cookies work.
  if (process.env.TRUST_PROXY) app.set('trust proxy', process.env.TRUST_PROXY);
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port);
  new Logger('Sample').log(`Listening on http://localhost:${port} (store: ${process.env.SESSION_STORE ?? 'memory'})`);
}

bootstrap().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
