// What the console's balance page reads and does, through the API and the real `stripe` SDK
// against test/support/fake-stripe.ts: saving a card with Checkout in setup mode (the card
// then pays the auto-recharge), the whole ledger paged with cursors, and the hostile input
// and foreign callers each new route refuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { bearer, call } from '../support/credentials.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { USD, WEI_PER_USD, startPrepaidApp } from './prepaid-support.ts';
import type { PrepaidTestApp } from './prepaid-support.ts';

const clock = fixedClock('2026-11-10T12:00:00Z');
let app: PrepaidTestApp;
let t: TestApp;
let fake: FakeStripe;
let admin: string;
const validate = createResponseValidator();

beforeAll(async () => {
  app = await startPrepaidApp(clock, 'whsec_test_secret_for_prepaid_console');
  ({ t, fake, admin } = app);
});
afterAll(async () => app?.close());

const prepaidAccount = () => app.account();
const deliver = (type: string, object: Record<string, unknown>) => app.deliver(type, object);

describe('Save a card (Checkout in setup mode)', () => {
  it('saves the SetupIntent’s card once completed, and auto-recharge charges it', async () => {
    const who = await prepaidAccount();
    const created = await call(t, 'POST', `/v1/accounts/${who.accountId}/setup-checkout`, {
      headers: bearer(who.secret),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    validate('post', '/v1/accounts/{id}/setup-checkout', created.status, created.body);
    const stored = fake.checkoutSessions.get(created.body.id)!;
    expect(stored).toMatchObject({
      mode: 'setup',
      metadata: { tollhouse_account_id: who.accountId },
    });
    expect(String(stored.success_url)).toMatch(
      /\/console\/balance\?setup=\{CHECKOUT_SESSION_ID\}$/,
    );
    // Not completed yet: nothing is saved.
    expect(await deliver('checkout.session.completed', { ...stored })).toBe('ignored');
    const session = fake.completeSetup(created.body.id, 'pm_card_saved_by_setup');
    expect(await deliver('checkout.session.completed', session)).toBe('applied');
    const view = await call(t, 'GET', `/v1/accounts/${who.accountId}/prepaid`, {
      headers: bearer(who.secret),
    });
    expect(view.body.auto_recharge.payment_method_saved).toBe(true);

    // A grant, usage below the threshold, and the pass charges the saved card.
    await call(t, 'POST', `/v1/accounts/${who.accountId}/credits`, {
      headers: bearer(admin),
      body: { kind: 'grant', amount_usd_micros: String(5n * USD), reference: 'welcome' },
    });
    const settings = await call(t, 'PUT', `/v1/accounts/${who.accountId}/auto-recharge`, {
      headers: bearer(who.secret),
      body: {
        enabled: true,
        threshold_usd_micros: String(10n * USD),
        amount_usd_micros: String(25n * USD),
        monthly_max_usd_micros: String(100n * USD),
      },
    });
    expect(settings.status).toBe(200);
    await t.app.metering.service.record([
      {
        source: 'test/prepaid-console',
        eventId: `setup-${who.accountId}`,
        occurredAt: clock(),
        accountId: who.accountId,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: 'llm',
        modelId: 'm',
        unit: 'requests',
        quantity: 1n,
        feeWei: 1n * WEI_PER_USD,
        status: 200,
        latencyMs: 1,
        attributes: {},
      },
    ]);
    await t.app.billing.prepaid.run();
    const charged = [...fake.paymentIntents.values()].filter(
      (p) => (p.metadata as Record<string, string>).tollhouse_account_id === who.accountId,
    );
    expect(charged).toHaveLength(1);
    expect(charged[0]).toMatchObject({ payment_method: 'pm_card_saved_by_setup', amount: 2500 });
    expect(fake.violations).toEqual([]);
  });

  it('refuses foreign callers, anonymous ones and unknown accounts', async () => {
    const who = await prepaidAccount();
    const other = await prepaidAccount();
    const before = fake.checkoutSessions.size;
    const path = `/v1/accounts/${who.accountId}/setup-checkout`;
    expect((await call(t, 'POST', path, { headers: bearer(other.secret) })).status).toBe(403);
    expect((await call(t, 'POST', path)).status).toBe(401);
    const unknown = await call(t, 'POST', '/v1/accounts/acct_nosuchaccount/setup-checkout', {
      headers: bearer(admin),
    });
    expect(unknown.status).toBe(404);
    const malformed = await call(t, 'POST', '/v1/accounts/not-an-account/setup-checkout', {
      headers: bearer(admin),
    });
    expect(malformed.status).toBe(400);
    expect(fake.checkoutSessions.size).toBe(before);
  });
});

describe('GET /v1/accounts/{id}/ledger', () => {
  it('pages the whole ledger newest first, and refuses cursors it did not make', async () => {
    const who = await prepaidAccount();
    const other = await prepaidAccount();
    for (let i = 1; i <= 5; i++) {
      const r = await call(t, 'POST', `/v1/accounts/${who.accountId}/credits`, {
        headers: bearer(admin),
        body: { kind: 'grant', amount_usd_micros: String(BigInt(i) * USD), reference: `g${i}` },
      });
      expect(r.status).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await call(t, 'GET', `/v1/accounts/${who.accountId}/ledger?limit=2${query}`, {
        headers: bearer(who.secret),
      });
      expect(page.status).toBe(200);
      validate('get', '/v1/accounts/{id}/ledger', page.status, page.body);
      seen.push(
        ...page.body.entries.map((e: { amount_usd_micros: string }) => e.amount_usd_micros),
      );
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual(['5000000', '4000000', '3000000', '2000000', '1000000']);

    const first = await call(t, 'GET', `/v1/accounts/${who.accountId}/ledger?limit=2`, {
      headers: bearer(who.secret),
    });
    const mine = first.body.next_cursor as string;
    const base = `/v1/accounts/${who.accountId}/ledger`;
    for (const query of [
      'limit=0',
      'limit=201',
      'limit=abc',
      'limit=1e2',
      'cursor=%00',
      'cursor=not-a-cursor',
      `cursor=${Buffer.from(`ledger|${who.accountId}|0`).toString('base64url')}`,
      `cursor=${Buffer.from(`ledger|${who.accountId}|99999999999999999999`).toString('base64url')}`,
      'unknown=1',
    ]) {
      const r = await call(t, 'GET', `${base}?${query}`, { headers: bearer(who.secret) });
      expect({ query, status: r.status }).toEqual({ query, status: 400 });
      expect(r.body.error).toBe('InvalidRequest');
    }
    // Another account's cursor, on its own list, is not this list's.
    const theirs = await call(t, 'GET', `/v1/accounts/${other.accountId}/ledger?cursor=${mine}`, {
      headers: bearer(other.secret),
    });
    expect(theirs.status).toBe(400);
    expect((await call(t, 'GET', base, { headers: bearer(other.secret) })).status).toBe(403);
    expect((await call(t, 'GET', base)).status).toBe(401);
  });
});

describe('GET /v1/webhooks/health', () => {
  it('shows operators the backlog, and no one else', async () => {
    const who = await prepaidAccount();
    const health = await call(t, 'GET', '/v1/webhooks/health', { headers: bearer(admin) });
    expect(health.status).toBe(200);
    validate('get', '/v1/webhooks/health', health.status, health.body);
    expect(health.body).toMatchObject({ failing_endpoints: 0, disabled_endpoints: 0 });
    expect(
      (await call(t, 'GET', '/v1/webhooks/health', { headers: bearer(who.secret) })).status,
    ).toBe(403);
    expect(
      (await call(t, 'GET', '/v1/webhooks/health?x=1', { headers: bearer(admin) })).status,
    ).toBe(400);
  });
});
