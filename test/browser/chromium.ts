import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

/**
 * Browser tests drive Debian's `chromium` package through playwright-core: never a downloaded
 * browser. `.ci/run` installs the package when the binary is missing.
 */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for this machine: no sandbox (tests run as root in a container), no GPU, and none of
 * Chromium's own background traffic (component updates, sync, QUIC…), which a closed network
 * refuses and which has no place in a test anyway. Playwright adds a fresh user-data directory.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Starts headless Chromium, or fails with how to install it (a missing browser is a failure, not a skip). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `The browser tests need Chromium at ${CHROMIUM_PATH}, which is missing. ` +
        "Install Debian's package: apt-get install -y --no-install-recommends chromium (.ci/run does this when it is missing).",
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}
