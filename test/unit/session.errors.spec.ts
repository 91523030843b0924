import { describe, expect, it } from '@jest/globals';
import { BadRequestException } from '@nestjs/common';
import {
  SessionFieldNotJsonError,
  SessionReservedFieldError,
  SessionStoreUnavailableError,
  toHttpException,
} from '../../lib/session.errors.js';

/** Every error of a session operation gets one HTTP answer, wherever it surfaces. */
describe('toHttpException', () => {
  it('passes HTTP exceptions through (a reserved field is a 400)', () => {
    const error = new SessionReservedFieldError('save');

    expect(toHttpException(error, 'redis')).toBe(error);
    expect(toHttpException(error, 'redis').getStatus()).toBe(400);
  });

  it('answers 503 with the detail of a store that did not answer in time', () => {
    const answer = toHttpException(new SessionStoreUnavailableError('redis', undefined, 'get() did not answer within 200 ms'), 'memory');

    expect(answer.getStatus()).toBe(503);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE', message: expect.stringContaining('(redis)') });
    expect(answer.getResponse()).toMatchObject({ message: expect.stringContaining('get() did not answer within 200 ms') });
  });

  it('answers 503 to a driver error, naming the store', () => {
    const answer = toHttpException(new Error('connect ECONNREFUSED 127.0.0.1:6379'), 'redis');

    expect(answer.getStatus()).toBe(503);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE', message: expect.stringContaining('(redis)') });
  });

  it('answers 500 with the message to a programming error of the application (a value JSON cannot carry)', () => {
    const answer = toHttpException(new SessionFieldNotJsonError('big'), 'memory');

    expect(answer.getStatus()).toBe(500);
    expect(answer).not.toBeInstanceOf(BadRequestException);
    expect(answer.getResponse()).toMatchObject({ code: 'SESSION_FIELD_NOT_JSON', message: expect.stringContaining('"big"') });
  });
});
