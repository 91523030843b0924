/**
 * The sample's sign-in page (`GET /`, sample/sign-in-page.controller.ts) driven in headless
 * Chromium, as a person would use it, on both HTTP platforms.
 *
 * Needs Debian's `chromium` package at /usr/bin/chromium (`.ci/run` installs it when missing);
 * without it every test here fails with the install command. Each platform leaves a screenshot of
 * the signed-in page with three sessions listed in `artifacts/sign-in-page-<platform>.png` at the
 * repository root (git-ignored).
 */
import 'reflect-metadata';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Browser, BrowserContext, BrowserContextOptions, Cookie, Page } from 'playwright-core';
import { AppModule } from '../../sample/app.module.js';
import { startRoundRobinProxy } from '../../sample/cluster-demo/round-robin-proxy.js';
import type { RoundRobinProxy } from '../../sample/cluster-demo/round-robin-proxy.js';
import { createPlatformApp, PLATFORMS } from '../fixtures/platforms.js';
import type { Platform } from '../fixtures/platforms.js';
import { launchChromium } from './chromium.js';

const SECRET = 'browser-e2e-sample-secret-0123456789abcdef';
const ARTIFACTS = fileURLToPath(new URL('../../artifacts/', import.meta.url));
/** How long the page may take to show something before a step fails (a hang guard, not a speed check). */
const STEP_MS = 5_000;
/** What the page says when a guarded route answers 401 to a signed-in page. */
const ENDED = 'Your session has ended: it was signed out here or revoked from another session.';

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

/**
 * The sample on `platform`, listening on 127.0.0.1. The proxy is trusted (as with TRUST_PROXY),
 * so that `secure: 'auto'` follows a forwarded `X-Forwarded-Proto: https`.
 */
async function startSample(platform: Platform, env: Record<string, string> = {}): Promise<{ app: INestApplication; url: string }> {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forEnv({ SESSION_SECRET: SECRET, ...env })] }).compile();
  const app = await createPlatformApp(moduleRef, platform, { trustProxy: true });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}` };
}

/** Browser contexts ("browsers" of different people) opened by one test, and what went wrong in their pages. */
class Visitors {
  private readonly contexts: BrowserContext[] = [];
  /** Uncaught script errors and Content-Security-Policy refusals, which no test expects. */
  private readonly problems: string[] = [];

  /** A fresh browser profile with the page open at `url`, once the page's script has shown a view. */
  async open(url: string, options: BrowserContextOptions = {}): Promise<Page> {
    const context = await browser.newContext(options);
    context.setDefaultTimeout(STEP_MS);
    this.contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (error) => this.problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (/content security policy/i.test(message.text())) this.problems.push(`CSP: ${message.text()}`);
    });
    await page.goto(url);
    await page.locator('#signed-out:not([hidden]), #signed-in:not([hidden])').waitFor();
    return page;
  }

  /** Closes the test's contexts, then fails the test if any of its pages had a problem. */
  async finish(): Promise<void> {
    await Promise.all(this.contexts.splice(0).map((context) => context.close()));
    expect(this.problems.splice(0)).toEqual([]);
  }
}

/** Fails unless the element shows exactly `text` within STEP_MS, naming what it shows instead. */
async function expectText(page: Page, selector: string, text: string): Promise<void> {
  const element = page.locator(selector);
  try {
    await element.filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }).waitFor();
  } catch {
    throw new Error(`${selector} should read "${text}", but reads "${await element.textContent()}"`);
  }
}

const button = (page: Page, name: string) => page.getByRole('button', { name, exact: true });

/** Fills the sign-in form and submits it. */
async function submitSignIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await button(page, 'Sign in').click();
}

/** Signs in through the form and waits for the profile to name the user. */
async function signIn(page: Page, username: string): Promise<void> {
  await submitSignIn(page, username, 'demo');
  await expectText(page, '#user-id', username);
}

/** The session cookie as the browser stores it, if it stores one. */
async function sidCookie(page: Page): Promise<Cookie | undefined> {
  return (await page.context().cookies()).find((cookie) => cookie.name === 'sid');
}

/** GET /profile's status, asked by the page itself (so with whatever cookie the browser holds). */
const profileStatus = (page: Page): Promise<number> => page.evaluate(() => fetch('/profile').then((response) => response.status));

/** The hashed ids of the sessions the page lists, and the one it marks as its own. */
async function listedSessions(page: Page): Promise<{ ids: string[]; current: string[] }> {
  const ids: string[] = [];
  const current: string[] = [];
  for (const row of await page.locator('#sessions tr').all()) {
    const id = (await row.getAttribute('data-session-id')) ?? '';
    ids.push(id);
    if ((await row.getAttribute('data-current')) === 'true') current.push(id);
  }
  return { ids, current };
}

/** The hashed id of the page's own session, once the page lists it. */
async function ownSessionId(page: Page): Promise<string> {
  const row = page.locator('#sessions tr[data-current="true"]');
  await row.waitFor();
  return (await row.getAttribute('data-session-id')) ?? '';
}

/** Clicks Refresh and waits until the page lists `count` sessions. */
async function refreshSessions(page: Page, count: number): Promise<{ ids: string[]; current: string[] }> {
  await button(page, 'Refresh').click();
  await page
    .locator('#sessions tr')
    .nth(count - 1)
    .waitFor();
  await page.locator('#sessions tr').nth(count).waitFor({ state: 'detached' });
  return listedSessions(page);
}

describe.each(PLATFORMS)('The sample sign-in page on %s', (platform) => {
  let app: INestApplication;
  let url: string;
  const visitors = new Visitors();

  beforeAll(async () => {
    ({ app, url } = await startSample(platform));
  });

  afterEach(() => visitors.finish());

  afterAll(async () => {
    await app?.close();
  });

  it('is served as HTML whose Content-Security-Policy allows scripts from the server only, and its script runs under it', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const response = await page.goto(url);
      expect(response?.status()).toBe(200);
      const headers = response!.headers();
      expect(headers['content-type']).toMatch(/^text\/html\b/);
      const policy = headers['content-security-policy'] ?? '';
      expect(policy.split(/\s*;\s*/)).toEqual(expect.arrayContaining(["default-src 'none'", "script-src 'self'"]));
      expect(policy).not.toContain('unsafe-inline');
      // The form starts hidden: only the page's script, loaded from /app.js under that policy, shows it.
      await page.getByLabel('User name').waitFor({ timeout: STEP_MS });
    } finally {
      await context.close();
    }
  });

  it('refuses a wrong password, then signs in through the form and shows the profile and a visit counter that moves', async () => {
    const page = await visitors.open(url);
    await submitSignIn(page, 'ann', 'not-the-password');
    await expectText(page, '#message', 'Wrong user name or password (the demo password is "demo").');
    expect(await sidCookie(page)).toBeUndefined();

    await signIn(page, 'ann');
    await expectText(page, '#visits', '0');
    await button(page, 'Count a visit').click();
    await expectText(page, '#visits', '1');
    await button(page, 'Count a visit').click();
    await expectText(page, '#visits', '2');

    // The server remembers: a reload finds the same user and count.
    await page.reload();
    await expectText(page, '#user-id', 'ann');
    await expectText(page, '#visits', '2');
  });

  it('keeps the session cookie away from page scripts: document.cookie shows other cookies, never sid (HttpOnly)', async () => {
    const page = await visitors.open(url);
    await signIn(page, 'ben');
    expect(await sidCookie(page)).toMatchObject({ httpOnly: true });
    await page.context().addCookies([{ name: 'readable', value: 'yes', url }]);

    const visibleToScripts = await page.evaluate<string>('document.cookie');
    expect(visibleToScripts).toContain('readable=yes');
    expect(visibleToScripts).not.toContain('sid=');
  });

  it('has the browser store the cookie as sid, SameSite=Lax, Path=/, not Secure, over plain http', async () => {
    const page = await visitors.open(url);
    await signIn(page, 'cat');
    expect(await sidCookie(page)).toMatchObject({ domain: '127.0.0.1', path: '/', sameSite: 'Lax', secure: false, httpOnly: true });
  });

  it('has the browser store the cookie as Secure when a trusted TLS proxy forwards the request (X-Forwarded-Proto: https)', async () => {
    const page = await visitors.open(url, { extraHTTPHeaders: { 'X-Forwarded-Proto': 'https' } });
    await signIn(page, 'dan');
    expect(await sidCookie(page)).toMatchObject({ path: '/', sameSite: 'Lax', secure: true, httpOnly: true });
    // Chromium sends a Secure cookie to http://127.0.0.1 (a trustworthy origin): still signed in.
    await page.reload();
    await expectText(page, '#user-id', 'dan');
  });

  it('signs out: the browser drops the cookie, the form is back, and the profile answers 401, even to the old cookie', async () => {
    const page = await visitors.open(url);
    await signIn(page, 'eve');
    const before = await sidCookie(page);
    expect(before).toBeDefined();

    await button(page, 'Sign out').click();
    await expectText(page, '#message', 'Signed out.');
    await page.getByLabel('User name').waitFor();
    expect(await sidCookie(page)).toBeUndefined();
    expect(await profileStatus(page)).toBe(401);

    // The session is gone from the store, not only from this browser.
    await page.context().addCookies([before!]);
    expect(await profileStatus(page)).toBe(401);
  });

  it('lists other browsers signed in as the same user, and revokes them from the first one: one, then all others', async () => {
    const first = await visitors.open(url);
    const second = await visitors.open(url);
    const third = await visitors.open(url);
    for (const page of [first, second, third]) await signIn(page, 'fay');
    const secondId = await ownSessionId(second);
    const thirdId = await ownSessionId(third);

    const listed = await refreshSessions(first, 3);
    expect(listed.ids).toEqual(expect.arrayContaining([secondId, thirdId]));
    expect(listed.current).toHaveLength(1);
    expect([secondId, thirdId]).not.toContain(listed.current[0]);
    await button(first, 'Count a visit').click();
    await expectText(first, '#visits', '1');
    await mkdir(ARTIFACTS, { recursive: true });
    const screenshot = join(ARTIFACTS, `sign-in-page-${platform}.png`);
    await first.screenshot({ path: screenshot, fullPage: true });
    expect((await stat(screenshot)).size).toBeGreaterThan(0);

    await first.locator(`#sessions tr[data-session-id="${secondId}"]`).getByRole('button', { name: 'Revoke' }).click();
    await expectText(first, '#message', 'Revoked one session: it is signed out on its next request.');
    await first.locator(`#sessions tr[data-session-id="${secondId}"]`).waitFor({ state: 'detached' });
    expect((await listedSessions(first)).ids).toEqual(listed.ids.filter((id) => id !== secondId));
    await button(second, 'Refresh').click();
    await expectText(second, '#message', ENDED);
    expect(await profileStatus(second)).toBe(401);
    expect(await profileStatus(third)).toBe(200);

    await button(first, 'Sign out all other sessions').click();
    await expectText(first, '#message', 'Signed out 1 other session(s).');
    expect((await refreshSessions(first, 1)).ids).toEqual(listed.current);
    expect(await profileStatus(third)).toBe(401);
    expect(await profileStatus(first)).toBe(200);
  });
});

describe.each(PLATFORMS)('The sample sign-in page on two %s nodes behind the cluster demo proxy', (platform) => {
  let sessionDir: string;
  let nodes: INestApplication[] = [];
  let proxy: RoundRobinProxy;
  const visitors = new Visitors();

  beforeAll(async () => {
    // The file store in one directory: two in-process nodes sharing their sessions, like Redis would.
    sessionDir = await mkdtemp(join(tmpdir(), 'nss-browser-'));
    const started = await Promise.all([1, 2].map(() => startSample(platform, { SESSION_STORE: 'file', SESSION_DIR: sessionDir })));
    nodes = started.map(({ app }) => app);
    proxy = await startRoundRobinProxy(started.map(({ url }, i) => ({ name: `node-${i + 1}`, url })));
  });

  afterEach(() => visitors.finish());

  afterAll(async () => {
    await proxy?.close();
    await Promise.all(nodes.map((node) => node.close()));
    if (sessionDir) await rm(sessionDir, { recursive: true, force: true });
  });

  it('names the node that served each answer, and the session follows the user from node to node', async () => {
    const page = await visitors.open(proxy.url);
    await signIn(page, 'gus');
    for (const visits of ['1', '2', '3', '4']) {
      await button(page, 'Count a visit').click();
      await expectText(page, '#visits', visits);
    }
    const log = await page.locator('#requests li').allTextContents();
    const visitAnswers = log.filter((line) => line.startsWith('POST /visits → 200'));
    expect(visitAnswers).toHaveLength(4);
    expect(visitAnswers.some((line) => line.endsWith('served by node-1'))).toBe(true);
    expect(visitAnswers.some((line) => line.endsWith('served by node-2'))).toBe(true);
  });
});
