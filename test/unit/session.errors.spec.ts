import { describe, expect, it, jest } from '@jest/globals';
import { BadRequestException } from '@nestjs/common';
import { SessionFieldNotJsonError, SessionReservedFieldError, SessionStoreUnavailableError, toHttpException } from '../../lib/session.errors.js';
import { boundStoreCalls } from '../../lib/stores/bounded-store.js';
import { MemoryStore } from '../../lib/stores/memory.store.js';

/** Every error of a session operation gets one HTTP answer, wherever it surfaces. */
describe('toHttpException', () => {
  it('passes HTTP exceptions through (a reserved field is a 400)', () => {
    const error = new SessionReservedFieldError('save');

    expect(toHttpException(error)).toBe(error);
    expect(toHttpException(error).getStatus()).toBe(400);
  });

  it('answers 503 with the detail of a store that did not answer in time', () => {
    const answer = toHttpException(new SessionStoreUnavailableError('redis', undefined, 'get() did not answer within 200 ms'));

    expect(answer.getStatus()).toBe(503);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE', message: expect.stringContaining('(redis)') });
    expect(answer.getResponse()).toMatchObject({ message: expect.stringContaining('get() did not answer within 200 ms') });
  });

  it('answers 500 with a code, never 503, to an error that is not a store failure (a bug to fix), and shows none of its text', () => {
    const answer = toHttpException(new TypeError('option domain is invalid: localhost:3000'));

    expect(answer.getStatus()).toBe(500);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_INTERNAL_ERROR' });
    expect(JSON.stringify(answer.getResponse())).not.toContain('localhost:3000');
  });

  it('answers 400 to a value JSON cannot carry (nested too deep, a cycle): bad input, never a 5xx', () => {
    const answer = toHttpException(new SessionFieldNotJsonError('big'));

    expect(answer.getStatus()).toBe(400);
    expect(answer).toBeInstanceOf(BadRequestException);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_FIELD_NOT_JSON', message: expect.stringContaining('"big"') });
  });
});

/** Only a store that failed or did not answer is a 503: the bound around every store call says which errors those are. */
describe('boundStoreCalls', () => {
  class FailingStore extends MemoryStore {
    override async get(): Promise<null> {
      throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    }
  }

  it('turns an error a store call rejects with (a driver error) into SessionStoreUnavailableError, a 503 naming the store', async () => {
    const store = new FailingStore();
    try {
      const failure = await boundStoreCalls(store, 1_000)
        .get('id')
        .catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(SessionStoreUnavailableError);
      const answer = toHttpException(failure);
      expect(answer.getStatus()).toBe(503);
      expect(answer.getResponse()).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE', message: expect.stringContaining('(memory)') });
    } finally {
      store.onApplicationShutdown();
    }
  });

  it("passes the library's own errors through as they are (a 400 stays a 400)", async () => {
    const store = new MemoryStore();
    const refused = new SessionReservedFieldError('save');
    jest.spyOn(store, 'commit').mockRejectedValueOnce(refused);
    try {
      await expect(boundStoreCalls(store, 1_000).commit('id', { set: {}, unset: [], expiresAt: 0, lastSeenAt: 0 })).rejects.toBe(refused);
    } finally {
      store.onApplicationShutdown();
    }
  });
});
