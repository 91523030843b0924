import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { FILE_LOCK_BACKOFF } from '../../lib/stores/file/file.locks.js';
import { ADVISORY_LOCK_BACKOFF } from '../../lib/stores/postgres/postgres.locks.js';
import { REDIS_LOCK_BACKOFF } from '../../lib/stores/redis/redis.locks.js';
import { describeSystemError, errorCode, errorMessage, ignoreCode } from '../../lib/stores/toolkit/errors.js';
import { backoffDelay } from '../../lib/stores/toolkit/retry.js';
import type { Backoff } from '../../lib/stores/toolkit/retry.js';
import { MAX_TIMER_DELAY, startSweeper } from '../../lib/stores/toolkit/store-runtime.js';

/** The delays of the first `count` retries, with Math.random() answering `random` every time. */
function delays(backoff: Backoff, random: number, count = 8): number[] {
  jest.spyOn(Math, 'random').mockReturnValue(random);
  return Array.from({ length: count }, (_, attempt) => backoffDelay(backoff, attempt));
}

const LOWEST = 0;
/** Math.random() never reaches 1: its highest answer, whose delays are just under the bound. */
const HIGHEST = 1 - Number.EPSILON;
const sixDigits = (ms: number): number => Number(ms.toFixed(6));

describe('Lock backoff of the stores', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('waits 1, 2, 4… up to 25 ms between tries of a lock file, each between half and one and a half times that', () => {
    expect(delays(FILE_LOCK_BACKOFF, LOWEST)).toEqual([0.5, 1, 2, 4, 8, 12.5, 12.5, 12.5]);
    expect(delays(FILE_LOCK_BACKOFF, HIGHEST).map(sixDigits)).toEqual([1.5, 3, 6, 12, 24, 37.5, 37.5, 37.5]);
  });

  it('waits 5, 10, 20… up to 50 ms between tries of a PostgreSQL advisory lock, each between half and one and a half times that', () => {
    expect(delays(ADVISORY_LOCK_BACKOFF, LOWEST)).toEqual([2.5, 5, 10, 20, 25, 25, 25, 25]);
    expect(delays(ADVISORY_LOCK_BACKOFF, HIGHEST).map(sixDigits)).toEqual([7.5, 15, 30, 60, 75, 75, 75, 75]);
  });

  it('waits 5, 10, 20… up to 100 ms between tries of a Redis user lock, each cut by up to half', () => {
    expect(delays(REDIS_LOCK_BACKOFF, LOWEST)).toEqual([2.5, 5, 10, 20, 40, 50, 50, 50]);
    expect(delays(REDIS_LOCK_BACKOFF, HIGHEST).map(sixDigits)).toEqual([5, 10, 20, 40, 80, 100, 100, 100]);
  });

  it('stays at its longest delay however many tries a waiter makes', () => {
    expect(delays(REDIS_LOCK_BACKOFF, LOWEST, 2_000).at(-1)).toBe(50);
  });
});

describe('Error helpers of the stores', () => {
  const systemError = Object.assign(new Error("ENOENT: no such file or directory, open '/secret/path'"), { code: 'ENOENT', syscall: 'open' });

  it('read the code of a system error, and none of anything else', () => {
    expect(errorCode(systemError)).toBe('ENOENT');
    expect([new Error('plain'), 'text', null, undefined].map(errorCode)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('turn an error with the expected code into a value, and rethrow any other', () => {
    expect(ignoreCode(systemError, 'ENOENT', false)).toBe(false);
    expect(() => ignoreCode(systemError, 'EEXIST', false)).toThrow(systemError);
  });

  it('describe a system error by code and call, never by its path', () => {
    expect(describeSystemError(systemError)).toBe('ENOENT in open()');
    expect(describeSystemError(Object.assign(new Error('x'), { code: 'EPERM' }))).toBe('EPERM');
    expect(describeSystemError(new Error('no code'))).toBe('no code');
    expect(errorMessage('thrown text')).toBe('thrown text');
  });
});

describe('The sweeper timer of the stores', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('waits the longest a timer holds for an interval beyond it, where Node would fire every millisecond', () => {
    jest.useFakeTimers();
    let sweeps = 0;
    const timer = startSweeper(
      () => void (sweeps += 1),
      2 ** 40,
      () => undefined,
    );

    jest.advanceTimersByTime(1_000);
    expect(sweeps).toBe(0);
    jest.advanceTimersByTime(MAX_TIMER_DELAY);
    expect(sweeps).toBe(1);
    clearInterval(timer);
  });

  it('hands a failed sweep, thrown or rejected, to its error handler and keeps sweeping', async () => {
    jest.useFakeTimers();
    const errors: unknown[] = [];
    let sweeps = 0;
    const timer = startSweeper(
      () => {
        sweeps += 1;
        if (sweeps === 1) throw new Error('thrown');
        return Promise.reject(new Error('rejected'));
      },
      10,
      (error) => errors.push(error),
    );

    await jest.advanceTimersByTimeAsync(20);
    clearInterval(timer);
    expect(sweeps).toBe(2);
    expect(errors.map((error) => (error as Error).message)).toEqual(['thrown', 'rejected']);
  });
});
