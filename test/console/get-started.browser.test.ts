// In headless Chromium, a new customer's first minutes (issue #18 item 5): sign up, sign in,
// land on "get started" with the address unconfirmed, open the link from the real SMTP server,
// create the first key on the page, then run the page's curl command, as written, with the real
// curl against the front door and a fake go-livepeer. Every page passes axe-core.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { TestApp } from '../support/app.ts';
import { eventually } from '../support/eventually.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { PASSWORD } from '../support/fixtures.ts';
import { linkIn, startSmtp } from '../identity/smtp.ts';
import type { TestSmtp } from '../identity/smtp.ts';
import { HAVE_CHROMIUM, expectAccessible, launch, screenshot, startConsoleApp } from './support.ts';

const run = promisify(execFile);

describe.skipIf(!HAVE_CHROMIUM)('console: get started in a browser', () => {
  let t: TestApp;
  let smtp: TestSmtp;
  let gateway: FakeGateway;
  let browser: Browser;

  beforeAll(async () => {
    smtp = await startSmtp();
    gateway = await startFakeGateway();
    t = await startConsoleApp({
      SIGNUP_POLICY: 'open',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Example API <no-reply@example.com>',
      GATEWAY_URL: gateway.url,
      GATEWAY_PRICES: JSON.stringify({
        'text-to-image': { price_per_unit: '1000', pixels_per_unit: '1' },
      }),
    });
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await gateway?.close();
    await smtp?.close();
  });

  it('signs up, confirms the address, creates a key and runs the curl it shows', async () => {
    const email = 'newcomer@example.com';
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();

    await page.goto(`${t.url}/account/sign-up`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('New password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('New password, again').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    await page.getByRole('link', { name: 'Continue to sign in' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    // No key yet: the console starts here, and the address is still to confirm.
    await page.waitForURL(`${t.url}/console/get-started`);
    await page.getByRole('heading', { level: 1, name: 'Get started' }).waitFor();
    await expect(page.locator('#gs-verify').textContent()).resolves.toContain('To do');
    await expect(
      page.getByRole('button', { name: 'Send the link again' }).isVisible(),
    ).resolves.toBe(true);
    await expectAccessible(page);

    // The link from the e-mail, opened in the same browser.
    const mail = await smtp.next(email, /confirm/i);
    await page.goto(linkIn(mail, `${t.url}/account/verify-email?token=`));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('heading', { name: 'Address confirmed' }).waitFor();

    await page.goto(`${t.url}/console/get-started`);
    await expect(page.locator('#gs-verify').textContent()).resolves.toContain('Done');
    await page.getByLabel('Key name').fill('laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    expect(secret).toMatch(/^th_sk_/);
    // The page's script shows the Copy buttons once it has run.
    await page.getByRole('button', { name: /Copy the curl command/ }).waitFor({ state: 'visible' });
    await expectAccessible(page);
    await screenshot(page, 'get-started');

    // The command exactly as the page shows it, run by a shell with the real curl.
    const curl = (await page.locator('#gs-curl').textContent())!;
    expect(curl).toContain(secret);
    const { stdout } = await run('sh', ['-c', `${curl} --silent --show-error --fail`]);
    expect(JSON.parse(stdout).images).toHaveLength(1);
    expect(gateway.received.some((r) => r.url === '/text-to-image')).toBe(true);

    const flags = (await page.locator('#gs-flags').textContent())!;
    expect(flags).toContain(`-remoteSignerUrl=${t.url} `);
    expect(flags).toContain(`"Authorization:Bearer ${secret}"`);

    // The request is metered: the step turns to done.
    await eventually(async () => {
      await page.goto(`${t.url}/console/get-started`);
      return (await page.locator('#gs-request').textContent())!.includes('Done');
    });
    await expectAccessible(page);
    await context.close();
  });
});
