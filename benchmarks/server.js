// One benchmark server, run as its own process by run.js (infra.startServer): NestJS 12 on
// @nestjs/platform-express, logger off, listening on a free port of 127.0.0.1, which it reports
// over IPC. BENCH_SERVER_SPEC (JSON) says which application:
//   { kind: 'baseline' }
//   { kind: 'express-session', store: 'redis' | 'postgres' | 'file', redisUrl?, pgUrl?, dir? }
//   { kind: 'ours', store: { type: 'memory' } | { type: 'redis', url } | { type: 'postgres', ... } | { type: 'file', ... },
//     encryptionKeys?: [<base64url key>] }
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { baselineModule, expressSessionModule, noopMiddleware, oursModule, SECRET } from './apps.js';

const spec = JSON.parse(process.env.BENCH_SERVER_SPEC ?? '{}');
const closers = [];

async function build() {
  if (spec.kind === 'baseline') return NestFactory.create(baselineModule(), { logger: false });

  if (spec.kind === 'noop-middleware') {
    const app = await NestFactory.create(baselineModule(), { logger: false });
    app.use(noopMiddleware);
    return app;
  }

  if (spec.kind === 'ours') {
    const lib = await import('../dist/lib/index.js');
    const options = { secret: SECRET, store: spec.store, ...(spec.encryptionKeys && { encryptionKeys: spec.encryptionKeys }) };
    return NestFactory.create(oursModule(lib, options), { logger: false });
  }

  if (spec.kind === 'express-session') {
    const { default: session } = await import('express-session');
    const app = await NestFactory.create(expressSessionModule(), { logger: false });
    app.use(session({ store: await anchorStore(session), secret: SECRET, resave: false, saveUninitialized: false }));
    return app;
  }
  throw new Error(`unknown server kind ${spec.kind}`);
}

/** The anchor's store, set up as each package's README shows. */
async function anchorStore(session) {
  switch (spec.store) {
    case 'redis': {
      const { RedisStore } = await import('connect-redis');
      const { createClient } = await import('redis');
      const client = createClient({ url: spec.redisUrl });
      client.on('error', (error) => console.error(`[${spec.name}] redis client: ${error.message}`));
      await client.connect();
      closers.push(() => client.close());
      return new RedisStore({ client });
    }
    case 'postgres': {
      const { default: connectPgSimple } = await import('connect-pg-simple');
      const PgStore = connectPgSimple(session);
      const store = new PgStore({ conString: spec.pgUrl, createTableIfMissing: true });
      closers.push(() => store.close());
      return store;
    }
    case 'file': {
      const { default: sessionFileStore } = await import('session-file-store');
      const FileStore = sessionFileStore(session);
      return new FileStore({ path: spec.dir });
    }
    default:
      throw new Error(`unknown anchor store ${spec.store}`);
  }
}

let app;
async function shutdown(code) {
  const timer = setTimeout(() => process.exit(code), 2000);
  timer.unref();
  try {
    await app?.close();
    for (const close of closers) await close();
  } catch {
    // Exiting anyway.
  }
  process.exit(code);
}
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
// The parent is gone (IPC channel closed): nobody will stop us, so stop.
process.on('disconnect', () => void shutdown(0));

try {
  app = await build();
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address();
  // Started by run.js: report over IPC. Started by hand (say, to profile it): print the port.
  if (process.send) process.send({ type: 'ready', port });
  else console.log(`listening on 127.0.0.1:${port}`);
} catch (error) {
  process.send?.({ type: 'error', error: String(error?.stack ?? error) });
  await shutdown(1);
}
