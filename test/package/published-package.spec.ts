import { readFileSync, rmSync } from 'node:fs';
import { posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PACK_TIMEOUT, packLibrary, type PackedPackage } from '../support/packed-package.js';

const ROOT = new URL('../../', import.meta.url);
const readJson = (file: string): Record<string, any> => JSON.parse(readFileSync(new URL(file, ROOT), 'utf8'));

/** Relative link targets in a Markdown text: `[text](target)`, without anchors, web addresses or mail. */
function relativeLinks(markdown: string): string[] {
  const targets = [...markdown.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]);
  return targets.filter((target) => !/^([a-z][a-z0-9+.-]*:|#)/i.test(target)).map((target) => decodeURI(target.split('#')[0]));
}

describe('the published package', () => {
  let packed: PackedPackage;

  beforeAll(async () => {
    packed = await packLibrary();
  }, PACK_TIMEOUT);

  afterAll(() => {
    if (packed) rmSync(packed.workDir, { recursive: true, force: true });
  });

  it('ships the compiled library with its types, the testing kit, LICENSE and README', () => {
    expect(packed.files).toEqual(
      expect.arrayContaining([
        'LICENSE',
        'README.md',
        'package.json',
        'dist/lib/index.js',
        'dist/lib/index.d.ts',
        'dist/lib/testing/index.js',
        'dist/lib/testing/index.d.ts',
      ]),
    );
  });

  it('ships nothing of sample/, test/ or benchmarks/, no TypeScript sources and no source maps', () => {
    const unexpected = packed.files.filter(
      (file) => !/^(LICENSE|README\.md|CHANGELOG\.md|package\.json|docs\/[\w./-]+\.md|dist\/lib\/[\w./-]+\.(js|d\.ts))$/.test(file),
    );

    expect(unexpected).toEqual([]);
  });

  it('holds every file its exports map names, for import and require alike', () => {
    const { exports } = readJson('package.json') as { exports: Record<string, string | Record<string, string>> };
    const targets = Object.values(exports).flatMap((entry) => (typeof entry === 'string' ? [entry] : Object.values(entry)));

    expect(targets.length).toBeGreaterThan(4);
    for (const target of targets) expect(packed.files).toContain(posix.normalize(target));
  });

  it('is listed file by file in CONTRIBUTING.md, as it is', () => {
    const contributing = readFileSync(new URL('CONTRIBUTING.md', ROOT), 'utf8');
    const section = contributing.slice(contributing.indexOf('## What the package ships'));
    const listed = /```\n([\s\S]*?)\n```/.exec(section)?.[1].split('\n');

    expect(listed).toEqual(packed.files);
  });

  it('links from its README and docs only to files it ships', () => {
    const pages = packed.files.filter((file) => file.endsWith('.md'));
    const broken = pages.flatMap((page) =>
      relativeLinks(readFileSync(new URL(page, ROOT), 'utf8'))
        .map((target) => posix.normalize(posix.join(posix.dirname(page), target)))
        .filter((target) => !packed.files.includes(target) && !packed.files.some((file) => file.startsWith(`${target.replace(/\/$/, '')}/`)))
        .map((target) => `${page} -> ${target}`),
    );

    expect(pages).toContain('README.md');
    expect(broken).toEqual([]);
  });
});

describe('package.json', () => {
  const manifest = readJson('package.json');

  it('asks for the Node versions that load ES modules with require() (20.19 and later)', () => {
    expect(manifest.engines).toEqual({ node: '>=20.19' });
  });

  it('gives its dependencies as ranges, not exact versions', () => {
    const exact = Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies }).filter(([, range]) => /^\d/.test(String(range)));

    expect(exact).toEqual([]);
  });

  it('says where its code, home page and issue tracker are', () => {
    expect(manifest.repository).toMatchObject({ type: 'git', url: expect.stringMatching(/^git\+https:\/\//) });
    expect(manifest.homepage).toMatch(/^https:\/\//);
    expect(manifest.bugs).toMatchObject({ url: expect.stringMatching(/^https:\/\//) });
  });
});

describe('package-lock.json', () => {
  it('pins a version and an integrity for every package, which npm ci needs (no placeholder entries)', () => {
    const { packages } = readJson('package-lock.json') as { packages: Record<string, { version?: string; integrity?: string; link?: boolean }> };
    const incomplete = Object.entries(packages)
      .filter(([path, entry]) => path !== '' && !entry.link && !(entry.version && entry.integrity))
      .map(([path]) => path);

    expect(Object.keys(packages).length).toBeGreaterThan(100);
    expect(incomplete).toEqual([]);
  });
});
