import { describe, expect, it } from '@jest/globals';
import { readLegacySession } from '../../lib/legacy/legacy-entry.js';

/** The JSON connect-redis and connect-pg-simple keep: express-session's `req.session`, cookie member included. */
const COOKIE = { originalMaxAge: 86_400_000, expires: '2020-01-01T00:00:00.000Z', secure: false, httpOnly: true, path: '/' };

function fieldsOf(json: string): Record<string, unknown> {
  const reading = readLegacySession(json);
  if ('problem' in reading) throw new Error(`unexpected problem: ${reading.problem}`);
  return reading.fields;
}

function problemOf(json: string): string {
  const reading = readLegacySession(json);
  if (!('problem' in reading)) throw new Error(`read as fields: ${JSON.stringify(reading.fields)}`);
  return reading.problem;
}

describe('readLegacySession()', () => {
  it("keeps every data field, Passport's included, and drops express-session's cookie member", () => {
    const fields = fieldsOf(JSON.stringify({ cookie: COOKIE, passport: { user: 'alice' }, theme: 'dark', cart: ['apple', { qty: 2 }], visits: 3 }));

    expect({ ...fields }).toEqual({ passport: { user: 'alice' }, theme: 'dark', cart: ['apple', { qty: 2 }], visits: 3 });
  });

  it('gives the fields on an object without a prototype, so no field name can reach one', () => {
    const fields = fieldsOf(JSON.stringify({ cookie: COOKIE, toString: 'a field', hasOwnProperty: 1 }));

    expect(Object.getPrototypeOf(fields)).toBeNull();
    expect(Object.keys(fields)).toEqual(['toString', 'hasOwnProperty']);
  });

  it('leaves out members this module reserves, which no session of its own can hold as data', () => {
    const fields = fieldsOf(JSON.stringify({ cookie: COOKIE, regenerate: 1, id: 'not-the-id', constructor: 2, userId: 'u1' }));

    expect(Object.keys(fields)).toEqual(['userId']);
  });

  it('gives no fields for a session express-session stored with nothing but its cookie (saveUninitialized)', () => {
    expect(Object.keys(fieldsOf(JSON.stringify({ cookie: COOKIE })))).toEqual([]);
  });

  it.each([
    ['a top-level "__proto__" key', '{"cookie":{},"__proto__":{"polluted":1}}'],
    ['a nested "__proto__" key', '{"cookie":{},"prefs":{"a":[{"__proto__":{"polluted":1}}]}}'],
    ['a "__proto__" key inside the cookie member', '{"cookie":{"__proto__":{"polluted":1}},"userId":"u1"}'],
  ])('refuses an entry with %s, and pollutes nothing', (_, json) => {
    expect(problemOf(json)).toMatch(/__proto__/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['text that is not JSON', '{"cookie":'],
    ['an array', '[{"userId":"u1"}]'],
    ['a string', '"s:abc"'],
    ['null', 'null'],
    ['a number', '42'],
  ])('refuses %s, saying what is wrong', (_, json) => {
    expect(problemOf(json)).toMatch(/not JSON|not a JSON object/);
  });
});
