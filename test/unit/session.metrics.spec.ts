import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { Gauge, register, Registry } from 'prom-client';
import { MemoryStore, SessionEvents, SessionModule, SessionStore, resolveSessionOptions } from '../../lib/index.js';
import { SessionMetrics } from '../../lib/session.metrics.js';
import { optionProblems } from '../fixtures/option-problems.js';

const SECRET = 'metrics-unit-secret-0123456789abcdefghijk';

const problemsOf = (options: object): string[] => optionProblems(SECRET, options);

describe('the metrics option', () => {
  it('is off by default', () => {
    expect(resolveSessionOptions({ secret: SECRET }).metrics).toBe(false);
    expect(resolveSessionOptions({ secret: SECRET, metrics: false }).metrics).toBe(false);
  });

  it("takes true as prom-client's default registry and the prefix session_", () => {
    expect(resolveSessionOptions({ secret: SECRET, metrics: true }).metrics).toEqual({ registry: undefined, prefix: 'session_' });
  });

  it('keeps the registry and the prefix it is given', () => {
    const registry = new Registry();

    expect(resolveSessionOptions({ secret: SECRET, metrics: { registry, prefix: 'shop:session_' } }).metrics).toEqual({
      registry,
      prefix: 'shop:session_',
    });
  });

  it.each([
    ['a string', 'yes', 'option "metrics" must be true, false, or an object such as'],
    ['a number', 1, 'option "metrics" must be true, false, or an object such as'],
    ['a registry that is not one', { registry: {} }, 'option "metrics.registry" must be a prom-client Registry'],
    ['a prefix starting with a digit', { prefix: '1app_' }, 'option "metrics.prefix" must start a Prometheus metric name'],
    ['a prefix with a dash', { prefix: 'my-app_' }, 'option "metrics.prefix" must start a Prometheus metric name'],
    ['an empty prefix', { prefix: '' }, 'option "metrics.prefix" must start a Prometheus metric name'],
    ['an unknown key', { buckets: [1] }, 'option "metrics.buckets" is not a known option'],
  ])('fails start-up on %s, naming the option and the value', (_, metrics, problem) => {
    const [message] = problemsOf({ metrics });

    expect(message).toContain(problem);
    if (typeof metrics !== 'object') expect(message).toContain(`(got ${JSON.stringify(metrics)})`);
  });
});

describe('SessionMetrics', () => {
  it('registers its metrics once per registry: a second app in the process shares them', async () => {
    const registry = new Registry();

    const first = await SessionMetrics.create({ registry, prefix: 'twice_' });
    const second = await SessionMetrics.create({ registry, prefix: 'twice_' });

    expect(
      registry
        .getMetricsAsArray()
        .map((m) => m.name)
        .sort(),
    ).toEqual([
      'twice_created_total',
      'twice_destroyed_total',
      'twice_expired_total',
      'twice_migrated_total',
      'twice_rotated_total',
      'twice_store_duration_seconds',
      'twice_store_errors_total',
    ]);
    expect(second.registry).toBe(first.registry);
  });

  it('fails start-up, naming metrics.prefix, when the registry holds another metric under one of the names', async () => {
    const registry = new Registry();
    new Gauge({ name: 'taken_created_total', help: 'something else', registers: [registry] });

    await expect(SessionMetrics.create({ registry, prefix: 'taken_' })).rejects.toThrow(
      /option "metrics": the registry already holds a metric named "taken_created_total".*Set metrics.prefix/,
    );
  });

  it("starts two apps with metrics: true in one process, both counting in prom-client's default registry", async () => {
    const start = () => Test.createTestingModule({ imports: [SessionModule.forRoot({ secret: SECRET, metrics: true })] }).compile();

    const [a, b] = [await start(), await start()];

    expect(register.getSingleMetric('session_created_total')).toBeDefined();
    await a.get(SessionStore).ping();
    await b.get(SessionStore).ping();
    expect(await register.getSingleMetricAsString('session_store_duration_seconds')).toContain(
      'session_store_duration_seconds_count{operation="ping",store="memory"} 2',
    );
    await a.close();
    await b.close();
  });

  it('wraps the store and listens to the events when on', async () => {
    const store = new MemoryStore();
    const registry = new Registry();

    const moduleRef = await Test.createTestingModule({
      imports: [SessionModule.forRoot({ secret: SECRET, store, metrics: { registry } })],
    }).compile();

    const used = moduleRef.get(SessionStore);
    expect(used).not.toBe(store);
    expect(used).toBeInstanceOf(MemoryStore);
    expect(used.kind).toBe('memory');
    moduleRef.get(SessionEvents).emit('created', 'an-id', null);
    expect((await registry.getSingleMetric('session_created_total')!.get()).values[0].value).toBe(1);
    await moduleRef.close();
  });
});
