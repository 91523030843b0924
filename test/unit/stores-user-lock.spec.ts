/**
 * SessionStore.withUserLock as a template: the in-process queue per user, then the hook
 * lockUserAcrossNodes that a store shared by several nodes overrides. Custom stores written
 * before the hook existed override withUserLock itself, and must keep working.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { SessionUserIdInvalidError } from '../../lib/session.errors.js';
import { MemoryStore } from '../../lib/stores/index.js';

/** A store whose cross-node lock is a trace: who entered and left it, for which user. */
class TracedLockStore extends MemoryStore {
  readonly trace: string[] = [];

  protected override async lockUserAcrossNodes<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    this.trace.push(`lock ${userId}`);
    try {
      return await critical();
    } finally {
      this.trace.push(`unlock ${userId}`);
    }
  }
}

/** A custom store written the way stores were before the hook: withUserLock overridden, calling super first. */
class OverridingWithSuper extends MemoryStore {
  readonly trace: string[] = [];

  override withUserLock<T>(userId: string, critical: () => Promise<T>): Promise<T> {
    return super.withUserLock(userId, async () => {
      this.trace.push(`own lock ${userId}`);
      try {
        return await critical();
      } finally {
        this.trace.push(`own unlock ${userId}`);
      }
    });
  }
}

/** A custom store that replaces withUserLock entirely. */
class OverridingWholly extends MemoryStore {
  calls = 0;

  override async withUserLock<T>(_userId: string, critical: () => Promise<T>): Promise<T> {
    this.calls += 1;
    return critical();
  }
}

/** A critical section that stays inside for a few turns of the event loop, recording itself. */
const section = (trace: string[], name: string) => async (): Promise<string> => {
  trace.push(`enter ${name}`);
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  trace.push(`exit ${name}`);
  return name;
};

describe('SessionStore.withUserLock', () => {
  const stores: MemoryStore[] = [];
  const track = <S extends MemoryStore>(store: S): S => (stores.push(store), store);

  afterEach(() => {
    for (const store of stores.splice(0)) store.onApplicationShutdown();
  });

  it('runs each caller through lockUserAcrossNodes, one at a time per user in this process', async () => {
    const store = track(new TracedLockStore());

    const results = await Promise.all(['a', 'b'].map((name) => store.withUserLock('u1', section(store.trace, name))));

    expect(results).toEqual(['a', 'b']);
    expect(store.trace).toEqual(['lock u1', 'enter a', 'exit a', 'unlock u1', 'lock u1', 'enter b', 'exit b', 'unlock u1']);
  });

  it('refuses a user id no store can keep before the hook takes any lock', async () => {
    const store = track(new TracedLockStore());

    await expect(store.withUserLock('bad\u0000id', async () => 'ran')).rejects.toBeInstanceOf(SessionUserIdInvalidError);
    expect(store.trace).toEqual([]);
  });

  it('keeps a custom store that overrides withUserLock and calls super working as before', async () => {
    const store = track(new OverridingWithSuper());
    const trace = store.trace;

    const results = await Promise.all(['a', 'b'].map((name) => store.withUserLock('u1', section(trace, name))));

    expect(results).toEqual(['a', 'b']);
    expect(trace).toEqual(['own lock u1', 'enter a', 'exit a', 'own unlock u1', 'own lock u1', 'enter b', 'exit b', 'own unlock u1']);
  });

  it('keeps a custom store that replaces withUserLock entirely working as before', async () => {
    const store = track(new OverridingWholly());

    await expect(store.withUserLock('u1', async () => 'ran')).resolves.toBe('ran');
    expect(store.calls).toBe(1);
  });

  it('runs critical as it is by default, its errors passing through', async () => {
    const store = track(new MemoryStore());
    const failure = new Error('critical failed');

    await expect(store.withUserLock('u1', async () => 'ran')).resolves.toBe('ran');
    await expect(store.withUserLock('u1', () => Promise.reject(failure))).rejects.toBe(failure);
    await expect(store.withUserLock('u1', async () => 'next')).resolves.toBe('next');
  });
});
