// In headless Chromium: a prepaid customer adds credit through Stripe Checkout (the fake's
// hosted page), comes back to "payment is being confirmed", the test plays Stripe's signed
// `checkout.session.completed` (signed with the real `stripe` SDK's helper), and the page then
// shows the new balance to the micro-dollar; then saves a card through Checkout in setup mode
// and turns auto-recharge on. Every page visited passes axe-core.
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { TestApp } from '../support/app.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { startFakeStripe } from '../support/fake-stripe.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { HAVE_CHROMIUM, expectAccessible, launch, signIn, startConsoleApp } from './support.ts';

const WEBHOOK_SECRET = 'whsec_console_balance_test';

describe.skipIf(!HAVE_CHROMIUM)('console: prepaid balance in a browser', () => {
  let t: TestApp;
  let fake: FakeStripe;
  let browser: Browser;

  beforeAll(async () => {
    fake = await startFakeStripe();
    t = await startConsoleApp({
      BILLING_ETH_USD_RATE: '2000',
      BILLING_AUTO_CLOSE: 'false',
      BILLING_PREPAID_INTERVAL_SECONDS: '3600',
      BILLING_TOPUP_AMOUNTS_USD: '25,50',
      STRIPE_SECRET_KEY: fake.secretKey,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_API_BASE: fake.url,
    });
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await fake?.close();
  });

  /** Stripe's webhook for the session the browser just finished, signed by the SDK's helper. */
  async function stripeSends(sessionId: string) {
    const session = fake.checkoutSessions.get(sessionId);
    expect(session?.status).toBe('complete');
    const payload = JSON.stringify({
      id: `evt_${sessionId}`,
      object: 'event',
      api_version: '2024-06-20',
      created: Math.floor(Date.now() / 1000),
      type: 'checkout.session.completed',
      data: { object: session },
    });
    const signature = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: WEBHOOK_SECRET,
    });
    const response = await fetch(`${t.url}/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      body: payload,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ outcome: 'applied' });
  }

  /** Clicks the fake Stripe's one button and returns the session id the console got back. */
  async function payOnStripe(page: Page, button: string, param: string): Promise<string> {
    await page.waitForURL(new RegExp(`^${fake.url}/pay/cs_`));
    await page.getByRole('button', { name: button }).click();
    await page.waitForURL(new RegExp(`^${t.url}/console/balance\\?${param}=cs_`));
    return new URL(page.url()).searchParams.get(param)!;
  }

  it('adds credit through Checkout, shows it once credited, and sets up auto-recharge', async () => {
    const account = await accountWithPassword(t, 'prepaid-browser@example.com');
    await t.app.billing.prepaid.setMode({ actor: 'test', requestId: null }, account.id, 'prepaid');
    const page = await signIn(browser, t, 'prepaid-browser@example.com');
    await page.getByRole('link', { name: 'Balance', exact: true }).click();
    await page.waitForURL(`${t.url}/console/balance`);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('$0.00');
    expect(await page.locator('#billing-mode').textContent()).toBe('prepaid');
    await expectAccessible(page);

    // Add credit: $50 on Stripe's page, back here before the webhook has landed.
    await page.getByLabel('$50.00').check();
    await page.getByRole('button', { name: 'Add credit' }).click();
    const checkout = await payOnStripe(page, 'Pay', 'checkout');
    expect(await page.locator('#checkout-result').textContent()).toMatch(/being confirmed/);
    await expectAccessible(page);
    await stripeSends(checkout);
    await page.getByRole('link', { name: 'Refresh' }).click();
    expect(await page.locator('#checkout-result').textContent()).toMatch(
      /Payment received: \$50\.00 added\. Your balance is\s+\$50\.00\./,
    );
    expect(await page.locator('#balance').textContent()).toBe('$50.00');
    expect(await page.locator('#balance-micros').getAttribute('value')).toBe('50000000');
    expect(
      await page.getByRole('table', { name: 'Ledger entries, newest first' }).textContent(),
    ).toContain(`stripe:checkout:${checkout}`);
    await expectAccessible(page);

    // Save a card through Checkout in setup mode, then turn auto-recharge on.
    await page.getByRole('button', { name: 'Save a card' }).click();
    const setup = await payOnStripe(page, 'Save card', 'setup');
    expect(await page.locator('#setup-result').textContent()).toMatch(/being confirmed/);
    await stripeSends(setup);
    await page.getByRole('link', { name: 'Refresh' }).click();
    expect(await page.locator('#setup-result').textContent()).toMatch(/Card saved/);
    await page.getByLabel('Recharge automatically').check();
    await page.getByLabel('Recharge below (USD)').fill('10');
    await page.getByLabel('Recharge amount (USD)').fill('25');
    await page.getByLabel('Monthly maximum (USD)').fill('100');
    await page.getByRole('button', { name: 'Save auto-recharge' }).click();
    await page.waitForURL(`${t.url}/console/balance?done=auto-recharge`);
    expect(await page.getByRole('status').first().textContent()).toMatch(/settings saved/);
    expect(await page.getByLabel('Recharge amount (USD)').inputValue()).toBe('25.00');
    await expectAccessible(page);

    const settings = await t.app.billing.prepaid.overview(account.id);
    expect(settings.settings).toMatchObject({
      autoRecharge: true,
      thresholdUsdMicros: 10_000_000n,
      amountUsdMicros: 25_000_000n,
      monthlyMaxUsdMicros: 100_000_000n,
      paymentMethodId: 'pm_card_visa',
    });
    expect(settings.balanceUsdMicros).toBe(50_000_000n);
    expect(fake.violations).toEqual([]);
  });
});
