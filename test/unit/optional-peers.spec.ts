import 'reflect-metadata';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Test } from '@nestjs/testing';

/**
 * @nestjs/terminus and prom-client are optional peers. The library never loads terminus (the
 * health indicator imports only its types, which compile away), and loads prom-client only when
 * the `metrics` option is on: with it off, nothing of the metrics costs anything, no store
 * wrapper and no event listener. With it on and prom-client missing, start-up says what to install.
 */

let loaded: string[] = [];

// Stand for an installation without them: importing either fails as a missing package would.
for (const name of ['prom-client', '@nestjs/terminus']) {
  jest.unstable_mockModule(name, () => {
    loaded.push(name);
    throw Object.assign(new Error(`Cannot find package '${name}'`), { code: 'ERR_MODULE_NOT_FOUND' });
  });
}

const SECRET = 'optional-peers-secret-0123456789abcdefghij';

afterEach(() => {
  loaded = [];
  jest.restoreAllMocks();
});

describe('without prom-client and @nestjs/terminus installed', () => {
  it('starts with metrics off: the store not instrumented, no event listener, and neither package loaded', async () => {
    const { MemoryStore, SessionEvents, SessionModule, SessionService, SessionStore } = await import('../../lib/index.js');
    const on = jest.spyOn(SessionEvents.prototype, 'on');
    const store = new MemoryStore();

    const moduleRef = await Test.createTestingModule({ imports: [SessionModule.forRoot({ secret: SECRET, store })] }).compile();
    await moduleRef.init();

    // The module's view of the store (sealed at rest) is still the store; prom-client never loads below.
    expect(moduleRef.get(SessionStore)).toBeInstanceOf(MemoryStore);
    expect(moduleRef.get(SessionStore).kind).toBe(store.kind);
    expect(on).not.toHaveBeenCalled();
    // The application's own listeners still work: only the metrics stay away.
    moduleRef.get(SessionService).on('created', () => undefined);
    expect(on).toHaveBeenCalledTimes(1);
    expect(loaded).toEqual([]);
    await moduleRef.close();
  });

  it('reports the store healthy through SessionHealthIndicator without loading terminus', async () => {
    const { SessionHealthIndicator, SessionModule } = await import('../../lib/index.js');

    const moduleRef = await Test.createTestingModule({ imports: [SessionModule.forRoot({ secret: SECRET })] }).compile();

    expect(await moduleRef.get(SessionHealthIndicator).isHealthy()).toEqual({
      session: { status: 'up', store: 'memory', latencyMs: expect.any(Number) },
    });
    expect(loaded).toEqual([]);
    await moduleRef.close();
  });

  it('fails to start with metrics on, with an error that says to install prom-client', async () => {
    const { SessionModule } = await import('../../lib/index.js');

    const compiling = Test.createTestingModule({ imports: [SessionModule.forRoot({ secret: SECRET, metrics: true })] }).compile();

    await expect(compiling).rejects.toThrow(
      'The "metrics" option of SessionModule needs the "prom-client" package, which is not installed. Install it with: npm install prom-client',
    );
    expect(loaded).toEqual(['prom-client']);
  });
});
