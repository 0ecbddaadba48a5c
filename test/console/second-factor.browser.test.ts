// Second factors in headless Chromium (issue #18 item 4): set up an authenticator app and a
// passkey from "Your account", then sign in with the password and each second factor, and with
// the passkey alone. WebAuthn runs against Chromium's virtual authenticator, driven through the
// DevTools protocol (WebAuthn.enable / WebAuthn.addVirtualAuthenticator). Every page passes
// axe-core. PUBLIC_URL is http://localhost:<port>: WebAuthn refuses IP addresses as RP IDs,
// and localhost is a secure context over plain HTTP.
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ACR_MFA } from '../../src/identity/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { freePort } from '../support/process.ts';
import { HAVE_CHROMIUM, expectAccessible, launch, screenshot } from './support.ts';

/** The console after sign-in: Overview, or Get started for a customer with no key yet. */
const landed = (url: string) => (u: URL) =>
  u.href === `${url}/console` || u.href === `${url}/console/get-started`;

const EMAIL = 'two-factors@example.com';

describe.skipIf(!HAVE_CHROMIUM)('second factors in a browser', () => {
  let t: TestApp;
  let url: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let accountId: string;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://localhost:${port}`;
    t = await startTestApp({ port, env: { PUBLIC_URL: url } });
    accountId = (await accountWithPassword(t, EMAIL)).id;
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  async function code(secret: string): Promise<string> {
    return generate({ secret, epoch: Math.floor(t.clock().getTime() / 1000) });
  }

  async function password() {
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }

  /** Signed out: the console's and the sign-in pages' cookies gone, the authenticator kept. */
  async function signOut() {
    await context.clearCookies();
    await page.goto(`${url}/console`);
    await page.getByLabel('Email').waitFor();
  }

  let secret = '';

  /** What the newest browser session of the account says it was signed in with. */
  async function lastSession() {
    const rows = await t.app.database.db
      .selectFrom('oidc_payloads')
      .select(['payload', 'expires_at'])
      .where('model', '=', 'Session')
      .execute();
    const mine = rows
      .map((r) => ({
        ...(r.payload as { accountId?: string; amr?: string[]; acr?: string }),
        at: r.expires_at!.getTime(),
      }))
      .filter((p) => p.accountId === accountId)
      .sort((a, b) => b.at - a.at);
    return { amr: mine[0]?.amr, acr: mine[0]?.acr };
  }

  it('sets up an authenticator app from "Your account"', async () => {
    await page.goto(`${url}/console`);
    await password();
    await page.waitForURL(landed(url));
    await page.goto(`${url}/console/account`);
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.getByRole('img', { name: 'QR code of the key below' }).waitFor();
    await expectAccessible(page);
    await screenshot(page, 'second-factor-totp-setup');
    secret = (await page.locator('#totp-secret').textContent())!.trim();
    await page.getByLabel('Code from the app').fill(await code(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await expect.poll(() => page.locator('#recovery-code-list li').count()).toBe(10);
    await expectAccessible(page);
  });

  it('adds a passkey with the virtual authenticator', async () => {
    await page.goto(`${url}/console/account`);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByLabel('Name (to tell your passkeys apart)').fill('Virtual key');
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Create the passkey' }).click();
    await page.waitForURL(`${url}/console/account?done=passkey_added`);
    await expect
      .poll(() => page.getByRole('button', { name: 'Remove Virtual key' }).count())
      .toBe(1);
    await expectAccessible(page);
    const rows = await t.app.database.db
      .selectFrom('account_passkeys')
      .select(['name', 'account_id'])
      .execute();
    expect(rows).toEqual([{ name: 'Virtual key', account_id: accountId }]);
  });

  it('signs in with the password and a TOTP code', async () => {
    await signOut();
    await password();
    await page.getByLabel('Code from your authenticator app').waitFor();
    await expectAccessible(page);
    await screenshot(page, 'second-factor-sign-in');
    // The code that turned the app on was used in this step: the next step's code.
    t.clock.advance(30_000);
    await page.getByLabel('Code from your authenticator app').fill(await code(secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(landed(url));
    expect(await lastSession()).toEqual({ amr: ['pwd', 'otp', 'mfa'], acr: ACR_MFA });
  });

  it('signs in with the password and the passkey', async () => {
    await signOut();
    await password();
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.waitForURL(landed(url));
    const used = await t.app.database.db
      .selectFrom('account_passkeys')
      .select('last_used_at')
      .executeTakeFirstOrThrow();
    expect(used.last_used_at).not.toBeNull();
    // The virtual authenticator is device-bound (hwk) and verifies the user.
    expect(await lastSession()).toEqual({ amr: ['pwd', 'hwk', 'user', 'mfa'], acr: ACR_MFA });
  });

  it('signs in with the passkey alone', async () => {
    await signOut();
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('button', { name: 'Choose a passkey' }).waitFor();
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Choose a passkey' }).click();
    await page.waitForURL(landed(url));
    await expect.poll(() => page.getByText(EMAIL).count()).toBeGreaterThan(0);
    expect(await lastSession()).toEqual({ amr: ['hwk', 'user', 'mfa'], acr: ACR_MFA });
  });
});
