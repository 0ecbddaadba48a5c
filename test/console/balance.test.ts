// The balance page's forms over real HTTP: auto-recharge and alert e-mails saved through the
// API, bad amounts refused with a page that says why and nothing written, the billing mode
// for operators only, a customer's `account=` ignored (it acts on its own account), and the
// page's CSP allowing Stripe Checkout as a form target and nothing else new.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { post, signInHttp, startConsoleApp } from './support.ts';
import type { HttpSession } from './support.ts';

let t: TestApp;
let customer: HttpSession;
let customerId: string;
let otherId: string;
let operator: HttpSession;

beforeAll(async () => {
  t = await startConsoleApp({ BILLING_ETH_USD_RATE: '2000' });
  customerId = (await accountWithPassword(t, 'balance@example.com')).id;
  otherId = (await accountWithPassword(t, 'balance-other@example.com')).id;
  await accountWithPassword(t, 'balance-op@example.com', { admin: true });
  customer = await signInHttp(t, 'balance@example.com');
  operator = await signInHttp(t, 'balance-op@example.com');
});
afterAll(async () => t?.close());

const settings = async (accountId: string) =>
  (await t.app.billing.prepaid.overview(accountId)).settings;

describe('console balance page', () => {
  it('renders with a CSP that lets forms go on to Stripe Checkout only', async () => {
    const page = await customer.jar.request(`${t.url}/console/balance`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("form-action 'self' https://checkout.stripe.com;");
    expect(csp).toContain("script-src 'self';");
    const text = await page.text();
    expect(text).toContain('id="balance"');
    expect(text).toContain('Add credit');
    // Without Stripe, Add credit says so instead of failing obscurely.
    const add = await post(t, customer, '/console/balance/add-credit', {
      csrf: customer.csrf,
      amount_usd_micros: '10000000',
    });
    expect(add.status).toBe(400);
    expect(add.text).toContain('has not set up Stripe');
  });

  it('saves auto-recharge, refuses bad amounts, and ignores a customer’s account=', async () => {
    for (const [threshold, amount] of [
      ['ten', '25'],
      ['10', '-5'],
      ['10', '1e3'],
      ['10', ''],
    ]) {
      const refused = await post(t, customer, '/console/balance/auto-recharge', {
        csrf: customer.csrf,
        enabled: 'on',
        threshold: threshold!,
        amount: amount!,
        monthly_max: '100',
      });
      expect({ threshold, amount, status: refused.status }).toEqual({
        threshold,
        amount,
        status: 400,
      });
      expect(refused.text).toMatch(/enter dollars/);
    }
    // The service's own rule: the monthly maximum must allow one recharge.
    const tooSmall = await post(t, customer, '/console/balance/auto-recharge', {
      csrf: customer.csrf,
      enabled: 'on',
      threshold: '10',
      amount: '25',
      monthly_max: '5',
    });
    expect(tooSmall.status).toBe(400);
    expect(tooSmall.text).toContain('monthly_max_usd_micros');
    expect((await settings(customerId)).autoRecharge).toBe(false);

    const saved = await post(t, customer, '/console/balance/auto-recharge', {
      csrf: customer.csrf,
      account: otherId,
      enabled: 'on',
      threshold: '10',
      amount: '25.5',
      monthly_max: '100',
    });
    expect(saved.status).toBe(303);
    expect(saved.location).toBe('/console/balance?done=auto-recharge');
    expect(await settings(customerId)).toMatchObject({
      autoRecharge: true,
      thresholdUsdMicros: 10_000_000n,
      amountUsdMicros: 25_500_000n,
      monthlyMaxUsdMicros: 100_000_000n,
    });
    expect((await settings(otherId)).autoRecharge).toBe(false);
  });

  it('saves the alert e-mail choices', async () => {
    const saved = await post(t, customer, '/console/balance/alert-emails', {
      csrf: customer.csrf,
      alert: ['balance.low', 'recharge.failed'],
    });
    expect(saved.status).toBe(303);
    const muted = await t.app.database.db
      .selectFrom('alert_email_opt_outs')
      .select('event_type')
      .where('account_id', '=', customerId)
      .orderBy('event_type')
      .execute();
    expect(muted.map((m) => m.event_type)).toEqual([
      'balance.depleted',
      'balance.recharged',
      'key.rotation_due',
      'spend.threshold_reached',
      'statement.closed',
    ]);
  });

  it('lets operators, and only operators, switch the billing mode of an account', async () => {
    const refused = await post(t, customer, '/console/balance/mode', {
      csrf: customer.csrf,
      mode: 'prepaid',
    });
    expect(refused.status).toBe(403);
    expect((await settings(customerId)).mode).toBe('postpaid');
    const crossSite = await post(
      t,
      operator,
      '/console/balance/mode',
      { csrf: operator.csrf, account: otherId, mode: 'prepaid' },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);
    expect((await settings(otherId)).mode).toBe('postpaid');
    const bad = await post(t, operator, '/console/balance/mode', {
      csrf: operator.csrf,
      account: otherId,
      mode: 'free',
    });
    expect(bad.status).toBe(400);
    const done = await post(t, operator, '/console/balance/mode', {
      csrf: operator.csrf,
      account: otherId,
      mode: 'prepaid',
    });
    expect(done.status).toBe(303);
    expect(done.location).toBe(`/console/balance?done=mode&account=${otherId}`);
    expect((await settings(otherId)).mode).toBe('prepaid');
    const page = await operator.jar.request(`${t.url}/console/balance?account=${otherId}`);
    const text = await page.text();
    expect(text).toContain(`<code>${otherId}</code>`);
    expect(text).toMatch(/id="billing-mode">prepaid</);
  });

  it('shows operators webhook health and failed auto-recharges on the Health page', async () => {
    const now = new Date();
    await t.app.database.db
      .insertInto('recharges')
      .values({
        window_key: `${otherId}-1`,
        account_id: otherId,
        month: '2026-01-01',
        amount_usd_micros: '25000000',
        state: 'failed',
        attempts: 5,
        next_attempt_at: now,
        last_error: 'Your card has insufficient funds.',
        created_at: now,
        updated_at: now,
      })
      .execute();
    const page = await operator.jar.request(`${t.url}/console/admin/health`);
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain('id="webhook-pending">0<');
    expect(text).toContain('Your card has insufficient funds.');
    expect(text).toContain(`/console/balance?account=${otherId}`);
    const refused = await customer.jar.request(`${t.url}/console/admin/health`);
    expect(refused.status).toBe(403);
  });
});
