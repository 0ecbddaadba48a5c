// In headless Chromium: sign in through tollhouse's own provider, create a browser key, see it
// listed, revoke it. Every page visited passes axe-core.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { TestApp } from '../support/app.ts';
import {
  HAVE_CHROMIUM,
  expectAccessible,
  launch,
  screenshot,
  signIn,
  startConsoleApp,
} from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

// A browser makes these slower than API tests, and the machine may be busy.
describe.skipIf(!HAVE_CHROMIUM)('console: API keys in a browser', () => {
  let t: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    t = await startConsoleApp();
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('signs in, creates a browser key, lists it and revokes it', async () => {
    const account = await accountWithPassword(t, 'keys@example.com');
    const page = await signIn(browser, t, 'keys@example.com', { checkLoginPage: true });
    // No key yet: the console starts on "get started".
    await expect(
      page.getByRole('heading', { level: 1, name: 'Get started' }).isVisible(),
    ).resolves.toBe(true);
    await expectAccessible(page);

    await page.getByRole('link', { name: 'API keys' }).click();
    await page.waitForURL(`${t.url}/console/keys`);
    await expectAccessible(page);
    await page.getByLabel('Name').fill('storefront');
    await page.getByLabel(/Browser/).check();
    await page.getByLabel('Allowed origins').fill('https://shop.example.com');
    await page.getByLabel('Allowed resources').fill('text-to-image');
    await page.getByRole('button', { name: 'Create key' }).click();

    const secret = (await page.locator('#new-secret').textContent())!.trim();
    expect(secret).toMatch(/^th_/);
    // The page's script shows the Copy button once it has run: wait for it (isVisible does not).
    await page.getByRole('button', { name: 'Copy' }).waitFor({ state: 'visible' });
    const row = page.getByRole('row', { name: /storefront/ });
    await expect(row.textContent()).resolves.toContain('https://shop.example.com');
    await expectAccessible(page);
    await screenshot(page, 'keys');

    // The key works as the API says it does (the console made it through /v1/keys).
    const keys = await t.app.keys.service.list(
      {
        actor: 'test',
        accountId: account.id,
        admin: false,
        scopes: [],
        browser: false,
        requestId: null,
      },
      {},
    );
    expect(keys.items.map((k) => [k.name, k.kind, k.allowedOrigins])).toEqual([
      ['storefront', 'browser', ['https://shop.example.com']],
    ]);

    await row.getByRole('button', { name: /Revoke/ }).click();
    await page.waitForURL(`${t.url}/console/keys?done=revoked`);
    await expect(page.getByRole('status').first().textContent()).resolves.toContain('revoked');
    await expect(
      page.getByRole('table', { name: 'Revoked and expired API keys' }).textContent(),
    ).resolves.toContain('storefront');
    await expectAccessible(page);
  });
});
