// Stripe: the real `stripe` SDK against test/support/fake-stripe.ts. Sync is idempotent across
// retries and crashes (every POST carries a deterministic Idempotency-Key, progress is saved
// per step); webhooks are verified, replays and forgeries refused, top-ups credited once.
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsageEvent } from '../../src/metering/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, issueKey } from '../support/credentials.ts';
import { startFakeStripe } from '../support/fake-stripe.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

const WEBHOOK_SECRET = 'whsec_test_secret_for_tollhouse';
let t: TestApp;
let fake: FakeStripe;
const accounts: string[] = [];
const validate = createResponseValidator();

function usage(accountId: string, i: number, pipeline: string): UsageEvent {
  return {
    source: 'test/stripe',
    eventId: `${accountId}-${i}`,
    occurredAt: new Date(`2026-09-${String(10 + i).padStart(2, '0')}T10:00:00Z`),
    accountId,
    appId: null,
    keyId: null,
    clientId: null,
    endUserId: null,
    pipeline,
    modelId: 'm',
    unit: 'requests',
    quantity: 3n,
    // 0.01234567 ETH at 2000 USD/ETH = $24.69134
    feeWei: 12_345_670_000_000_000n,
    status: 200,
    latencyMs: 1,
    attributes: {},
  };
}

beforeAll(async () => {
  fake = await startFakeStripe();
  t = await startTestApp({
    env: {
      BILLING_ETH_USD_RATE: '2000',
      BILLING_AUTO_CLOSE: 'false',
      STRIPE_SECRET_KEY: fake.secretKey,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_API_BASE: fake.url,
      STRIPE_FINALIZE_INVOICES: 'true',
    },
  });
  for (let i = 0; i < 3; i++) accounts.push(await newAccount(t));
  await t.app.metering.service.record(
    accounts.flatMap((a) => [usage(a, 1, 'llm'), usage(a, 2, 'text-to-image')]),
  );
  // The first account has credit that covers everything: nothing to invoice.
  await t.app.billing.service.addLedgerEntry(
    { actor: 'test', requestId: null },
    { accountId: accounts[0]!, kind: 'grant', amountUsdMicros: 1_000_000_000n, reference: 'big' },
  );
  await t.app.billing.service.closeMonth('2026-09');
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

async function syncState(statementId: string) {
  return t.app.database.db
    .selectFrom('stripe_sync')
    .selectAll()
    .where('statement_id', '=', statementId)
    .executeTakeFirstOrThrow();
}

describe('Stripe sync', () => {
  it('pushes each statement once, surviving failures and a crash between steps', async () => {
    const statements = await t.app.billing.service.statements({ month: '2026-09' }, 10);
    const due = statements.filter((s) => s.totalUsdMicros > 0n);
    expect(due).toHaveLength(2);
    const [first, second] = due as [(typeof due)[0], (typeof due)[0]];
    expect((await syncState(statements.find((s) => s.accountId === accounts[0])!.id)).state).toBe(
      'skipped',
    );

    // 1. Stripe fails the second invoice item: the attempt is rescheduled with backoff.
    fake.failNext(/^\/v1\/invoiceitems$/, 1);
    fake.crashAfterNext(/^\/v1\/invoices$/, 2); // ...and the first invoice is made, but we never hear back.
    const run1 = await t.app.billing.stripe.run({ statementId: first.id });
    expect(run1[0]).toMatchObject({ state: 'pending', error: expect.any(String) });
    const after1 = await syncState(first.id);
    expect(after1).toMatchObject({ state: 'pending', attempts: 1, invoice_id: null });
    expect(after1.next_attempt_at.getTime()).toBeGreaterThan(t.clock().getTime());
    // 2. Retry: the invoice's key is replayed (same invoice), items go in, one fails.
    const run2 = await t.app.billing.stripe.run({ statementId: first.id });
    expect(run2[0]!.error).toBeDefined();
    const after2 = await syncState(first.id);
    expect(after2.invoice_id).not.toBeNull();
    expect(after2.attempts).toBe(2);
    // 3. Retry again: completes, and finalizes.
    expect((await t.app.billing.stripe.run({ statementId: first.id }))[0]).toMatchObject({
      state: 'finalized',
    });
    // 4. Once more: nothing is sent.
    const before = fake.requests.length;
    expect((await t.app.billing.stripe.run({ statementId: first.id }))[0]).toMatchObject({
      state: 'finalized',
    });
    expect(fake.requests.length).toBe(before);

    // Exactly one invoice for the statement, with exactly its items, adding up to its total.
    const invoices = [...fake.invoices.values()].filter(
      (i) => (i.metadata as Record<string, string>).tollhouse_statement_id === first.id,
    );
    expect(invoices).toHaveLength(1);
    expect(invoices[0]!.status).toBe('open');
    const items = [...fake.invoiceItems.values()].filter((i) => i.invoice === invoices[0]!.id);
    const lines = (await t.app.billing.service.statement(first.id)).lines;
    expect(items).toHaveLength(lines.length);
    // unit_amount_decimal is in cents: × 10,000 gives micro-dollars, exactly.
    const micros = (decimal: string) => {
      const [whole, frac = ''] = decimal.replace('-', '').split('.');
      const value = BigInt(whole!) * 10_000n + BigInt(frac.padEnd(4, '0'));
      return decimal.startsWith('-') ? -value : value;
    };
    const total = items.reduce((sum, i) => sum + micros(String(i.unit_amount_decimal)), 0n);
    expect(total).toBe(first.totalUsdMicros);
    // Replayed keys were answered from Stripe's idempotency store, not executed twice.
    expect(fake.requests.some((r) => r.replayed && r.path === '/v1/invoices')).toBe(true);
    expect(fake.customers.size).toBe(1);
    expect(fake.violations).toEqual([]);

    // The scheduled pass picks up the other statement.
    const run = await t.app.billing.stripe.run({ statementId: second.id });
    expect(run[0]).toMatchObject({ state: 'finalized' });
    expect(fake.customers.size).toBe(2);
    // Every step has its own key; a key seen twice was a retry of the same step.
    const firstOnly = fake.requests.filter((r) => r.method === 'POST' && !r.replayed);
    const itemKeys = firstOnly
      .filter((r) => r.path === '/v1/invoiceitems')
      .map((r) => r.idempotencyKey);
    expect(itemKeys.filter((k) => k?.startsWith(`tollhouse-${first.id}-item-`))).toHaveLength(
      lines.length + 1,
    );
  });
});

describe('POST /webhooks/stripe', () => {
  const stripe = new Stripe('sk_test_unused');
  function sign(
    payload: string,
    secret = WEBHOOK_SECRET,
    timestamp = Math.floor(t.clock().getTime() / 1000),
  ) {
    return stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
  }
  function deliver(payload: string, signature: string | null) {
    return fetch(`${t.url}/webhooks/stripe`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(signature ? { 'stripe-signature': signature } : {}),
      },
      body: payload,
    });
  }
  function checkout(eventId: string, sessionId: string, accountId: string, cents: number) {
    return JSON.stringify({
      id: eventId,
      object: 'event',
      type: 'checkout.session.completed',
      data: {
        object: {
          id: sessionId,
          object: 'checkout.session',
          amount_total: cents,
          currency: 'usd',
          payment_status: 'paid',
          metadata: { tollhouse_account_id: accountId },
        },
      },
    });
  }

  it('credits a checkout top-up once, even when delivered twice or as two events', async () => {
    const account = accounts[2]!;
    const start = (await t.app.billing.service.balance(account)).balanceUsdMicros;
    const payload = checkout('evt_1', 'cs_1', account, 2500);
    const first = await deliver(payload, sign(payload));
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ outcome: 'applied' });
    const again = await deliver(payload, sign(payload));
    expect(await again.json()).toMatchObject({ outcome: 'duplicate' });
    // Stripe can also emit the same session under a new event id.
    const other = checkout('evt_2', 'cs_1', account, 2500);
    expect(await (await deliver(other, sign(other))).json()).toMatchObject({ outcome: 'ignored' });
    expect((await t.app.billing.service.balance(account)).balanceUsdMicros - start).toBe(
      25_000_000n,
    );
  });

  it('refuses forged, tampered, unsigned and replayed (old) deliveries without acting', async () => {
    const account = accounts[1]!;
    const start = (await t.app.billing.service.balance(account)).balanceUsdMicros;
    const payload = checkout('evt_forged', 'cs_forged', account, 100000);
    const forged = await deliver(payload, sign(payload, 'whsec_attacker'));
    expect(forged.status).toBe(400);
    expect(await forged.json()).toEqual({ error: 'InvalidSignature', message: expect.any(String) });
    const tampered = await deliver(payload.replace('100000', '900000'), sign(payload));
    expect(tampered.status).toBe(400);
    expect((await deliver(payload, null)).status).toBe(400);
    const old = await deliver(
      payload,
      sign(payload, WEBHOOK_SECRET, Math.floor(t.clock().getTime() / 1000) - 3600),
    );
    expect(old.status).toBe(400);
    expect((await t.app.billing.service.balance(account)).balanceUsdMicros).toBe(start);
    const huge = await fetch(`${t.url}/webhooks/stripe`, {
      method: 'POST',
      body: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(huge.status).toBe(413);
  });

  it('records invoice paid and payment failed on the statement', async () => {
    const invoice = [...fake.invoices.values()][0]!;
    const payload = JSON.stringify({
      id: 'evt_paid',
      object: 'event',
      type: 'invoice.paid',
      data: { object: { id: invoice.id, object: 'invoice' } },
    });
    expect(await (await deliver(payload, sign(payload))).json()).toMatchObject({
      outcome: 'applied',
    });
    const statementId = (invoice.metadata as Record<string, string>).tollhouse_statement_id!;
    expect((await syncState(statementId)).state).toBe('paid');
  });
});

describe('GET /v1/billing/stripe-sync', () => {
  it('reports per month and per statement what is synced, skipped and failing, and why', async () => {
    // October: one account covered by credit (skipped), one synced, one whose sync fails.
    const [covered, synced, failing] = [
      await newAccount(t),
      await newAccount(t),
      await newAccount(t),
    ];
    const october = (accountId: string): UsageEvent => ({
      ...usage(accountId, 1, 'llm'),
      eventId: `${accountId}-oct`,
      occurredAt: new Date('2026-10-05T10:00:00Z'),
    });
    await t.app.metering.service.record([october(covered), october(synced), october(failing)]);
    await t.app.billing.service.addLedgerEntry(
      { actor: 'test', requestId: null },
      { accountId: covered, kind: 'grant', amountUsdMicros: 1_000_000_000n, reference: 'oct' },
    );
    await t.app.billing.service.closeMonth('2026-10');
    const october_ = await t.app.billing.service.statements({ month: '2026-10' }, 10);
    const idOf = (accountId: string) => october_.find((s) => s.accountId === accountId)!.id;
    expect((await t.app.billing.stripe.run({ statementId: idOf(synced) }))[0]!.state).toBe(
      'finalized',
    );
    fake.failNext(/^\/v1\/customers$/, 1);
    expect((await t.app.billing.stripe.run({ statementId: idOf(failing) }))[0]!.error).toBe(
      'Injected failure',
    );

    const admin = bearer((await adminKey(t)).secret);
    const get = async (query: string, headers: Record<string, string> = admin) => {
      const response = await fetch(`${t.url}/v1/billing/stripe-sync${query}`, { headers });
      const body = await json(response);
      expect(validate('GET', '/v1/billing/stripe-sync', response.status, body)).toBeNull();
      return { status: response.status, body };
    };

    const all = await get('');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({
      configured: true,
      webhooks_configured: true,
      finalize_invoices: true,
      next_cursor: null,
    });
    // Newest month first; September was synced (and one invoice paid) by the tests above.
    expect(all.body.months).toMatchObject([
      {
        month: '2026-10',
        statements: 3,
        pending: 0,
        failed: 1,
        synced: 1,
        skipped: 1,
        states: { pending: 1, finalized: 1, skipped: 1, invoiced: 0, paid: 0, payment_failed: 0 },
      },
      { month: '2026-09', statements: 3, pending: 0, failed: 0, synced: 2, skipped: 1 },
    ]);
    expect(all.body.months[1].states).toMatchObject({ paid: 1, finalized: 1, skipped: 1 });
    expect(all.body.statements.map((r: { month: string }) => r.month)).toEqual([
      '2026-10',
      '2026-10',
      '2026-10',
      '2026-09',
      '2026-09',
      '2026-09',
    ]);
    const row = (id: string) =>
      all.body.statements.find((r: { statement_id: string }) => r.statement_id === id);
    const invoice = [...fake.invoices.values()].find(
      (i) => (i.metadata as Record<string, string>).tollhouse_statement_id === idOf(synced),
    )!;
    expect(row(idOf(synced))).toMatchObject({
      account_id: synced,
      status: 'synced',
      state: 'finalized',
      attempts: 0,
      last_error: null,
      next_attempt_at: null,
      stripe_invoice_id: invoice.id,
      stripe_customer_id: invoice.customer,
      total_usd_micros: october_.find((s) => s.accountId === synced)!.totalUsdMicros.toString(),
    });
    expect(row(idOf(failing))).toMatchObject({
      status: 'failed',
      state: 'pending',
      attempts: 1,
      last_error: 'Injected failure',
      next_attempt_at: expect.any(String),
      stripe_invoice_id: null,
      stripe_customer_id: null,
    });
    expect(row(idOf(covered))).toMatchObject({ status: 'skipped', total_usd_micros: '0' });

    // Filters, and pages of one that walk the same rows in the same order.
    const failed = await get('?status=failed');
    expect(failed.body.statements.map((r: { statement_id: string }) => r.statement_id)).toEqual([
      idOf(failing),
    ]);
    const one = await get('?months=1');
    expect(one.body.months.map((m: { month: string }) => m.month)).toEqual(['2026-10']);
    expect(one.body.statements).toHaveLength(3);
    const sept = await get('?month=2026-09&status=synced');
    expect(sept.body.months).toHaveLength(1);
    expect(sept.body.statements).toHaveLength(2);
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await get(`?limit=1${cursor === null ? '' : `&cursor=${cursor}`}`);
      expect(page.status).toBe(200);
      walked.push(...page.body.statements.map((r: { statement_id: string }) => r.statement_id));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    expect(walked).toEqual(
      all.body.statements.map((r: { statement_id: string }) => r.statement_id),
    );
    expect((await get('?month=2026-08')).body).toMatchObject({ months: [], statements: [] });
  });

  it('refuses bad query parameters with 400, and non-admin credentials', async () => {
    for (const query of [
      '?months=0',
      '?months=25',
      '?months=two',
      '?month=2026-13',
      '?month=2026-1',
      '?status=broken',
      '?status=',
      '?limit=0',
      '?limit=501',
      '?cursor=nope',
      "?cursor=stmt_'--",
      '?cursor=stmt_doesnotexist',
      '?sort=asc',
    ]) {
      const response = await fetch(`${t.url}/v1/billing/stripe-sync${query}`, {
        headers: bearer((await adminKey(t)).secret),
      });
      const body = await json(response);
      expect(response.status, query).toBe(400);
      expect(body.error, query).toBe('InvalidRequest');
      expect(validate('GET', '/v1/billing/stripe-sync', 400, body)).toBeNull();
    }
    const reader = await issueKey(t, accounts[1]!, { scopes: ['billing:read'] });
    const refused = await fetch(`${t.url}/v1/billing/stripe-sync`, {
      headers: bearer(reader.secret),
    });
    expect(refused.status).toBe(403);
    expect(validate('GET', '/v1/billing/stripe-sync', 403, await json(refused))).toBeNull();
    expect((await fetch(`${t.url}/v1/billing/stripe-sync`)).status).toBe(401);
  });
});
