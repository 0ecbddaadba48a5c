// Statements of prepaid months reconcile to the wei (issue #19): two closed months of three
// accounts — one prepaid throughout (Checkout top-ups, a partial refund, a dispute, a grant,
// usage on many days), one switched to prepaid mid-month, one switched back to postpaid — and
// every statement is checked three ways: its own arithmetic (opening + credits + debits −
// settled = closing), the ledger (the entries it lists, and the balance the ledger sums to),
// and a recount of the raw usage events (lines, fee wei, USD at the statement's rate). Prepaid
// months leave nothing due and are never invoiced in Stripe; the postpaid ones are.
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsageEvent } from '../../src/metering/index.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { bearer, call } from '../support/credentials.ts';
import type { FakeStripe } from '../support/fake-stripe.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { USD, startPrepaidApp } from './prepaid-support.ts';
import type { PrepaidTestApp } from './prepaid-support.ts';

const clock = fixedClock('2026-11-10T12:00:00Z');
let app: PrepaidTestApp;
let t: TestApp;
let fake: FakeStripe;
const validate = createResponseValidator();
let seq = 0;

interface Who {
  accountId: string;
  secret: string;
}

beforeAll(async () => {
  app = await startPrepaidApp(clock, 'whsec_test_secret_for_prepaid_statement');
  ({ t, fake } = app);
});
afterAll(async () => app?.close());

const account = (): Promise<Who> => app.account('postpaid');
const setMode = (who: Who, mode: 'prepaid' | 'postpaid') => app.setMode(who.accountId, mode);

async function deliver(type: string, object: Record<string, unknown>) {
  expect(await app.deliver(type, object)).toBe('applied');
}

/** Add credit: the API creates the session, the customer pays, Stripe sends the webhook. */
async function topUp(who: Who, usd: bigint): Promise<string> {
  const created = await call(t, 'POST', `/v1/accounts/${who.accountId}/checkout`, {
    headers: bearer(who.secret),
    body: { amount_usd_micros: (usd * USD).toString() },
  });
  expect(created.status).toBe(201);
  const session = fake.completeCheckout(created.body.id);
  await deliver('checkout.session.completed', session);
  return String(session.payment_intent);
}

async function grant(who: Who, micros: bigint) {
  await t.app.billing.service.addLedgerEntry(
    { actor: 'test', requestId: null },
    { accountId: who.accountId, kind: 'grant', amountUsdMicros: micros, reference: `g${seq++}` },
  );
}

/** Usage on `days` days of `month`, in two pipelines, with fees that do not round evenly. */
async function use(who: Who, month: string, days: readonly number[]) {
  const events: UsageEvent[] = days.flatMap((day) =>
    ['llm', 'text-to-image'].map((pipeline) => ({
      source: 'test/prepaid-statement',
      eventId: `u${seq++}`,
      occurredAt: new Date(
        `${month}-${String(day).padStart(2, '0')}T${String(day % 24).padStart(2, '0')}:17:00Z`,
      ),
      accountId: who.accountId,
      appId: null,
      keyId: null,
      clientId: null,
      endUserId: null,
      pipeline,
      modelId: 'm',
      unit: 'requests' as const,
      quantity: BigInt(randomInt(1, 50)),
      // ≈ $0.25–$0.75 at 2,000 USD/ETH, never a whole micro-dollar.
      feeWei: 123_456_789_017n * BigInt(randomInt(1_000, 3_000)) + 7n,
      status: 200,
      latencyMs: 1,
      attributes: {},
    })),
  );
  await t.app.metering.service.record(events);
}

const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;
/** The documented rule at 2,000 USD/ETH: ceil(wei × answer × 10⁶ / (10¹⁸ × 10^decimals)). */
const atCost = (wei: bigint) => ceilDiv(wei * 2000n * USD, 10n ** 18n);

async function statementOf(who: Who, month: string) {
  const list = await call(t, 'GET', `/v1/statements?month=${month}`, {
    headers: bearer(who.secret),
  });
  expect(list.status).toBe(200);
  expect(validate('GET', '/v1/statements', 200, list.body)).toBeNull();
  expect(list.body.statements).toHaveLength(1);
  const shown = await call(t, 'GET', `/v1/statements/${list.body.statements[0].id}`, {
    headers: bearer(who.secret),
  });
  expect(shown.status).toBe(200);
  expect(validate('GET', '/v1/statements/{id}', 200, shown.body)).toBeNull();
  return shown.body;
}

/** The statement against its own arithmetic, the ledger and the raw events; its closing balance. */
async function reconcile(who: Who, month: string, mode: 'prepaid' | 'postpaid') {
  const s = await statementOf(who, month);
  expect(s.billing_mode).toBe(mode);
  const b = s.balance;
  const [opening, credits, debits, settled, closing] = [
    b.opening_usd_micros,
    b.credits_usd_micros,
    b.debits_usd_micros,
    b.settled_usd_micros,
    b.closing_usd_micros,
  ].map(BigInt) as [bigint, bigint, bigint, bigint, bigint];
  expect(opening + credits + debits - settled).toBe(closing);
  expect(settled).toBe(BigInt(s.credits_applied_usd_micros));

  // The usage: the lines sum to it, and a recount of the raw events gives each line.
  const lineSum = s.lines.reduce(
    (sum: bigint, l: { charge_usd_micros: string }) => sum + BigInt(l.charge_usd_micros),
    0n,
  );
  expect(BigInt(s.usage_usd_micros)).toBe(lineSum);
  const raw = await t.app.database.db
    .selectFrom('usage_events')
    .select(['pipeline', 'fee_wei', 'occurred_at'])
    .where('account_id', '=', who.accountId)
    .execute();
  const byPipeline = new Map<string, bigint>();
  for (const r of raw) {
    if (r.occurred_at.toISOString().slice(0, 7) !== month) continue;
    byPipeline.set(r.pipeline, (byPipeline.get(r.pipeline) ?? 0n) + BigInt(r.fee_wei));
  }
  expect(s.lines).toHaveLength(byPipeline.size);
  for (const line of s.lines) {
    expect(line.fee_wei).toBe(byPipeline.get(line.pipeline)!.toString());
    expect(line.charge_usd_micros).toBe(atCost(byPipeline.get(line.pipeline)!).toString());
  }
  expect(s.fee_wei).toBe([...byPipeline.values()].reduce((a, v) => a + v, 0n).toString());

  if (mode === 'prepaid') {
    // Settled in full from the balance, past zero if need be; nothing left due.
    expect(settled).toBe(lineSum);
    expect(s.total_usd_micros).toBe('0');
  } else {
    const available = opening + credits + debits > 0n ? opening + credits + debits : 0n;
    expect(settled).toBe(available < lineSum ? available : lineSum);
    expect(BigInt(s.total_usd_micros)).toBe(lineSum - settled);
  }

  // The ledger: the entries the statement lists are its credits, debits and its own debit.
  const own = s.ledger_entries.filter((e: { kind: string }) => e.kind === 'statement');
  const others = s.ledger_entries.filter((e: { kind: string }) => e.kind !== 'statement');
  const amounts = (list: Array<{ amount_usd_micros: string }>) =>
    list.map((e) => BigInt(e.amount_usd_micros));
  expect(
    amounts(others)
      .filter((v) => v > 0n)
      .reduce((a, v) => a + v, 0n),
  ).toBe(credits);
  expect(
    amounts(others)
      .filter((v) => v < 0n)
      .reduce((a, v) => a + v, 0n),
  ).toBe(debits);
  expect(amounts(own)).toEqual(settled > 0n ? [-settled] : []);
  if (own.length > 0) expect(own[0].reference).toBe(`statement:${s.id}`);
  // Every listed entry is in the ledger as shown.
  const stored = await t.app.database.db
    .selectFrom('ledger_entries')
    .select(['reference', 'amount_usd_micros'])
    .where('account_id', '=', who.accountId)
    .execute();
  const byRef = new Map(stored.map((r) => [r.reference, r.amount_usd_micros]));
  for (const e of s.ledger_entries) expect(byRef.get(e.reference)).toBe(e.amount_usd_micros);

  // The CSV export carries the same settlement on each line.
  const csv = await fetch(`${t.url}/v1/statements/${s.id}/export?format=csv`, {
    headers: bearer(who.secret),
  });
  const rows = (await csv.text()).trim().split('\r\n');
  const header = rows[0]!.split(',');
  const first = Object.fromEntries(rows[1]!.split(',').map((v, i) => [header[i], v]));
  const dollars = (m: bigint) =>
    `${m < 0n ? '-' : ''}${(m < 0n ? -m : m) / USD}.${((m < 0n ? -m : m) % USD).toString().padStart(6, '0')}`;
  expect(first).toMatchObject({
    billing_mode: mode,
    opening_balance_usd: dollars(opening),
    credits_usd: dollars(credits),
    debits_usd: dollars(debits),
    settled_usd: dollars(settled),
    closing_balance_usd: dollars(closing),
  });
  return { id: s.id as string, opening, closing, credits, debits, settled };
}

async function ledgerBalance(who: Who) {
  return (await t.app.billing.service.balance(who.accountId)).balanceUsdMicros;
}

async function syncState(statementId: string) {
  const row = await t.app.database.db
    .selectFrom('stripe_sync')
    .select(['state', 'invoice_id'])
    .where('statement_id', '=', statementId)
    .executeTakeFirstOrThrow();
  return row;
}

describe('statements of prepaid months', () => {
  it('reconcile to the wei with the ledger and a raw recount, across a mode switch, and are not invoiced', async () => {
    const steady = await account(); // prepaid throughout
    const joins = await account(); // postpaid, switches to prepaid mid-October
    const leaves = await account(); // prepaid, switches to postpaid mid-October
    await setMode(steady, 'prepaid');
    await setMode(leaves, 'prepaid');

    // September.
    clock.set('2026-10-01T00:30:00Z');
    await grant(steady, 5n * USD);
    const septemberTopUp = await topUp(steady, 25n);
    await use(steady, '2026-09', [2, 9, 17, 28]);
    await use(joins, '2026-09', [3, 4]);
    await grant(leaves, 4n * USD);
    await use(leaves, '2026-09', [5]);
    clock.set('2026-10-02T00:00:00Z');
    expect((await t.app.billing.service.closeMonth('2026-09')).closed).toBe(true);

    const sepSteady = await reconcile(steady, '2026-09', 'prepaid');
    expect(sepSteady.opening).toBe(0n);
    expect(sepSteady.credits).toBe(30n * USD);
    const sepJoins = await reconcile(joins, '2026-09', 'postpaid');
    const sepLeaves = await reconcile(leaves, '2026-09', 'prepaid');

    // October: top-up, a partial refund of it, a dispute of September's, a grant; usage on
    // many days; two accounts change mode mid-month.
    clock.set('2026-10-12T09:00:00Z');
    const octoberTopUp = await topUp(steady, 50n);
    await deliver('charge.refunded', fake.refund(octoberTopUp, 512));
    await deliver('charge.dispute.created', fake.dispute(septemberTopUp, 1_000));
    await grant(steady, 2_000_001n);
    await use(steady, '2026-10', [1, 3, 8, 12, 13, 20, 25, 31]);
    await use(joins, '2026-10', [2, 6]);
    await use(leaves, '2026-10', [2, 6]);
    clock.set('2026-10-15T12:00:00Z');
    await grant(joins, 3n * USD);
    await setMode(joins, 'prepaid');
    await setMode(leaves, 'postpaid');
    await use(joins, '2026-10', [16, 22, 30]);
    await use(leaves, '2026-10', [16, 22, 30]);
    clock.set('2026-11-02T00:00:00Z');
    expect((await t.app.billing.service.closeMonth('2026-10')).closed).toBe(true);

    const octSteady = await reconcile(steady, '2026-10', 'prepaid');
    // The opening is September's closing; the movements are October's, to the micro-dollar.
    expect(octSteady.opening).toBe(sepSteady.closing);
    expect(octSteady.credits).toBe(50n * USD + 2_000_001n);
    expect(octSteady.debits).toBe(-(5_120_000n + 10n * USD));
    expect(octSteady.closing).toBe(await ledgerBalance(steady));
    // The mode in force when the month closes settles the whole month.
    const octJoins = await reconcile(joins, '2026-10', 'prepaid');
    expect(octJoins.opening).toBe(sepJoins.closing);
    expect(octJoins.closing).toBe(await ledgerBalance(joins));
    // $3 against ≈ $5 of usage: the prepaid month goes past zero and the debt carries over.
    expect(octJoins.closing).toBeLessThan(0n);
    const octLeaves = await reconcile(leaves, '2026-10', 'postpaid');
    expect(octLeaves.opening).toBe(sepLeaves.closing);
    expect(octLeaves.closing).toBe(await ledgerBalance(leaves));

    // Stripe: only the postpaid months with an amount due become invoices.
    // Sync rows are due from when the close wrote them (the database's clock).
    clock.set(new Date(Date.now() + 60_000));
    await t.app.billing.stripe.run();
    for (const s of [sepSteady, octSteady, octJoins, sepLeaves]) {
      expect(await syncState(s.id)).toEqual({ state: 'skipped', invoice_id: null });
    }
    for (const s of [sepJoins, octLeaves]) {
      const sync = await syncState(s.id);
      expect(sync.state).toBe('invoiced');
      const invoice = fake.invoices.get(sync.invoice_id!)!;
      expect(invoice.metadata).toMatchObject({ tollhouse_statement_id: s.id });
    }
    expect(fake.violations).toEqual([]);
  });
});
