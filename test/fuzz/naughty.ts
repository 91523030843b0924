import type { Rng } from './prng.js';

/**
 * Hostile values in the manner of the "big list of naughty strings": prototype keys, store
 * key separators and hash-tag braces (SPEC §3.12), characters UTF-8 cannot carry (lone
 * surrogates) or that look alike once replaced (U+FFFD), invisible and right-to-left marks,
 * NUL, traversal, markup, SQL and template injection, header injection, and lengths around the
 * sample's limits (user names: 100 characters).
 */
export const NAUGHTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  '{}',
  '[]',
  ':',
  '::',
  '{a}',
  '}{',
  'a:b',
  '{user}:x',
  'sess:{x}',
  'null',
  'undefined',
  '0',
  '-1',
  'NaN',
  '1e309',
  '%00',
  '%',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  '\udfff\ud800',
  'a\ud800b',
  '\ufffd',
  '\ufeff',
  '\u202ertl',
  '\u200f',
  '\u200b',
  '\u2028',
  '😀',
  '👨‍👩‍👧',
  '𝕏',
  'ＡＢＣ',
  '../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "' OR 1=1--",
  '"; DROP TABLE session;--',
  '$ne',
  '${7*7}',
  '{{7*7}}',
  '\r\nSet-Cookie: sid=x',
  'sid=x; Path=/',
  'id',
  'save',
  'userId',
  'a'.repeat(100),
  'a'.repeat(101),
  'x'.repeat(5000),
];

/**
 * User names that two stores' encodings could confuse (SPEC §3.12): lone surrogates (which UTF-8
 * turns into U+FFFD), U+FFFD itself, key separators and hash-tag braces, prototype keys, and
 * look-alikes that differ only by an invisible character. Signed in often, so that pairs of them
 * are signed in at once and a shared index or lock shows.
 */
export const USER_ID_HAZARDS: readonly string[] = [
  '\ud800',
  '\udfff',
  '\ufffd',
  '\ud800\udc00',
  '\udc00\ud800',
  '{}',
  '{',
  '}',
  ':',
  'a:b',
  'a',
  'a\u0000',
  'a\u200b',
  '{a}:b',
  'a}{b',
  '__proto__',
  'constructor',
  'toString',
  'sess:',
  '*',
];

/**
 * Raw JSON values that try to reach a prototype: `__proto__` as an own key (JSON.parse makes
 * one), `constructor.prototype`, and both nested under a value.
 */
export const POLLUTING_JSON: readonly string[] = [
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"a":{"__proto__":{"polluted":"yes"}}}',
  '[{"__proto__":{"polluted":"yes"}}]',
  '{"__proto__":{"toString":"x","valueOf":1}}',
  '{"__proto__":null}',
];

/** Form bodies (`qs` brackets) that try the same through the urlencoded parser. */
export const POLLUTING_FORMS: readonly string[] = [
  'value[__proto__][polluted]=yes',
  'value[constructor][prototype][polluted]=yes',
  '__proto__[polluted]=yes&value=1',
  'username[__proto__][polluted]=yes&password=demo',
  'username=a&password=demo&__proto__[polluted]=yes',
];

/** Bodies no JSON parser should take, or takes into something no route wants. */
export const BAD_JSON: readonly string[] = [
  '{',
  '{"username":',
  '{"a":1,}',
  "{'username':'a'}",
  'null',
  '"text"',
  '123',
  '[]',
  'NaN',
  '{"username":"a","password":"demo"}garbage',
  '\ufeff{"username":"a","password":"demo"}',
  '\u0000',
  '{"value":1e999999}',
  '{"value":"\\ud800"}',
  '{"value":"\\u0000"}',
  '{"value":"\\x41"}',
];

/** Content types a JSON route may be sent with; only the first two are parsed as JSON. */
export const CONTENT_TYPES: readonly string[] = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'application/xml',
  'application/json; charset=bogus',
  'image/png',
];

/** A JSON value nested `depth` levels deep, as arrays or as objects. */
export function deepJson(depth: number, shape: 'array' | 'object'): string {
  return shape === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** Any naughty string, sometimes with a prefix or suffix so that exact matches are not all it sees. */
export function naughtyString(rng: Rng): string {
  const base = rng.pick(NAUGHTY_STRINGS);
  return rng.weighted([
    [6, base],
    [1, `${base}${rng.pick(NAUGHTY_STRINGS)}`],
    [1, `user-${base}`],
  ]);
}

/**
 * A path segment for `value`: percent-encoded as a client would, or, for text
 * `encodeURIComponent` refuses (lone surrogates), as the bytes of their UTF-16 code units
 * (invalid UTF-8), which the server must refuse rather than crash on.
 */
export function pathSegment(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return Array.from({ length: value.length }, (_, i) => {
      const unit = value.charCodeAt(i);
      if (unit < 0x80) return encodeURIComponent(value[i]);
      const bytes = [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)];
      return bytes.map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    }).join('');
  }
}

/** Path segments that are malformed as such: bad escapes, traversal, separators. */
export const RAW_SEGMENTS: readonly string[] = [
  '%',
  '%zz',
  '%E0%A4%A',
  '%C0%AE%C0%AE',
  '..',
  '.',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '%00',
  '%uD800',
  '%ED%A0%80',
];
