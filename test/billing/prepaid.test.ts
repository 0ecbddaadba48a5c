// Prepaid credit through the real `stripe` SDK against test/support/fake-stripe.ts: Add credit
// (Checkout) credited once per session, refunds and disputes debited once, the prepaid gate,
// balance events once per crossing, and auto-recharge — two replicas racing one window (one
// charge), a crash between charge and credit (one charge, one credit), declines retried and
// shown — with the balance right to the micro-dollar.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBilling } from '../../src/billing/index.ts';
import type { Billing } from '../../src/billing/index.ts';
import { createDirectory } from '../../src/identity/index.ts';
import { createUsageReads } from '../../src/metering/index.ts';
import type { UsageEvent } from '../../src/metering/index.ts';
import { createOutbox } from '../../src/notifications/outbox.ts';
import type { Principal } from '../../src/platform/auth.ts';
import { createLogger } from '../../src/platform/log.ts';
import { PaymentRequired } from '../../src/platform/spend.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { bearer, call } from '../support/credentials.ts';
import { onRealPostgres } from '../support/db.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { USD, WEI_PER_USD, startPrepaidApp } from './prepaid-support.ts';
import type { PrepaidTestApp } from './prepaid-support.ts';

const WEBHOOK_SECRET = 'whsec_test_secret_for_prepaid';
const clock = fixedClock('2026-11-10T12:00:00Z');
let app: PrepaidTestApp;
let t: TestApp;
let fake: FakeStripe;
let admin: string;
const validate = createResponseValidator();
let usageSeq = 0;

beforeAll(async () => {
  app = await startPrepaidApp(clock, WEBHOOK_SECRET);
  ({ t, fake, admin } = app);
});
afterAll(async () => app?.close());

const prepaidAccount = () => app.account();

async function deliver(type: string, object: Record<string, unknown>) {
  return { outcome: await app.deliver(type, object) };
}

/** Add credit through the API, the customer pays, Stripe sends the webhook. */
async function addCredit(who: { accountId: string; secret: string }, micros: bigint, pm?: string) {
  const created = await call(t, 'POST', `/v1/accounts/${who.accountId}/checkout`, {
    headers: bearer(who.secret),
    body: { amount_usd_micros: micros.toString() },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const session = fake.completeCheckout(created.body.id, pm);
  expect(await deliver('checkout.session.completed', session)).toMatchObject({
    outcome: 'applied',
  });
  return session;
}

async function spend(accountId: string, usd: bigint) {
  await t.app.metering.service.record([
    {
      source: 'test/prepaid',
      eventId: `e${usageSeq++}`,
      occurredAt: clock(),
      accountId,
      appId: null,
      keyId: null,
      clientId: null,
      endUserId: null,
      pipeline: 'llm',
      modelId: 'm',
      unit: 'requests',
      quantity: 1n,
      feeWei: usd * WEI_PER_USD,
      status: 200,
      latencyMs: 1,
      attributes: {},
    } satisfies UsageEvent,
  ]);
}

async function prepaidView(who: { accountId: string; secret: string }) {
  const response = await call(t, 'GET', `/v1/accounts/${who.accountId}/prepaid`, {
    headers: bearer(who.secret),
  });
  expect(response.status).toBe(200);
  validate('get', '/v1/accounts/{id}/prepaid', response.status, response.body);
  return response.body;
}

async function eventsOf(accountId: string) {
  const { rows } = await sql<{ type: string; key: string }>`
    select type, key from outbound_events where account_id = ${accountId} order by seq`.execute(
    t.app.database.db,
  );
  return rows;
}

const principal = (accountId: string): Principal =>
  ({
    via: 'api_key',
    accountId,
    appId: null,
    keyId: null,
    clientId: null,
    endUserId: null,
    scopes: ['gateway'],
    allowedOrigins: null,
  }) as unknown as Principal;

async function gateAdmits(accountId: string) {
  await t.app.billing.spendGate.reload();
  try {
    t.app.billing.spendGate.assertMaySpend(principal(accountId));
    return true;
  } catch (error) {
    if (error instanceof PaymentRequired) return false;
    throw error;
  }
}

function replica(database: DatabaseHandle, reserveUsdMicros = 0n): Billing {
  return createBilling({
    database,
    usage: createUsageReads(database.db),
    directory: createDirectory(database.db),
    log: createLogger({ level: 'silent' }),
    authenticator: t.app.authenticator,
    events: createOutbox({ clock }),
    clock,
    config: {
      rates: { fixed: '2000', feedAddress: null, rpcUrl: null, maxAgeSeconds: 3600 },
      stripe: {
        secretKey: fake.secretKey,
        webhookSecret: WEBHOOK_SECRET,
        apiBase: fake.url,
        finalize: false,
        daysUntilDue: 30,
      },
      spendRefreshMs: 60_000,
      spendFullReloadMs: 600_000,
      closeAfterMs: null,
      jobIntervalMs: 600_000,
      prepaidReserveUsdMicros: reserveUsdMicros,
    },
  });
}

describe('Add credit (Stripe Checkout)', () => {
  it('refuses hostile input and callers that are not the account', async () => {
    const who = await prepaidAccount();
    const other = await prepaidAccount();
    const path = `/v1/accounts/${who.accountId}/checkout`;
    for (const body of [
      { amount_usd_micros: '1000000' }, // not an allowed amount
      { amount_usd_micros: '-25000000' },
      { amount_usd_micros: 25000000 },
      { amount_usd_micros: '25000000', currency: 'eur' },
      { amount_usd_micros: '9'.repeat(40) },
      {},
    ]) {
      const r = await call(t, 'POST', path, { headers: bearer(who.secret), body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error).toBe('InvalidRequest');
    }
    const foreign = await call(t, 'POST', path, {
      headers: bearer(other.secret),
      body: { amount_usd_micros: '25000000' },
    });
    expect(foreign.status).toBe(403);
    const noAuth = await call(t, 'POST', path, { body: { amount_usd_micros: '25000000' } });
    expect(noAuth.status).toBe(401);
    // Nothing reached Stripe for any of these.
    expect(fake.checkoutSessions.size).toBe(0);
    // Only operators choose the billing mode.
    const self = await call(t, 'PUT', `/v1/accounts/${who.accountId}/billing-mode`, {
      headers: bearer(who.secret),
      body: { mode: 'postpaid' },
    });
    expect(self.status).toBe(403);
    const bad = await call(t, 'PUT', `/v1/accounts/${who.accountId}/billing-mode`, {
      headers: bearer(admin),
      body: { mode: 'free' },
    });
    expect(bad.status).toBe(400);
  });

  it('credits a paid session once, refunds and disputes debit it once, the gate follows', async () => {
    const who = await prepaidAccount();
    expect(await gateAdmits(who.accountId)).toBe(false);

    const created = await call(t, 'POST', `/v1/accounts/${who.accountId}/checkout`, {
      headers: bearer(who.secret),
      body: { amount_usd_micros: '25000000' },
    });
    expect(created.status).toBe(201);
    validate('post', '/v1/accounts/{id}/checkout', created.status, created.body);
    const stored = fake.checkoutSessions.get(created.body.id)!;
    expect(stored).toMatchObject({
      amount_total: 2500,
      currency: 'usd',
      setup_future_usage: 'off_session',
      metadata: { tollhouse_account_id: who.accountId },
    });
    // Not paid yet: an unpaid completion credits nothing.
    expect((await deliver('checkout.session.completed', { ...stored })).outcome).toBe('ignored');

    const session = fake.completeCheckout(created.body.id);
    expect((await deliver('checkout.session.completed', session)).outcome).toBe('applied');
    // Redelivered as a new event: the session id makes it the same credit.
    expect((await deliver('checkout.session.completed', session)).outcome).toBe('ignored');
    let view = await prepaidView(who);
    expect(view.balance_usd_micros).toBe(String(25n * USD));
    expect(await gateAdmits(who.accountId)).toBe(true);

    const pi = String(session.payment_intent);
    const refunded = fake.refund(pi, 500);
    expect((await deliver('charge.refunded', refunded)).outcome).toBe('applied');
    expect((await deliver('charge.refunded', refunded)).outcome).toBe('ignored');
    // A second partial refund: only the new refund is debited.
    const again = fake.refund(pi, 250);
    expect((await deliver('charge.refunded', again)).outcome).toBe('applied');
    const dispute = fake.dispute(pi, 1000);
    expect((await deliver('charge.dispute.created', dispute)).outcome).toBe('applied');
    expect((await deliver('charge.dispute.created', dispute)).outcome).toBe('ignored');

    view = await prepaidView(who);
    expect(view.balance_usd_micros).toBe(String(25n * USD - 5n * USD - 2_500_000n - 10n * USD));
    expect(view.entries.map((e: { kind: string }) => e.kind)).toEqual([
      'dispute',
      'refund',
      'refund',
      'top_up',
    ]);
    // Usage beyond what is left: refused.
    await spend(who.accountId, 8n);
    expect(await gateAdmits(who.accountId)).toBe(false);
    const events = await eventsOf(who.accountId);
    expect(events.filter((e) => e.type === 'balance.recharged')).toHaveLength(1);
    expect(fake.violations).toEqual([]);
  });
});

describe('balance events', () => {
  it('reports low and depleted once per crossing, re-armed by a top-up', async () => {
    const who = await prepaidAccount();
    await call(t, 'PUT', `/v1/accounts/${who.accountId}/auto-recharge`, {
      headers: bearer(who.secret),
      body: {
        enabled: false,
        threshold_usd_micros: String(10n * USD),
        amount_usd_micros: '0',
        monthly_max_usd_micros: '0',
      },
    });
    await addCredit(who, 25n * USD);
    await spend(who.accountId, 20n);
    await t.app.billing.prepaid.run();
    await t.app.billing.prepaid.run();
    await spend(who.accountId, 10n);
    await t.app.billing.prepaid.run();
    let types = (await eventsOf(who.accountId)).map((e) => e.type);
    expect(types).toEqual(['balance.recharged', 'balance.low', 'balance.depleted']);
    // A top-up opens a new window: the next dip is reported again.
    await addCredit(who, 25n * USD);
    await t.app.billing.prepaid.run();
    await spend(who.accountId, 15n);
    await t.app.billing.prepaid.run();
    await t.app.billing.prepaid.run();
    types = (await eventsOf(who.accountId)).map((e) => e.type);
    expect(types).toEqual([
      'balance.recharged',
      'balance.low',
      'balance.depleted',
      'balance.recharged',
      'balance.low',
    ]);
  });
});

describe('auto-recharge', () => {
  /** Off-session charges (auto-recharges) Stripe made for the account. */
  const charges = (accountId: string) =>
    [...fake.paymentIntents.values()].filter((p) => {
      const metadata = p.metadata as Record<string, string>;
      return (
        metadata.tollhouse_account_id === accountId && metadata.tollhouse_recharge !== undefined
      );
    });

  it('refuses settings that could not charge', async () => {
    const who = await prepaidAccount();
    for (const body of [
      // not whole cents
      {
        enabled: true,
        threshold_usd_micros: '1',
        amount_usd_micros: '1',
        monthly_max_usd_micros: '9',
      },
      // a monthly maximum below one recharge
      {
        enabled: true,
        threshold_usd_micros: '0',
        amount_usd_micros: '10000000',
        monthly_max_usd_micros: '5000000',
      },
      {
        enabled: 'yes',
        threshold_usd_micros: '0',
        amount_usd_micros: '0',
        monthly_max_usd_micros: '0',
      },
      {
        enabled: true,
        threshold_usd_micros: '-1',
        amount_usd_micros: '0',
        monthly_max_usd_micros: '0',
      },
    ]) {
      const r = await call(t, 'PUT', `/v1/accounts/${who.accountId}/auto-recharge`, {
        headers: bearer(who.secret),
        body,
      });
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect((await prepaidView(who)).auto_recharge.enabled).toBe(false);
  });

  it('two replicas racing one window charge once; a crash between charge and credit charges once and credits once', async () => {
    const who = await prepaidAccount();
    const set = await call(t, 'PUT', `/v1/accounts/${who.accountId}/auto-recharge`, {
      headers: bearer(who.secret),
      body: {
        enabled: true,
        threshold_usd_micros: String(20n * USD),
        amount_usd_micros: String(30n * USD),
        monthly_max_usd_micros: String(60n * USD),
      },
    });
    expect(set.status).toBe(200);
    validate('put', '/v1/accounts/{id}/auto-recharge', set.status, set.body);
    await addCredit(who, 50n * USD, 'pm_card_saved');
    await spend(who.accountId, 40n); // spendable $10 < $20

    const handles = onRealPostgres()
      ? [await t.database.open(), await t.database.open()]
      : [t.app.database, t.app.database];
    const replicas = handles.map((h) => replica(h));
    try {
      await Promise.all([
        replicas[0]!.prepaid.run(),
        replicas[1]!.prepaid.run(),
        t.app.billing.prepaid.run(),
      ]);
      await Promise.all(replicas.map((r) => r.prepaid.run()));
      expect(charges(who.accountId)).toHaveLength(1);
      expect(charges(who.accountId)[0]).toMatchObject({
        amount: 3000,
        payment_method: 'pm_card_saved',
      });
      let view = await prepaidView(who);
      expect(view.balance_usd_micros).toBe(String(80n * USD));
      expect(view.spendable_usd_micros).toBe(String(40n * USD));
      expect(view.recharges).toHaveLength(1);
      expect(view.recharges[0]).toMatchObject({ state: 'succeeded', attempts: 0 });

      // Next dip: Stripe charges, but the answer is lost (the connection dies, twice: the
      // SDK's own retry too) — as if the replica died between charge and credit.
      await spend(who.accountId, 25n); // spendable $15
      fake.crashAfterNext(/^\/v1\/payment_intents$/, 2);
      const crashed = await replicas[0]!.prepaid.run();
      expect(crashed).toEqual([{ window: expect.any(String), outcome: 'failed' }]);
      expect(charges(who.accountId)).toHaveLength(2);
      view = await prepaidView(who);
      expect(view.balance_usd_micros).toBe(String(80n * USD));
      // Stripe's own webhook for the charge arrives first and credits it ...
      const charged = charges(who.accountId)[1]!;
      expect((await deliver('payment_intent.succeeded', charged)).outcome).toBe('applied');
      // ... then the retry (same Idempotency-Key) gets the same PaymentIntent: no new charge,
      // no second credit.
      clock.advance(60_000);
      await replicas[1]!.prepaid.run();
      clock.advance(60_000);
      await replicas[0]!.prepaid.run();
      expect(charges(who.accountId)).toHaveLength(2);
      expect(
        fake.requests.filter((r) => r.path === '/v1/payment_intents' && r.replayed).length,
      ).toBeGreaterThan(0);
      view = await prepaidView(who);
      expect(view.balance_usd_micros).toBe(String(110n * USD));
      expect(view.recharges.map((r: { state: string }) => r.state)).toEqual([
        'succeeded',
        'succeeded',
      ]);
      // The monthly maximum ($60) is reached: the next dip charges nothing.
      await spend(who.accountId, 40n);
      await t.app.billing.prepaid.run();
      expect(charges(who.accountId)).toHaveLength(2);
      const types = (await eventsOf(who.accountId)).map((e) => e.type);
      expect(types.filter((x) => x === 'balance.recharged')).toHaveLength(3);
      expect(fake.violations).toEqual([]);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      if (onRealPostgres()) await Promise.all(handles.map((h) => h.close()));
    }
  });

  it('retries a declined card with backoff, publishes recharge.failed and shows it to operators', async () => {
    const who = await prepaidAccount();
    await call(t, 'PUT', `/v1/accounts/${who.accountId}/auto-recharge`, {
      headers: bearer(who.secret),
      body: {
        enabled: true,
        threshold_usd_micros: String(20n * USD),
        amount_usd_micros: String(25n * USD),
        monthly_max_usd_micros: String(100n * USD),
      },
    });
    await addCredit(who, 25n * USD, 'pm_card_declining');
    fake.declineCards.add('pm_card_declining');
    await spend(who.accountId, 10n);
    await t.app.billing.prepaid.run();
    // Not due yet: the backoff holds the retry.
    await t.app.billing.prepaid.run();
    clock.advance(31_000);
    await t.app.billing.prepaid.run();
    expect(charges(who.accountId)).toHaveLength(0);
    const listed = await call(t, 'GET', `/v1/billing/recharges?account_id=${who.accountId}`, {
      headers: bearer(admin),
    });
    expect(listed.status).toBe(200);
    validate('get', '/v1/billing/recharges', listed.status, listed.body);
    expect(listed.body.recharges[0]).toMatchObject({
      state: 'pending',
      attempts: 2,
      last_error: expect.stringContaining('insufficient funds'),
    });
    const failed = (await eventsOf(who.accountId)).filter((e) => e.type === 'recharge.failed');
    expect(failed).toHaveLength(2);
    // Customers do not see other accounts' recharges.
    const peek = await call(t, 'GET', '/v1/billing/recharges', { headers: bearer(who.secret) });
    expect(peek.status).toBe(403);
    // The card works again: the next retry charges once.
    fake.declineCards.delete('pm_card_declining');
    clock.advance(120_000);
    await t.app.billing.prepaid.run();
    expect(charges(who.accountId)).toHaveLength(1);
    expect((await prepaidView(who)).balance_usd_micros).toBe(String(50n * USD));
  });
});

describe('the prepaid gate across replicas', () => {
  // Each replica answers from its own view, refreshed every BILLING_SPEND_REFRESH_SECONDS; here
  // a refresh happens after every `PER_WINDOW` requests per replica, so the bound is a count
  // of requests, not a timing: once the balance is used up, each replica admits at most the
  // requests of one refresh window before it sees it.
  const PER_WINDOW = 5;
  const FEE_USD = 1n;

  async function drain(reserve: bigint) {
    const who = await prepaidAccount();
    await t.app.billing.service.addLedgerEntry(
      { actor: 'test', requestId: null },
      {
        accountId: who.accountId,
        kind: 'grant',
        amountUsdMicros: 12n * USD,
        reference: `g-${who.accountId}`,
      },
    );
    const handles = onRealPostgres()
      ? [await t.database.open(), await t.database.open()]
      : [t.app.database, t.app.database];
    const replicas = handles.map((h) => replica(h, reserve));
    try {
      await Promise.all(replicas.map((r) => r.spendGate.reload()));
      let admitted = 0;
      for (let window = 0; window < 100; window++) {
        const outcomes = await Promise.all(
          replicas.flatMap((r) =>
            Array.from({ length: PER_WINDOW }, async () => {
              try {
                r.spendGate.assertMaySpend(principal(who.accountId));
              } catch (error) {
                if (error instanceof PaymentRequired) return false;
                throw error;
              }
              await spend(who.accountId, FEE_USD);
              return true;
            }),
          ),
        );
        const now = outcomes.filter(Boolean).length;
        admitted += now;
        if (now === 0) break;
        await Promise.all(replicas.map((r) => r.spendGate.refresh()));
      }
      const used = BigInt(admitted) * FEE_USD * USD;
      return { overshoot: used - 12n * USD, admitted };
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      if (onRealPostgres()) await Promise.all(handles.map((h) => h.close()));
    }
  }

  it('overshoots the balance by at most one refresh window of every replica, and not at all with that reserve', async () => {
    const bound = BigInt(2 * PER_WINDOW) * FEE_USD * USD;
    const plain = await drain(0n);
    expect(plain.overshoot).toBeGreaterThanOrEqual(0n);
    expect(plain.overshoot).toBeLessThanOrEqual(bound);
    const reserved = await drain(bound);
    expect(reserved.overshoot).toBeLessThanOrEqual(0n);
    expect(reserved.admitted).toBeGreaterThan(0);
  });
});

describe('between the end of a month and its close', () => {
  it("counts last month's usage against the balance until that month's statement settles it", async () => {
    const before = clock();
    try {
      const who = await prepaidAccount();
      await addCredit(who, 25n * USD);
      clock.set('2026-11-30T23:00:00Z');
      await spend(who.accountId, 24n);
      expect(await gateAdmits(who.accountId)).toBe(true);

      // December, November not closed yet: its $24 is in neither the ledger nor December's
      // rollups, and must still count, or the account could spend it again.
      clock.set('2026-12-01T01:00:00Z');
      expect((await prepaidView(who)).balance_usd_micros).toBe(String(25n * USD));
      expect(await gateAdmits(who.accountId)).toBe(true);
      await spend(who.accountId, 2n);
      expect(await gateAdmits(who.accountId)).toBe(false);
      // The spendable figure (alerts, auto-recharge) counts it as the gate does; the month's
      // usage is December's alone.
      const view = await prepaidView(who);
      expect(view.month_usage_usd_micros).toBe(String(2n * USD));
      expect(view.spendable_usd_micros).toBe(String(-1n * USD));

      // The close settles November from the balance: counted once, not twice.
      expect((await t.app.billing.service.closeMonth('2026-11')).closed).toBe(true);
      expect((await prepaidView(who)).balance_usd_micros).toBe(String(1n * USD));
      expect(await gateAdmits(who.accountId)).toBe(false);
      // $25 more: 26 − December's 2 leaves $24, so the gate opens again (it would stay shut,
      // at 26 − 2 − 24 = 0, if November were still counted beside its settlement).
      await addCredit(who, 25n * USD);
      expect(await gateAdmits(who.accountId)).toBe(true);
    } finally {
      clock.set(before);
    }
  });
});
