import type { Counter, Histogram, Registry } from 'prom-client';
import { SessionConfigError, SessionMessages } from './session.errors.js';
import type { SessionEvents } from './session.events.js';
import type { MetricsRegistry, ResolvedMetricsOptions } from './session.options.js';
import { isPromiseLike, wrapStoreMethods } from './stores/bounded-store.js';
import type { StoreMethod } from './stores/bounded-store.js';
import { SessionStore } from './stores/session-store.js';

/** The parts of prom-client used here. */
type PromClient = Pick<typeof import('prom-client'), 'Counter' | 'Histogram' | 'register'>;

/** The calls of the store contract that are timed and counted; each name is an `operation` label. */
const OPERATIONS: ReadonlySet<string> = new Set(['get', 'create', 'commit', 'rotate', 'destroy', 'touch', 'listByUser', 'destroyByUser', 'ping']);

/** Store calls take from a fraction of a millisecond (memory, a nearby Redis) to seconds (a timeout). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The metric names, after the prefix (`session_` by default). */
export const SESSION_METRIC_NAMES = {
  created: 'created_total',
  rotated: 'rotated_total',
  destroyed: 'destroyed_total',
  expired: 'expired_total',
  migrated: 'migrated_total',
  storeDuration: 'store_duration_seconds',
  storeErrors: 'store_errors_total',
} as const;

/** A histogram child and an error counter child, for one operation on one kind of store. */
interface OperationMetrics {
  duration: Histogram.Internal<string>;
  errors: Counter.Internal;
}

/**
 * The module's Prometheus metrics (option `metrics`): what happens to sessions, counted from
 * {@link SessionEvents}, and how the store's calls go, measured by a view of the store.
 *
 * Made only when the option is on: with it off, prom-client is never loaded, the store is not
 * wrapped and no event listener is added.
 *
 * Metrics are registered once per registry: a second app in the same process (tests, several
 * modules) that uses the same registry and prefix counts into the same metrics.
 */
export class SessionMetrics {
  private readonly operations = new Map<string, OperationMetrics>();

  private constructor(
    readonly registry: MetricsRegistry,
    private readonly created: Counter,
    private readonly rotated: Counter,
    private readonly destroyed: Counter<'reason'>,
    private readonly expired: Counter,
    private readonly migrated: Counter,
    private readonly storeDuration: Histogram<'operation' | 'store'>,
    private readonly storeErrors: Counter<'operation' | 'store'>,
  ) {}

  /**
   * Loads prom-client and registers the metrics (or takes those a previous app registered).
   * @throws Error saying to install prom-client when it is missing.
   * @throws SessionConfigError when the registry holds another metric under one of the names.
   */
  static async create(options: ResolvedMetricsOptions): Promise<SessionMetrics> {
    const client = await loadPromClient();
    // Validated at start-up as a registry (isRegistry); prom-client's own type from here on.
    const registry = (options.registry as Registry | undefined) ?? client.register;
    const name = (metric: keyof typeof SESSION_METRIC_NAMES): string => options.prefix + SESSION_METRIC_NAMES[metric];
    const counter = <L extends string>(metric: keyof typeof SESSION_METRIC_NAMES, help: string, labelNames: L[] = []): Counter<L> =>
      registered(registry, client.Counter<L>, { name: name(metric), help, labelNames, registers: [registry] });
    return new SessionMetrics(
      registry,
      counter('created', 'Sessions created: stored for the first time.'),
      counter('rotated', 'Sessions moved to a new id: rotateId() or regenerate({ keepData: true }) on a session already stored (a sign-in, say).'),
      counter(
        'destroyed',
        'Sessions ended by the application, by reason: destroyed (Session.destroy() or regenerate() by its own request, e.g. a logout), ' +
          'revoked (SessionService.revoke/revokeOthers/revokeAll), evicted (maxSessionsPerUser).',
        ['reason'],
      ),
      counter(
        'expired',
        'Sessions the store found expired and reclaimed, counted on the node that reclaimed them. Reported by the memory, file and ' +
          'postgres stores, and by the redis store only with expiryEvents: true; never by the cookie store.',
      ),
      counter(
        'migrated',
        'Sessions of the express-session deployment named by the legacy option, taken over by this node. ' +
          'When it stays at 0 on every node for longer than the old sessions could live, the legacy option can go.',
      ),
      registered(registry, client.Histogram<'operation' | 'store'>, {
        name: name('storeDuration'),
        help: 'Duration of session store calls in seconds, failed ones included, by operation and store type.',
        labelNames: ['operation', 'store'],
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
      counter('storeErrors', 'Session store calls that failed (an error or a timeout of the store), by operation and store type.', [
        'operation',
        'store',
      ]),
    );
  }

  /**
   * The store, with every call of its contract timed and every failure counted. A view the store
   * hands out (the cookie store's per-request view) is measured too.
   */
  instrument(store: SessionStore): SessionStore {
    return wrapStoreMethods(store, (method, name) => (OPERATIONS.has(name) ? this.timed(store, method, name) : this.handingOutViews(store, method)));
  }

  /**
   * Counts what the event bus reports. `revoked` events count as `destroyed` with their reason,
   * so `destroyed_total` holds every session the application ended. Expiries are listened to
   * only where the store can report them: a Redis store without `expiryEvents` would only warn.
   */
  countEvents(events: SessionEvents, store: SessionStore): void {
    events.on('created', () => this.created.inc());
    events.on('rotated', () => this.rotated.inc());
    events.on('destroyed', () => this.destroyed.inc({ reason: 'destroyed' }));
    events.on('revoked', (event) => this.destroyed.inc({ reason: event.reason ?? 'revoked' }));
    if (store.reportsExpiries) events.on('expired', () => this.expired.inc());
    events.on('migrated', () => this.migrated.inc());
  }

  private timed(store: SessionStore, method: StoreMethod, operation: string): (...args: unknown[]) => unknown {
    const metrics = this.operationMetrics(operation, store.kind);
    return (...args) => {
      const end = metrics.duration.startTimer();
      const failed = (error: unknown): never => {
        end();
        metrics.errors.inc();
        throw error;
      };
      let result: unknown;
      try {
        result = method.apply(store, args);
      } catch (error) {
        return failed(error);
      }
      if (!isPromiseLike(result)) {
        end();
        return result;
      }
      return Promise.resolve(result).then((value) => {
        end();
        return value;
      }, failed);
    };
  }

  private handingOutViews(store: SessionStore, method: StoreMethod): (...args: unknown[]) => unknown {
    return (...args) => {
      const result = method.apply(store, args);
      return result instanceof SessionStore ? this.instrument(result) : result;
    };
  }

  /** The labelled children of one operation on one kind of store, looked up once. */
  private operationMetrics(operation: string, store: string): OperationMetrics {
    const key = `${operation} ${store}`;
    let metrics = this.operations.get(key);
    if (!metrics) {
      metrics = { duration: this.storeDuration.labels(operation, store), errors: this.storeErrors.labels(operation, store) };
      this.operations.set(key, metrics);
    }
    return metrics;
  }
}

/** Loads prom-client, an optional peer: only the `metrics` option needs it. */
async function loadPromClient(): Promise<PromClient> {
  try {
    const client = await import('prom-client');
    return (client as { default?: PromClient }).default ?? client;
  } catch {
    throw new Error(SessionMessages.packageMissing('The "metrics" option of SessionModule', 'prom-client'));
  }
}

/**
 * The metric registered under `config.name`: a new one, or the one a previous app registered in
 * the same registry (two apps in one process share it rather than fail on the duplicate name).
 */
function registered<M extends Counter<string> | Histogram<string>, C extends { name: string; labelNames?: readonly string[] }>(
  registry: Registry,
  Kind: new (config: C) => M,
  config: NoInfer<C>,
): M {
  const existing = registry.getSingleMetric(config.name);
  if (existing === undefined) return new Kind(config);
  const labels = (existing as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
  if (existing instanceof Kind && labels.join() === (config.labelNames ?? []).join()) return existing;
  throw new SessionConfigError([SessionMessages.metricTaken(config.name)]);
}
