// Spend caps and prepaid balances: the in-memory gate refuses with 402 once a cap is reached,
// through `assertMaySpend` (what the front door and signer call) and GET /v1/spend/check;
// plus the hostile-input and authorization behaviour of the billing routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsageEvent } from '../../src/metering/index.ts';
import type { Principal } from '../../src/platform/auth.ts';
import { sql } from 'kysely';
import { createRateSource, createSpendView } from '../../src/billing/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { PaymentRequired } from '../../src/platform/spend.ts';
import { startTestApp } from '../support/app.ts';
import { fixedClock, monthOfUtc } from '../support/clock.ts';
import { eventually } from '../support/eventually.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { onRealPostgres } from '../support/db.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

const validate = createResponseValidator();
let t: TestApp;
let admin: string;
let n = 0;

function principal(
  accountId: string,
  appId: string | null = null,
  endUserId: string | null = null,
): Principal {
  return {
    via: 'api_key',
    accountId,
    appId,
    keyId: null,
    clientId: null,
    endUserId,
    scopes: ['gateway'],
    allowedOrigins: null,
    allowedResources: null,
  };
}

function spent(
  accountId: string,
  feeWei: bigint,
  appId: string | null = null,
  endUserId: string | null = null,
): UsageEvent {
  n++;
  return {
    source: 'test/spend',
    eventId: `s${n}`,
    occurredAt: t.clock(),
    accountId,
    appId,
    keyId: null,
    clientId: null,
    endUserId,
    pipeline: 'llm',
    modelId: 'llama',
    unit: 'tokens',
    quantity: 10n,
    feeWei,
    status: 200,
    latencyMs: 1,
    attributes: {},
  };
}

async function setCap(accountId: string, body: Record<string, unknown>) {
  const response = await call(t, 'PUT', `/v1/accounts/${accountId}/spend-caps`, {
    headers: bearer(admin),
    body,
  });
  expect(response.status).toBe(200);
  expect(validate('PUT', '/v1/accounts/{id}/spend-caps', 200, response.body)).toBeNull();
  return response.body;
}

beforeAll(async () => {
  // Caps are monthly: the app and the test read "this month" from one fixed clock
  // (TOLLHOUSE_TEST_NOW in the CI date matrix).
  t = await startTestApp({
    clock: fixedClock(),
    env: { BILLING_ETH_USD_RATE: '2000', BILLING_AUTO_CLOSE: 'false' },
  });
  admin = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t?.close();
});

describe('spend caps', () => {
  it('refuses an account at its cap with 402 PaymentRequired, directly and over HTTP', async () => {
    const account = await newAccount(t);
    const key = (await issueKey(t, account, { scopes: ['gateway'] })).secret;
    const gate = t.app.billing.spendGate;
    expect(() => gate.assertMaySpend(principal(account))).not.toThrow();
    const ok = await call(t, 'GET', '/v1/spend/check', { headers: bearer(key) });
    expect(ok.status).toBe(200);
    expect(validate('GET', '/v1/spend/check', 200, ok.body)).toBeNull();

    await setCap(account, { monthly_cap_wei: '1000' });
    await t.app.metering.service.record([spent(account, 999n)]);
    await gate.refresh();
    expect(() => gate.assertMaySpend(principal(account))).not.toThrow();
    await t.app.metering.service.record([spent(account, 1n)]);
    await gate.refresh();
    // The cap itself arrives by NOTIFY (debounced), possibly after this refresh.
    await eventually(() =>
      expect(() => gate.assertMaySpend(principal(account))).toThrow(PaymentRequired),
    );
    const refused = await call(t, 'GET', '/v1/spend/check', { headers: bearer(key) });
    expect(refused.status).toBe(402);
    expect(validate('GET', '/v1/spend/check', 402, refused.body)).toBeNull();
    expect(refused.body).toEqual({
      error: 'PaymentRequired',
      message: expect.stringMatching(/reached its monthly spend cap \(1000 of 1000 wei/),
    });

    // Raising the cap lets it spend again as soon as the NOTIFY arrives (no refresh call).
    await setCap(account, { monthly_cap_wei: '5000' });
    await eventually(() => expect(() => gate.assertMaySpend(principal(account))).not.toThrow());
    // Removing it too.
    await setCap(account, { monthly_cap_wei: '0' });
    await eventually(() => expect(() => gate.assertMaySpend(principal(account))).toThrow(/cap/));
    const body = await setCap(account, { monthly_cap_wei: null });
    expect(body.caps).toEqual([]);
    await eventually(() => expect(() => gate.assertMaySpend(principal(account))).not.toThrow());
  });

  it('caps apps and end users separately, with a default cap for every end user of an app', async () => {
    const account = await newAccount(t);
    const gate = t.app.billing.spendGate;
    await setCap(account, { app_id: 'app_one', monthly_cap_wei: '100' });
    await setCap(account, { app_id: 'app_two', end_user_id: '*', monthly_cap_wei: '50' });
    await setCap(account, { app_id: 'app_two', end_user_id: 'vip', monthly_cap_wei: '500' });
    await gate.reload();
    await t.app.metering.service.record([
      spent(account, 100n, 'app_one', 'u1'),
      spent(account, 60n, 'app_two', 'alice'),
      spent(account, 60n, 'app_two', 'vip'),
    ]);
    await gate.refresh();
    expect(() => gate.assertMaySpend(principal(account))).not.toThrow();
    expect(() => gate.assertMaySpend(principal(account, 'app_one'))).toThrow(/App app_one reached/);
    expect(() => gate.assertMaySpend(principal(account, 'app_two', 'alice'))).toThrow(
      /End user alice reached/,
    );
    expect(() => gate.assertMaySpend(principal(account, 'app_two', 'vip'))).not.toThrow();
    expect(() => gate.assertMaySpend(principal(account, 'app_two', 'bob'))).not.toThrow();
  });

  it('refuses a prepaid account once its usage at cost exceeds its credit', async () => {
    const plan = await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin),
      body: { id: 'prepaid', name: 'Prepaid', prepaid: true },
    });
    expect(plan.status).toBe(201);
    const account = await newAccount(t);
    // Subscribe from this month on (written directly: the API starts changes next month).
    await t.app.database.db
      .insertInto('subscriptions')
      .values({
        account_id: account,
        plan_id: 'prepaid',
        effective_month: `${monthOfUtc(t.clock())}-01`,
      })
      .execute();
    const gate = t.app.billing.spendGate;
    await gate.reload();
    expect(() => gate.assertMaySpend(principal(account))).toThrow(/prepaid balance is used up/);
    const credit = await call(t, 'POST', `/v1/accounts/${account}/credits`, {
      headers: bearer(admin),
      body: { amount_usd_micros: '1000000', reference: 'r1' },
    });
    expect(credit.status).toBe(201);
    expect(validate('POST', '/v1/accounts/{id}/credits', 201, credit.body)).toBeNull();
    await eventually(() => expect(() => gate.assertMaySpend(principal(account))).not.toThrow());
    const again = await call(t, 'POST', `/v1/accounts/${account}/credits`, {
      headers: bearer(admin),
      body: { amount_usd_micros: '1000000', reference: 'r1' },
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ recorded: false, balance_usd_micros: '1000000' });
    // $1 at 2000 USD/ETH is 0.0005 ETH = 5e14 wei.
    await t.app.metering.service.record([spent(account, 5n * 10n ** 14n)]);
    await gate.refresh();
    expect(() => gate.assertMaySpend(principal(account))).toThrow(/prepaid balance is used up/);
  });
});

describe('spend view upkeep', () => {
  it.runIf(onRealPostgres())(
    'reloads everything after the LISTEN connection drops (changes made meanwhile are not missed)',
    async () => {
      const account = await newAccount(t);
      // A view of its own, started now: the app's view may still have a notification from an
      // earlier test in flight, which would pick up the cap below and prove nothing. Periodic
      // refreshes are far off, so only the reload after the drop can show the cap.
      const gate = createSpendView({
        db: t.app.database.db,
        usage: t.app.metering.reads,
        listen: t.app.database.listen,
        rates: createRateSource({
          fixed: '2000',
          feedAddress: null,
          rpcUrl: null,
          maxAgeSeconds: 3600,
        }),
        log: createLogger({ level: 'silent' }),
        clock: t.clock,
        refreshMs: 3_600_000,
        fullReloadMs: 3_600_000,
      });
      await gate.start();
      try {
        expect(() => gate.assertMaySpend(principal(account))).not.toThrow();
        // A cap written without NOTIFY stands for one whose notification was lost.
        await t.app.database.db
          .insertInto('spend_caps')
          .values({ account_id: account, app_id: '', end_user_id: '', monthly_cap_wei: '0' })
          .execute();
        // Nothing tells the view: it still admits (no reload happens without a notification).
        await gate.refresh();
        expect(() => gate.assertMaySpend(principal(account))).not.toThrow();
        await sql`select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'tollhouse-listen' and datname = current_database()`.execute(
          t.app.database.db,
        );
        await eventually(() =>
          expect(() => gate.assertMaySpend(principal(account))).toThrow(/cap/),
        );
      } finally {
        await gate.close();
      }
    },
  );

  it('refuses accounts without credit when the default plan is prepaid (this changes the default plan)', async () => {
    const funded = await newAccount(t);
    const broke = await newAccount(t);
    await t.app.billing.service.addLedgerEntry(
      { actor: 'test', requestId: null },
      { accountId: funded, kind: 'grant', amountUsdMicros: 1n, reference: `f-${funded}` },
    );
    const created = await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin),
      body: { id: 'prepaid-default', name: 'Prepaid by default', prepaid: true, default: true },
    });
    expect(created.status).toBe(201);
    const gate = t.app.billing.spendGate;
    await eventually(() =>
      expect(() => gate.assertMaySpend(principal(broke))).toThrow(/prepaid balance is used up/),
    );
    expect(() => gate.assertMaySpend(principal(funded))).not.toThrow();
  });
});

describe('billing routes refuse bad input and wrong credentials', () => {
  it('validates bodies and ids, and never writes on a refusal', async () => {
    const account = await newAccount(t);
    const cases: Array<[string, string, unknown, number]> = [
      ['PUT', `/v1/accounts/${account}/spend-caps`, { monthly_cap_wei: '-1' }, 400],
      ['PUT', `/v1/accounts/${account}/spend-caps`, { monthly_cap_wei: 1.5 }, 400],
      [
        'PUT',
        `/v1/accounts/${account}/spend-caps`,
        { end_user_id: 'u', monthly_cap_wei: '1' },
        400,
      ],
      ['PUT', `/v1/accounts/${account}/spend-caps`, { monthly_cap_wei: '1', extra: true }, 400],
      ['PUT', '/v1/accounts/acct_nobody/spend-caps', { monthly_cap_wei: '1' }, 404],
      ['PUT', '/v1/accounts/not-an-id/spend-caps', { monthly_cap_wei: '1' }, 400],
      ['POST', `/v1/accounts/${account}/credits`, { amount_usd_micros: '0', reference: 'x' }, 400],
      [
        'POST',
        `/v1/accounts/${account}/credits`,
        { amount_usd_micros: '1.5', reference: 'x' },
        400,
      ],
      ['POST', '/v1/plans', { name: 'x', prices: [{ currency: 'eur', amount: '1' }] }, 400],
      [
        'POST',
        '/v1/plans',
        { name: 'x', prices: [{ currency: 'wei', amount: '1', per_units: '0' }] },
        400,
      ],
      ['POST', '/v1/plans', { name: 'x', monthly_fee_usd_micros: 5 }, 400],
      ['PUT', `/v1/accounts/${account}/subscription`, { plan_id: 'nope' }, 404],
      [
        'PUT',
        `/v1/accounts/${account}/subscription`,
        { plan_id: 'prepaid', effective_month: '2020-01' },
        400,
      ],
      [
        'PUT',
        `/v1/accounts/${account}/subscription`,
        { plan_id: 'prepaid', effective_month: '2026-13' },
        400,
      ],
    ];
    for (const [method, path, body, status] of cases) {
      const response = await call(t, method, path, { headers: bearer(admin), body });
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
      expect(response.body).toEqual(
        expect.objectContaining({ error: expect.any(String), message: expect.any(String) }),
      );
    }
    const malformed = await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin),
      raw: '{"name": ',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toBe('BadRequest');
    const huge = await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin),
      raw: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect((await t.app.billing.service.balance(account)).entries).toEqual([]);
    expect(await t.app.billing.service.spendCaps(account)).toEqual([]);
    expect((await call(t, 'GET', '/v1/plans/nope', { headers: bearer(admin) })).status).toBe(404);
    expect(
      (await call(t, 'GET', '/v1/statements/stmt_nope', { headers: bearer(admin) })).status,
    ).toBe(404);
    expect(
      (await call(t, 'GET', '/v1/statements?month=13', { headers: bearer(admin) })).status,
    ).toBe(400);
    expect(
      (await call(t, 'GET', '/v1/statements?cursor=../x', { headers: bearer(admin) })).status,
    ).toBe(400);
  });

  it('requires the right scope and keeps accounts apart', async () => {
    const account = await newAccount(t);
    const reader = (await issueKey(t, account, { scopes: ['billing:read'] })).secret;
    const other = await newAccount(t);
    expect((await call(t, 'GET', '/v1/plans')).status).toBe(401);
    expect((await call(t, 'GET', '/v1/plans', { headers: bearer('th_sk_bogus') })).body).toEqual({
      error: 'Unauthorized',
      message: 'Invalid API key',
    });
    const plans = await call(t, 'GET', '/v1/plans', { headers: bearer(reader) });
    expect(plans.status).toBe(200);
    expect(validate('GET', '/v1/plans', 200, plans.body)).toBeNull();
    const create = await call(t, 'POST', '/v1/plans', {
      headers: bearer(reader),
      body: { name: 'mine' },
    });
    expect(create.status).toBe(403);
    expect(validate('POST', '/v1/plans', 403, create.body)).toBeNull();
    expect(
      (
        await call(t, 'PUT', `/v1/accounts/${account}/spend-caps`, {
          headers: bearer(reader),
          body: { monthly_cap_wei: '0' },
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await call(t, 'POST', `/v1/accounts/${account}/credits`, {
          headers: bearer(reader),
          body: { amount_usd_micros: '5', reference: 'free' },
        })
      ).status,
    ).toBe(403);
    const own = await call(t, 'GET', `/v1/accounts/${account}/balance`, {
      headers: bearer(reader),
    });
    expect(own.status).toBe(200);
    expect(validate('GET', '/v1/accounts/{id}/balance', 200, own.body)).toBeNull();
    expect(
      (await call(t, 'GET', `/v1/accounts/${other}/balance`, { headers: bearer(reader) })).status,
    ).toBe(403);
    expect(
      (await call(t, 'GET', `/v1/accounts/${other}/spend-caps`, { headers: bearer(reader) }))
        .status,
    ).toBe(403);
    const sub = await call(t, 'GET', `/v1/accounts/${account}/subscription`, {
      headers: bearer(reader),
    });
    expect(sub.status).toBe(200);
    expect(validate('GET', '/v1/accounts/{id}/subscription', 200, sub.body)).toBeNull();
    // A reader key cannot ask the gate (it is a gateway question).
    expect((await call(t, 'GET', '/v1/spend/check', { headers: bearer(reader) })).status).toBe(403);
  });

  it('changes a plan at the next month boundary', async () => {
    const account = await newAccount(t);
    await call(t, 'POST', '/v1/plans', {
      headers: bearer(admin),
      body: { id: 'later', name: 'Later' },
    });
    const changed = await call(t, 'PUT', `/v1/accounts/${account}/subscription`, {
      headers: bearer(admin),
      body: { plan_id: 'later' },
    });
    expect(changed.status).toBe(200);
    expect(validate('PUT', '/v1/accounts/{id}/subscription', 200, changed.body)).toBeNull();
    const next = monthOfUtc(t.clock(), -1);
    expect(changed.body.history).toEqual([
      expect.objectContaining({ plan_id: 'later', effective_month: next }),
    ]);
    // This month is still on the default (none here), not yet on "later".
    expect(changed.body.current_plan?.id ?? null).not.toBe('later');
  });
});
