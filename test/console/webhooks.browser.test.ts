// In headless Chromium: add a webhook endpoint, send a test event, read the delivery log.
// Every page visited passes axe-core.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { TestApp } from '../support/app.ts';
import { eventually } from '../support/eventually.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { startReceiver } from '../notifications/receiver.ts';
import type { Receiver } from '../notifications/receiver.ts';
import { HAVE_CHROMIUM, expectAccessible, launch, signIn, startConsoleApp } from './support.ts';

describe.skipIf(!HAVE_CHROMIUM)('console: webhooks in a browser', () => {
  let t: TestApp;
  let browser: Browser;
  let receiver: Receiver;

  beforeAll(async () => {
    t = await startConsoleApp({ WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true' });
    browser = await launch();
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await receiver?.close();
  });

  it('adds an endpoint, sends a test event and shows it delivered', async () => {
    await accountWithPassword(t, 'browser-hooks@example.com');
    const page = await signIn(browser, t, 'browser-hooks@example.com');
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.waitForURL(`${t.url}/console/webhooks`);
    await expectAccessible(page);
    await page.getByLabel('URL (https)').fill(receiver.url);
    await page.getByLabel('Description (optional)').fill('orders');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    expect(secret).toMatch(/^whsec_/);
    await expectAccessible(page);

    await page.getByRole('link', { name: receiver.url }).click();
    await page.getByRole('button', { name: 'Send test event' }).click();
    await eventually(() => receiver.received.length === 1);
    receiver.verifyAll(secret);
    await eventually(async () => {
      await page.reload();
      return (await page.getByRole('table').textContent())?.includes('succeeded');
    });
    await expectAccessible(page);
  });
});
