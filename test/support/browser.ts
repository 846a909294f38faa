import { existsSync } from 'node:fs';
import { Browser, chromium, Page } from 'playwright-core';

/** Debian's chromium (apt-get install chromium), or CHROMIUM_PATH; never a downloaded build. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `no Chromium at ${CHROMIUM_PATH}: install it (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH });
}

/** Console errors and uncaught exceptions of a page, collected from now on. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  return errors;
}

/** Pages opened through it are closed by `closeAll` (in afterEach), also when a test failed. */
export function pages(browser: () => Browser) {
  const open: Page[] = [];
  return {
    async open(options?: Parameters<Browser['newPage']>[0]): Promise<Page> {
      const page = await browser().newPage(options);
      open.push(page);
      return page;
    },
    closeAll: () => Promise.all(open.splice(0).map((page) => page.close())),
  };
}
