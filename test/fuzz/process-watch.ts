import { runInThisContext } from 'node:vm';
import { hostProcess } from '../support/host-process.js';
import { asText } from './report.js';

/**
 * What a fuzz run must leave as it found it, watched from outside the application: the
 * built-in prototypes (of jest's test context, where the application's modules run, and of
 * Node's main context, where its HTTP parser makes objects), and the process itself (no
 * uncaught exception, no unhandled rejection).
 */

const BUILT_INS = ['Object', 'Array', 'Function', 'String', 'Number', 'Boolean', 'RegExp', 'Promise', 'Error', 'Date'] as const;

/** Every own property of every built-in prototype, by `Name.prototype.key`, with its value or getter. */
type PrototypeSnapshot = Map<string, unknown>;

function contexts(): Array<[name: string, global: typeof globalThis]> {
  return [
    ['test context', globalThis],
    ['main context', runInThisContext('globalThis') as typeof globalThis],
  ];
}

function snapshotPrototypes(): PrototypeSnapshot {
  const snapshot: PrototypeSnapshot = new Map();
  for (const [context, global] of contexts()) {
    for (const name of BUILT_INS) {
      const prototype = (global[name] as { prototype: object }).prototype;
      for (const key of Reflect.ownKeys(prototype)) {
        const descriptor = Reflect.getOwnPropertyDescriptor(prototype, key)!;
        snapshot.set(`${context}: ${name}.prototype.${String(key)}`, descriptor.get ?? descriptor.value);
      }
    }
  }
  return snapshot;
}

/** Starts watching; `problems()` lists what changed since, and `stop()` removes the process listeners. */
export function watchProcess(): { problems(): string[]; stop(): void } {
  const before = snapshotPrototypes();
  const crashes: string[] = [];
  const host = hostProcess();
  const onException = (error: unknown): void => void crashes.push(`uncaught exception: ${String((error as Error)?.stack ?? error)}`);
  const onRejection = (reason: unknown): void => void crashes.push(`unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`);
  host.on('uncaughtException', onException);
  host.on('unhandledRejection', onRejection);
  return {
    problems() {
      const problems = [...crashes];
      const after = snapshotPrototypes();
      for (const [key, value] of after) {
        if (!before.has(key)) problems.push(`prototype pollution: ${key} was added (${asText(value).slice(0, 80)})`);
        else if (before.get(key) !== value) problems.push(`prototype pollution: ${key} was replaced`);
      }
      for (const key of before.keys()) if (!after.has(key)) problems.push(`prototype damage: ${key} was deleted`);
      for (const [context, global] of contexts()) {
        const probe = new global.Object() as Record<string, unknown>;
        if ('polluted' in probe) problems.push(`prototype pollution: ({}).polluted is ${asText(probe.polluted)} in the ${context}`);
      }
      return problems;
    },
    stop() {
      host.off('uncaughtException', onException);
      host.off('unhandledRejection', onRejection);
    },
  };
}
