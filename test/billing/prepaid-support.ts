// The set-up the prepaid test files share: the app with billing on a fixed ETH/USD rate and
// Stripe pointed at the fake (test/support/fake-stripe.ts), an operator key, accounts put in
// prepaid mode through the API, and Stripe webhooks signed as Stripe signs them.
import { expect } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import type { TestClock } from '../support/clock.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { startFakeStripe } from '../support/fake-stripe.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { newAccount } from '../support/fixtures.ts';

export const USD = 1_000_000n;
// At 2000 USD/ETH (BILLING_ETH_USD_RATE below), 0.0005 ETH is one dollar.
export const WEI_PER_USD = 500_000_000_000_000n;

export interface PrepaidTestApp {
  t: TestApp;
  fake: FakeStripe;
  /** An operator key's secret. */
  admin: string;
  /** Sends a Stripe event for `object`, signed with the webhook secret; its outcome. */
  deliver(type: string, object: Record<string, unknown>): Promise<string>;
  /** A new account with a `billing:read` key, in `mode` (prepaid unless said). */
  account(mode?: 'prepaid' | 'postpaid'): Promise<{ accountId: string; secret: string }>;
  /** Switches an account's billing mode as an operator. */
  setMode(accountId: string, mode: 'prepaid' | 'postpaid'): Promise<void>;
  close(): Promise<void>;
}

export async function startPrepaidApp(
  clock: TestClock,
  webhookSecret: string,
): Promise<PrepaidTestApp> {
  const fake = await startFakeStripe();
  const t = await startTestApp({
    clock,
    env: {
      BILLING_ETH_USD_RATE: '2000',
      BILLING_AUTO_CLOSE: 'false',
      // The tests run the prepaid passes themselves.
      BILLING_PREPAID_INTERVAL_SECONDS: '3600',
      BILLING_TOPUP_AMOUNTS_USD: '25,50',
      STRIPE_SECRET_KEY: fake.secretKey,
      STRIPE_WEBHOOK_SECRET: webhookSecret,
      STRIPE_API_BASE: fake.url,
    },
  });
  const admin = (await adminKey(t)).secret;

  async function setMode(accountId: string, mode: 'prepaid' | 'postpaid') {
    const response = await call(t, 'PUT', `/v1/accounts/${accountId}/billing-mode`, {
      headers: bearer(admin),
      body: { mode },
    });
    expect(response.status).toBe(200);
    expect(response.body.mode).toBe(mode);
  }

  return {
    t,
    fake,
    admin,
    async deliver(type, object) {
      const signed = fake.event(type, object, webhookSecret, clock());
      const response = await fetch(`${t.url}/webhooks/stripe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': signed.signature },
        body: signed.body,
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { outcome: string }).outcome;
    },
    async account(mode = 'prepaid') {
      const accountId = await newAccount(t);
      const key = await issueKey(t, accountId, { scopes: ['billing:read'] });
      if (mode === 'prepaid') await setMode(accountId, 'prepaid');
      return { accountId, secret: key.secret };
    },
    setMode,
    async close() {
      await t.close();
      await fake.close();
    },
  };
}
