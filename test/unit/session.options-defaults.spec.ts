import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from '@jest/globals';
import { SESSION_LEGACY_COOKIE_DEFAULTS, SESSION_LEGACY_DEFAULTS } from '../../lib/legacy/legacy-options.js';
import { SESSION_COOKIE_DEFAULTS, SESSION_METRICS_DEFAULTS, SESSION_OPTION_DEFAULTS } from '../../lib/session.options-classes.js';
import { resolveSessionOptions } from '../../lib/session.options.js';
import { parseDuration } from '../../lib/session.validation.js';

/**
 * An option's default value is written once, in the defaults objects beside the options classes,
 * and stated for two readers besides: the JSDoc `@default` of its field (editors) and
 * docs/options.md (users). These tests read both as text, and fail when either disagrees with the
 * defaults objects or with what resolveSessionOptions() fills in.
 */

const ROOT = new URL('../../', import.meta.url);
const read = (file: string): string => readFileSync(new URL(file, ROOT), 'utf8');

/** Where the options classes are, the path under which each class's fields are options, and each class's defaults. */
const CLASSES_FILES = ['lib/session.options-classes.ts', 'lib/legacy/legacy-options.ts'];
const CLASS_PATHS: Record<string, string> = {
  SessionModuleOptions: '',
  SessionCookieOptions: 'cookie.',
  SessionMetricsOptions: 'metrics.',
  SessionLegacyOptions: 'legacy.',
  SessionLegacyCookieOptions: 'legacy.cookie.',
};
const DEFAULTS: Record<string, object> = {
  '': SESSION_OPTION_DEFAULTS,
  'cookie.': SESSION_COOKIE_DEFAULTS,
  'metrics.': SESSION_METRICS_DEFAULTS,
  'legacy.': SESSION_LEGACY_DEFAULTS,
  'legacy.cookie.': SESSION_LEGACY_COOKIE_DEFAULTS,
};

/** An option as its field declares it: its JSDoc `@default`, or none for a required (`!`) field. */
interface Field {
  readonly required: boolean;
  readonly default?: string;
}

/** Text as written in a JSDoc or a Markdown cell, compared without backticks or line breaks. */
const normalize = (text: string): string => text.replace(/`/g, '').replace(/\s+/g, ' ').trim();

/** The fields of the options classes by option path (`idleTimeout`, `cookie.name`), read from the source. */
function fieldsOf(source: string): Map<string, Field> {
  const fields = new Map<string, Field>();
  let prefix: string | undefined;
  let comment: string[] | undefined;
  let jsdoc = '';
  for (const line of source.split('\n')) {
    const opened = /^export class (\w+) \{/.exec(line);
    if (opened) prefix = CLASS_PATHS[opened[1]];
    else if (line === '}') prefix = undefined;
    if (prefix === undefined) continue;
    const trimmed = line.trim();
    if (trimmed.startsWith('/**')) comment = [];
    if (comment) {
      comment.push(trimmed.replace(/^\/\*\*|\*\/$|^\*/g, ''));
      if (trimmed.endsWith('*/')) [jsdoc, comment] = [comment.join(' '), undefined];
      continue;
    }
    const property = /^ {2}(\w+)([?!]):/.exec(line);
    if (property) {
      const tag = /@default\s+(.*?)\s*(?=\s@\w|$)/.exec(jsdoc);
      fields.set(prefix + property[1], { required: property[2] === '!', default: tag ? normalize(tag[1]) : undefined });
      jsdoc = '';
    }
  }
  return fields;
}

/** The rows of the options tables in a Markdown page (`| option | default | meaning |`): option → default cell. */
function documentedDefaults(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  let inTable = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('| option | default | meaning |')) inTable = true;
    else if (!line.startsWith('|')) inTable = false;
    else if (inTable && !line.startsWith('|---')) {
      const [option, value] = line.split('|').slice(1, 3).map(normalize);
      rows.set(option, value);
    }
  }
  return rows;
}

/**
 * A default written as a JavaScript value (`'sid'`, `true`, `{ type: 'memory' }`), evaluated
 * where nothing is defined; a description (`unlimited`, `idleTimeout / 10`) is not one.
 */
function literalValue(text: string): { value: unknown } | undefined {
  let value: unknown;
  try {
    value = runInNewContext(`(${text})`, Object.create(null));
  } catch {
    return undefined;
  }
  // Through JSON, so that objects made in the other context compare as plain objects here.
  return { value: value === undefined ? undefined : JSON.parse(JSON.stringify(value)) };
}

const fields = new Map(CLASSES_FILES.flatMap((file) => [...fieldsOf(read(file))]));
const documented = documentedDefaults(read('docs/options.md'));
/** The JSDoc defaults written as values, by option path; `undefined` among them (an option unset by default). */
const valueDefaults = new Map(
  [...fields].flatMap(([path, field]) => {
    const literal = field.default === undefined ? undefined : literalValue(field.default);
    return literal ? [[path, literal.value] as const] : [];
  }),
);

describe('the defaults of the options', () => {
  it('finds the options of every class in the source', () => {
    expect([...fields.keys()]).toEqual(
      expect.arrayContaining([
        'secret',
        'idleTimeout',
        'metrics',
        'cookie.name',
        'cookie.maxAge',
        'metrics.prefix',
        'legacy.store',
        'legacy.cookie.name',
      ]),
    );
  });

  it('gives every option but the required ones a JSDoc @default', () => {
    const missing = [...fields].filter(([, field]) => !field.required && field.default === undefined).map(([path]) => path);

    expect(missing).toEqual([]);
  });

  it('documents every option in docs/options.md with the default its JSDoc gives, and no option that is gone', () => {
    const sourceSays = Object.fromEntries([...fields].map(([path, field]) => [path, field.required ? 'required' : field.default]));

    expect(Object.fromEntries(documented)).toEqual(sourceSays);
  });

  it('holds in the defaults objects exactly the defaults the JSDoc writes as a value, and the same values', () => {
    const fromJsdoc = [...valueDefaults].filter(([, value]) => value !== undefined);
    const fromObjects = Object.entries(DEFAULTS).flatMap(([prefix, defaults]) =>
      Object.entries(defaults).map(([name, value]) => [prefix + name, JSON.parse(JSON.stringify(value))]),
    );

    expect(Object.fromEntries(fromObjects)).toEqual(Object.fromEntries(fromJsdoc));
  });

  it('fills in every default that is written as a value, as the JSDoc says', () => {
    const resolved = resolveSessionOptions({ secret: 'a'.repeat(32) }) as unknown as Record<string, any>;
    // The option objects that are off by default, on with nothing but what they require.
    const withObjects = resolveSessionOptions({
      secret: 'a'.repeat(32),
      metrics: true,
      legacy: { store: 'connect-redis', secret: 'keyboard cat' },
    }) as unknown as Record<string, any>;
    const checked = [...valueDefaults].map(([path, value]) => {
      const [group, ...names] = path.split('.');
      // A member of an object option is read where that option is on; a top-level option as given by default.
      const actual = names.reduce((object, name) => object[name], (names.length > 0 ? withObjects : resolved)[group]);
      // Durations are resolved to milliseconds; an object option (`cookie: {}`, `store`) holds at
      // least the fields its default names, the others being checked as options of their own.
      const expected = typeof value === 'string' && typeof actual === 'number' ? parseDuration(value) : value;
      return [path, expected !== null && typeof expected === 'object' ? { ...actual, ...expected } : expected, actual];
    });

    expect(checked.length).toBeGreaterThan(15);
    expect(checked.map(([path, , actual]) => [path, actual])).toEqual(checked.map(([path, expected]) => [path, expected]));
  });
});
