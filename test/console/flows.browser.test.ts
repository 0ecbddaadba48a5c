// In headless Chromium, the console's everyday flows end to end against the real app: usage
// ingested through /v1 shows up in the chart and totals, a statement downloads as CSV, and an
// operator's credit grant reaches the customer's balance. Every page passes axe-core, and each
// is saved to docs/screenshots for docs/console.md.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { UsageEvent } from '../../src/metering/index.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock, monthOfUtc, monthStartUtc } from '../support/clock.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { startFakeStripe } from '../support/fake-stripe.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import {
  HAVE_CHROMIUM,
  authorize,
  expectAccessible,
  launch,
  screenshot,
  signIn,
  startConsoleApp,
} from './support.ts';
import { accountWithPassword, newAccount } from '../support/fixtures.ts';

function usageEvent(accountId: string, id: string, time: Date, pipeline: string, feeWei: string) {
  return {
    specversion: '1.0',
    id,
    source: 'console-test',
    type: 'tollhouse.usage.v1',
    subject: accountId,
    time: time.toISOString(),
    data: { pipeline, model_id: 'sdxl', unit: 'requests', quantity: '1', fee_wei: feeWei },
  };
}

async function visit(page: Page, url: string, name: string) {
  const response = await page.goto(url);
  expect(response?.status(), url).toBe(200);
  await expectAccessible(page);
  await screenshot(page, name);
}

// A browser makes these slower than API tests, and the machine may be busy.
describe.skipIf(!HAVE_CHROMIUM)('console flows in a browser', () => {
  let t: TestApp;
  let browser: Browser;
  let customerId: string;
  let usageKey: string;
  let fake: FakeStripe;
  // Two more customers with network fees last month: their statements are what the operator's
  // Stripe sync view shows (one synced, one failing).
  const billed: string[] = [];

  beforeAll(async () => {
    fake = await startFakeStripe();
    t = await startConsoleApp(
      {
        BILLING_ETH_USD_RATE: '3000',
        BILLING_AUTO_CLOSE: 'false',
        STRIPE_SECRET_KEY: fake.secretKey,
        STRIPE_API_BASE: fake.url,
      },
      // "This month" and "last month" are read from this clock by the test and the app alike;
      // `.ci/run` runs this file again at the edges of months and years (TOLLHOUSE_TEST_NOW).
      fixedClock(),
    );
    browser = await launch();
    customerId = (await accountWithPassword(t, 'customer@example.com')).id;
    await accountWithPassword(t, 'operator@example.com', { admin: true });
    usageKey = (await issueKey(t, customerId, { scopes: ['usage:write'] })).secret;
    const admin = await adminKey(t);
    const plan = await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin.secret),
      body: {
        id: 'pro',
        name: 'Pro',
        monthly_fee_usd_micros: '10000000',
        included_usd_micros: '2000000',
        prices: [
          { pipeline: 'text-to-image', unit: 'requests', currency: 'usd_micros', amount: '2500' },
        ],
      },
    });
    expect(plan.status).toBe(201);
    const cap = await call(t, 'PUT', `/v1/accounts/${customerId}/spend-caps`, {
      headers: bearer(admin.secret),
      body: { monthly_cap_wei: '10000000000000000' },
    });
    expect(cap.status).toBe(200);
    const lastMonth = new Date(monthStartUtc(t.clock(), 1).getTime() + 86_400_000);
    for (const name of ['a', 'b']) {
      const accountId = await newAccount(t);
      billed.push(accountId);
      const event: UsageEvent = {
        source: 'console-test',
        eventId: `billed-${name}`,
        occurredAt: lastMonth,
        accountId,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: 'llm',
        modelId: 'm',
        unit: 'requests',
        quantity: 1n,
        feeWei: 10_000_000_000_000_000n,
        status: 200,
        latencyMs: 1,
        attributes: {},
      };
      await t.app.metering.service.record([event]);
    }
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await fake?.close();
  });

  it('shows usage ingested through /v1 in the overview chart and totals, and the explorer', async () => {
    const page = await signIn(browser, t, 'customer@example.com');
    await expect(page.locator('#total-events').textContent()).resolves.toBe('0');
    await expect(page.locator('#usage-chart').count()).resolves.toBe(0);

    // Every event in this month, whatever the date: the customer's last-month statement is
    // then always "skipped" (no fees), which the Stripe sync counts below rely on.
    const now = t.clock().getTime();
    const thisMonth = (ms: number) => new Date(Math.max(ms, monthStartUtc(t.clock()).getTime()));
    const events = [
      usageEvent(
        customerId,
        'e1',
        thisMonth(now - 3 * 86_400_000),
        'text-to-image',
        '1000000000000000',
      ),
      usageEvent(customerId, 'e2', thisMonth(now - 60_000), 'text-to-image', '2000000000000000'),
      usageEvent(customerId, 'e3', thisMonth(now - 60_000), 'llm', '500000000000000'),
    ];
    const ingested = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(usageKey),
      body: events,
    });
    expect(ingested.body.accepted).toBe(3);

    await page.reload();
    await expect(page.locator('#total-events').textContent()).resolves.toBe('3');
    const chart = page.getByRole('img', { name: /Requests per day by pipeline/ });
    await expect(chart.isVisible()).resolves.toBe(true);
    await expect(page.locator('#usage-chart rect').count()).resolves.toBeGreaterThanOrEqual(2);
    await expect(page.locator('#usage-chart .legend').textContent()).resolves.toMatch(
      /text-to-image: 2[\s\S]*llm: 1/,
    );
    const spentWei = events.reduce((s, e) => s + BigInt(e.data.fee_wei), 0n);
    const spent = (await page.locator('#month-spend').textContent())!;
    expect(spent).toBe(`${Number(spentWei) / 1e18} ETH`);
    const percent = ((Number(spentWei) / 1e16) * 100).toFixed(1);
    await expect(page.locator('#month-spend + p').textContent()).resolves.toBe(
      `of a 0.01 ETH cap (${percent}%)`,
    );
    await expectAccessible(page);
    await screenshot(page, 'overview');
    // The same page on a phone: the navigation moves above the content and nothing overflows.
    await page.setViewportSize({ width: 390, height: 844 });
    await expectAccessible(page);
    const overflow = await page.evaluate(
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the DOM lives in the page
      () => (globalThis as any).document.documentElement.scrollWidth > 390,
    );
    expect(overflow).toBe(false);
    await screenshot(page, 'overview-phone');
    await page.setViewportSize({ width: 1280, height: 900 });

    await visit(page, `${t.url}/console/usage`, 'usage');
    await expect(page.locator('#usage-totals').textContent()).resolves.toContain('3 requests');
    await page.getByRole('textbox', { name: 'Pipeline' }).fill('llm');
    await page.getByRole('button', { name: 'Show usage' }).click();
    await expect(page.locator('#usage-totals').textContent()).resolves.toContain('1 requests');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download CSV' }).click(),
    ]);
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\n')[0]).toBe('day,pipeline,unit,events,failed_events,quantity,fee_wei');
    expect(csv).toContain(',llm,requests,1,0,1,500000000000000');
    expect(csv).not.toContain('text-to-image');

    // A customer registers its own app: the secret is shown once, the app is listed.
    await page.getByRole('link', { name: 'Apps' }).click();
    await page.waitForURL(`${t.url}/console/apps`);
    await expectAccessible(page);
    await page.getByLabel('Name').fill('Customer portal');
    await page.getByLabel(/Web: server-side/).check();
    await page
      .getByLabel('Redirect URIs', { exact: true })
      .fill('https://portal.example.com/callback');
    await page.getByLabel('Allowed origins (CORS)').fill('https://portal.example.com');
    await page.getByRole('button', { name: 'Register app' }).click();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    expect(secret).toMatch(/^thcs_/);
    // The page's script shows the Copy button once it has loaded: wait for it (isVisible does not).
    await page.getByRole('button', { name: 'Copy' }).waitFor({ state: 'visible' });
    const appRow = page.getByRole('row', { name: /Customer portal/ });
    await expect(appRow.textContent()).resolves.toContain('https://portal.example.com/callback');
    await expectAccessible(page);
    await screenshot(page, 'apps-customer');
    // The wide apps table scrolls inside its region; the page itself does not overflow.
    const pageWidth = await page.evaluate(
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the DOM lives in the page
      () => (globalThis as any).document.documentElement.scrollWidth as number,
    );
    expect(pageWidth).toBe(page.viewportSize()!.width);
    const [owned] = (await t.app.identity.apps.list(customerId)).items;
    expect(owned).toMatchObject({ name: 'Customer portal', ownerAccountId: customerId });
    // Shown once: the page loaded again lists the app without its secret.
    await page.goto(`${t.url}/console/apps`);
    await expect(page.getByRole('row', { name: /Customer portal/ }).count()).resolves.toBe(1);
    await expect(page.content()).resolves.not.toContain(secret);

    // It edits the app's redirect URIs on the app's page; the form shows what was saved and
    // the authorization endpoint accepts the new URI (and no longer the replaced one).
    await page
      .getByRole('row', { name: /Customer portal/ })
      .getByRole('link', { name: /Edit/ })
      .click();
    await page.waitForURL(`${t.url}/console/apps/${owned!.id}`);
    await expectAccessible(page);
    const redirects = page.getByLabel('Redirect URIs', { exact: true });
    await expect(redirects.inputValue()).resolves.toBe('https://portal.example.com/callback');
    await redirects.fill(
      'https://portal.example.com/auth/callback\nhttp://localhost:8080/callback',
    );
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.waitForURL(`${t.url}/console/apps/${owned!.id}?done=saved`);
    await expect(page.getByRole('status').first().textContent()).resolves.toContain(
      'The changes are saved.',
    );
    await expect(page.getByLabel('Redirect URIs', { exact: true }).inputValue()).resolves.toBe(
      'https://portal.example.com/auth/callback\nhttp://localhost:8080/callback',
    );
    await expectAccessible(page);
    await screenshot(page, 'app-edit');
    expect((await t.app.identity.apps.get(owned!.id)).redirectUris).toEqual([
      'https://portal.example.com/auth/callback',
      'http://localhost:8080/callback',
    ]);
    const accepted = await authorize(t, owned!.clientId, 'http://localhost:8080/callback');
    expect(accepted.status).toBe(303);
    expect(accepted.location).not.toContain('error=');
    const replaced = await authorize(t, owned!.clientId, 'https://portal.example.com/callback');
    expect(replaced.status).toBe(400);
    // A refused edit shows the API's reason and keeps what was typed.
    await page
      .getByLabel('Redirect URIs', { exact: true })
      .fill('http://portal.example.com/callback');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toContain(
      'http is only allowed for loopback addresses',
    );
    await expect(page.getByLabel('Redirect URIs', { exact: true }).inputValue()).resolves.toBe(
      'http://portal.example.com/callback',
    );
    await expectAccessible(page);
    await page.context().close();
  });

  it('downloads a closed month’s statement as CSV', async () => {
    const lastMonth = monthStartUtc(t.clock(), 1);
    const month = lastMonth.toISOString().slice(0, 7);
    const ingested = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(usageKey),
      body: [
        usageEvent(
          customerId,
          's1',
          new Date(lastMonth.getTime() + 86_400_000),
          'text-to-image',
          '0',
        ),
        usageEvent(
          customerId,
          's2',
          new Date(lastMonth.getTime() + 2 * 86_400_000),
          'text-to-image',
          '0',
        ),
      ],
    });
    expect(ingested.body.accepted).toBe(2);
    await t.app.billing.service.closeMonth(month);

    const page = await signIn(browser, t, 'customer@example.com');
    await visit(page, `${t.url}/console/statements`, 'statements');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: `CSV for ${month}` }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^stmt_[0-9A-Za-z]+\.csv$/);
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\n')[0]).toMatch(/pipeline/);
    expect(csv).toContain('text-to-image');

    await page.getByRole('link', { name: month, exact: true }).click();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
      `Statement for ${month}`,
    );
    await expectAccessible(page);
    await screenshot(page, 'statement');
    // "Your account" (issue #18 item 7): its sign-ins table and forms pass axe as well.
    await visit(page, `${t.url}/console/account`, 'your-account');
    await page.context().close();
  });

  it('lets an operator grant credit, and the customer sees the new balance', async () => {
    const customer = await signIn(browser, t, 'customer@example.com');
    await expect(customer.locator('#balance').textContent()).resolves.toBe('$0.00');
    // Operator pages are not for customers, even by URL.
    const refused = await customer.goto(`${t.url}/console/admin/accounts`);
    expect(refused?.status()).toBe(403);
    await expect(customer.getByRole('navigation').textContent()).resolves.not.toContain('Operator');

    const operator = await signIn(browser, t, 'operator@example.com');
    await expect(operator.getByRole('navigation').textContent()).resolves.toContain('Operator');
    // An operator's own pages show the operator's own account, not everyone's.
    await expect(operator.locator('#total-events').textContent()).resolves.toBe('0');
    await operator.goto(`${t.url}/console/statements`);
    await expect(operator.getByRole('main').textContent()).resolves.toContain('No statements yet');
    await visit(operator, `${t.url}/console/admin/accounts`, 'accounts');
    // Search by part of the email; the result links to the account.
    await operator.getByLabel('Email or account id').fill('customer@');
    await operator.getByRole('button', { name: 'Search' }).click();
    await operator.waitForURL(/\/console\/admin\/accounts\?q=customer%40$/);
    await expectAccessible(operator);
    await screenshot(operator, 'accounts-search');
    await operator.getByRole('link', { name: customerId }).click();
    await operator.waitForURL(`${t.url}/console/admin/accounts/${customerId}`);
    await expect(operator.locator('#account-email').textContent()).resolves.toBe(
      'customer@example.com',
    );
    await operator.getByLabel('Amount in US dollars').fill('25');
    await operator.getByLabel('Memo (optional)').fill('welcome credit');
    await operator.getByRole('button', { name: 'Grant credit' }).click();
    await operator.waitForURL(`${t.url}/console/admin/accounts/${customerId}?done=credit`);
    await expect(operator.locator('#account-balance').textContent()).resolves.toBe('$25.00');
    await expectAccessible(operator);
    await screenshot(operator, 'account');

    await operator.getByRole('combobox', { name: 'Plan' }).selectOption('pro');
    await operator.getByRole('button', { name: 'Change plan' }).click();
    await operator.waitForURL(/done=plan$/);
    // A plan change starts with the next month (billing's rule); the page lists it as upcoming.
    await expect(operator.locator('#plan-changes').textContent()).resolves.toMatch(
      /^\s*pro from \d{4}-\d{2}\s*$/,
    );

    await customer.goto(`${t.url}/console`);
    await expect(customer.locator('#balance').textContent()).resolves.toBe('$25.00');

    await visit(operator, `${t.url}/console/admin/plans`, 'plans');
    await visit(operator, `${t.url}/console/admin/usage`, 'all-usage');
    await expect(operator.getByRole('table', { name: 'Usage' }).textContent()).resolves.toContain(
      customerId,
    );
    // Stripe: the first billed statement syncs, the second fails (Stripe answers 500).
    const month = monthOfUtc(t.clock(), 1);
    const statements = await t.app.billing.service.statements({ month }, 10);
    const statementOf = (accountId: string) =>
      statements.find((s) => s.accountId === accountId)!.id;
    const [synced, failing] = [statementOf(billed[0]!), statementOf(billed[1]!)];
    expect((await t.app.billing.stripe.run({ statementId: synced }))[0]!.state).toBe('invoiced');
    fake.failNext(/^\/v1\/customers$/, 1);
    expect((await t.app.billing.stripe.run({ statementId: failing }))[0]!.error).toBe(
      'Injected failure',
    );
    await visit(operator, `${t.url}/console/admin/billing`, 'month-close');
    await expect(operator.locator('#stripe-configured').textContent()).resolves.toBe('yes');
    const failingRows = operator.getByRole('table', { name: /^Failing Stripe syncs/ });
    await expect(failingRows.getByRole('row').nth(1).innerText()).resolves.toMatch(
      new RegExp(`${failing}\\s+${billed[1]}\\s+${month}\\s+1\\s+Injected failure`),
    );
    const invoice = [...fake.invoices.values()][0]!;
    const byStatement = operator.getByRole('table', { name: /^Stripe sync by statement/ });
    await expect(
      byStatement.getByRole('row').filter({ hasText: synced }).innerText(),
    ).resolves.toMatch(
      new RegExp(
        `synced\\s+\\(invoiced\\)\\s+${String(invoice.id)}\\s+${String(invoice.customer)}`,
      ),
    );
    await expect(
      operator.getByRole('table', { name: 'Stripe sync per closed month' }).innerText(),
    ).resolves.toMatch(new RegExp(`${month}\\s+3\\s+0\\s+1\\s+1\\s+0\\s+0\\s+1`));
    await visit(operator, `${t.url}/console/admin/signer`, 'signer-disabled');
    // Said once, in a sentence: not "The signer is disabled: signer disabled: …", nor again
    // under "Needs attention".
    const signerPage = await operator.locator('main').innerText();
    expect(signerPage).toContain(
      'The signer is disabled: ETH_RPC_URL is not set; SIGNER_KEYSTORE_FILE is not set.',
    );
    expect(signerPage.match(/disabled/gi)).toHaveLength(1);
    await visit(operator, `${t.url}/console/admin/health`, 'health');
    await visit(operator, `${t.url}/console/apps`, 'apps');
    await operator.getByLabel('Name').fill('Storefront');
    await operator.getByLabel(/Web: server-side/).check();
    await operator
      .getByLabel('Redirect URIs', { exact: true })
      .fill('https://shop.example.com/callback');
    await operator.getByRole('button', { name: 'Register app' }).click();
    await expect(operator.locator('#new-secret').textContent()).resolves.toMatch(/^thcs_/);
    await expectAccessible(operator);
  });

  it('keeps a long spend figure inside its card at 1280 px', async () => {
    // Wei have 18 decimals: a spend of 123,456 ETH and change is 29 characters on the page.
    const spender = await accountWithPassword(t, 'big-spender@example.com');
    const event: UsageEvent = {
      source: 'console-test',
      eventId: 'big-spend',
      occurredAt: t.clock(),
      accountId: spender.id,
      appId: null,
      keyId: null,
      clientId: null,
      endUserId: null,
      pipeline: 'llm',
      modelId: 'm',
      unit: 'requests',
      quantity: 1n,
      feeWei: 123_456_123_456_789_012_345_678n,
      status: 200,
      latencyMs: 1,
      attributes: {},
    };
    await t.app.metering.service.record([event]);
    const page = await signIn(browser, t, 'big-spender@example.com');
    // Without a key the console opens on "get started"; the figure is on the overview.
    await page.goto(`${t.url}/console`);
    await page.setViewportSize({ width: 1280, height: 900 });
    await expect(page.locator('#month-spend').textContent()).resolves.toBe(
      '123456.123456789012345678 ETH',
    );
    const overflows = await page.evaluate(() => {
      interface Box {
        id: string;
        scrollWidth: number;
        clientWidth: number;
        closest(selector: string): Box;
        getBoundingClientRect(): { right: number };
      }
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the DOM lives in the page
      const doc = (globalThis as any).document as { querySelectorAll(s: string): Iterable<Box> };
      return [...doc.querySelectorAll('.cards .figure')].map((figure) => {
        const card = figure.closest('.card');
        return {
          id: figure.id,
          figure: figure.scrollWidth > figure.clientWidth,
          card: card.scrollWidth > card.clientWidth,
          right: figure.getBoundingClientRect().right > card.getBoundingClientRect().right,
        };
      });
    });
    expect(overflows).toEqual(
      ['total-events', 'month-spend', 'balance'].map((id) => ({
        id,
        figure: false,
        card: false,
        right: false,
      })),
    );
    await expectAccessible(page);
  });
});
