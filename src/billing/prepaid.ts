// Prepaid credit (issue #19): a billing mode per account, top-ups through Stripe Checkout,
// refunds and disputes that debit the balance, auto-recharge by off-session PaymentIntents,
// and the balance/spend events published to the outbox.
//
// The balance an account may still spend is `ledger balance − this month's usage at cost`
// (the same rule the spend gate applies; see docs/metering-and-billing.md). Every credit and
// debit is a ledger entry whose `reference` names the Stripe object, so a webhook delivered
// twice, or a webhook and a recharge pass crediting the same PaymentIntent, records it once.
//
// Auto-recharge: a window opens when a prepaid account's spendable balance is below its
// threshold; it is keyed by the account and its latest credit, so the next window can only
// open after a credit lands (one recharge per dip, never one per pass or per replica). The
// window's row is inserted with ON CONFLICT DO NOTHING and claimed with one UPDATE, and every
// PaymentIntent carries the Idempotency-Key `tollhouse-recharge-<window>-<attempt>`: a crash
// after Stripe charged and before we credited replays the same key and gets the same
// PaymentIntent back. The attempt number moves on only after a card decline (Stripe charged
// nothing), never after a network error whose outcome is unknown.
import type Stripe from 'stripe';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { Clock } from '../platform/clock.ts';
import { InvalidRequest } from '../platform/errors.ts';
import type { EventSink, OutboundEvent } from '../platform/events.ts';
import type { Logger } from '../platform/log.ts';
import type { UsageReads } from '../metering/index.ts';
import { recordAudit } from '../platform/audit.ts';
import { StripeNotConfigured } from './errors.ts';
import { addMonths, monthOfDate, monthStart, weiToUsdMicros } from './pricing.ts';
import {
  claimDueRecharges,
  findPaymentAccount,
  findPrepaidAccounts,
  findPrepaidSettings,
  findRecharges,
  insertStripePayment,
  latestCheckoutPayment,
  latestCreditIds,
  openRecharges,
  rechargedThisMonth,
  savePaymentMethod,
  updateRecharge,
  upsertPrepaidSettings,
} from './prepaid-queries.ts';
import type { PrepaidSettings, Recharge } from './prepaid-queries.ts';
import {
  findLedgerEntries,
  findLedgerPage,
  findSpendCaps,
  insertLedgerEntry,
  notifyBillingChanged,
  sumBalances,
} from './queries.ts';
import type { RateSource } from './rates.ts';
import type { StripeSync } from './stripe.ts';
import { createUnsettledLastMonth } from './unsettled.ts';
import type { BillingMode } from './table.ts';

export type { PrepaidSettings, Recharge };

/** 1 cent = 10,000 micro-dollars: Stripe charges whole cents. */
const MICROS_PER_CENT = 10_000n;
// Last month's totals are re-read this often while its close is pending (late events).
const UNSETTLED_MAX_AGE_MS = 600_000;
// Declines retried 30 s, 1 min, 2 min … capped at 6 h, then the window is given up.
const FIRST_RETRY_MS = 30_000;
const MAX_RETRY_MS = 6 * 3_600_000;
// Longer than a PaymentIntent call takes (the SDK's timeout is 20 s).
const CLAIM_LEASE_MS = 60_000;

export interface PrepaidConfig {
  /** Amounts "Add credit" may charge, micro-dollars (whole cents), ascending. */
  topUpAmountsUsdMicros: readonly bigint[];
  /** Percentages of a spend cap that publish `spend.threshold_reached`. */
  spendAlertPercents: readonly number[];
  /** Declined recharges tried this many times before the window fails. */
  rechargeMaxAttempts: number;
  /** Where Checkout sends the customer back (the console's billing page). */
  publicUrl: string;
}

/** What the settings default to (docs/configuration.md); tests and benches use it as is. */
export const DEFAULT_PREPAID_CONFIG: PrepaidConfig = {
  topUpAmountsUsdMicros: [10_000_000n, 25_000_000n, 50_000_000n, 100_000_000n],
  spendAlertPercents: [50, 80, 100],
  rechargeMaxAttempts: 5,
  publicUrl: 'http://localhost:8080',
};

export interface Actor {
  actor: string;
  requestId: string | null;
}

const usd = (micros: bigint) => micros.toString();

/** The Stripe webhook events prepaid credit applies, inside the webhook's transaction. */
export function createPrepaidWebhooks(deps: {
  events: EventSink;
  clock: Clock;
  /**
   * The payment method a SetupIntent saved (Checkout in `setup` mode): Stripe's
   * `checkout.session.completed` names the SetupIntent only, never its payment method.
   */
  setupIntentPaymentMethod?: (setupIntentId: string) => Promise<string | null>;
}) {
  const { events } = deps;

  async function credit(
    trx: Transaction<Database>,
    e: {
      accountId: string;
      kind: 'top_up' | 'recharge';
      amountUsdMicros: bigint;
      paymentIntentId: string | null;
      reference: string;
      memo: string;
    },
  ): Promise<boolean> {
    const added = await insertLedgerEntry(trx, {
      accountId: e.accountId,
      kind: e.kind,
      amountUsdMicros: e.amountUsdMicros,
      reference: e.reference,
      memo: e.memo,
    });
    if (!added) return false;
    if (e.paymentIntentId !== null) {
      await insertStripePayment(trx, {
        paymentIntentId: e.paymentIntentId,
        accountId: e.accountId,
        source: e.kind === 'top_up' ? 'checkout' : 'recharge',
        amountUsdMicros: e.amountUsdMicros,
      });
    }
    const balance = (await sumBalances(trx, [e.accountId])).get(e.accountId) ?? 0n;
    await events.publish(trx, [
      {
        type: 'balance.recharged',
        accountId: e.accountId,
        key: `balance.recharged:${e.reference}`,
        data: {
          account_id: e.accountId,
          source: e.kind === 'top_up' ? 'checkout' : 'auto_recharge',
          amount_usd_micros: usd(e.amountUsdMicros),
          balance_usd_micros: usd(balance),
          reference: e.reference,
        },
      },
    ]);
    await notifyBillingChanged(trx, `account:${e.accountId}`);
    return true;
  }

  async function debit(
    trx: Transaction<Database>,
    e: { accountId: string; kind: 'refund' | 'dispute'; cents: number; reference: string },
  ): Promise<boolean> {
    const added = await insertLedgerEntry(trx, {
      accountId: e.accountId,
      kind: e.kind,
      amountUsdMicros: -BigInt(e.cents) * MICROS_PER_CENT,
      reference: e.reference,
      memo: e.kind === 'refund' ? 'Stripe refund' : 'Stripe dispute',
    });
    if (added) await notifyBillingChanged(trx, `account:${e.accountId}`);
    return added;
  }

  const cents = (v: unknown): number | null =>
    typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null;
  const idOf = (v: unknown): string | null =>
    typeof v === 'string'
      ? v
      : typeof v === 'object' && v !== null && 'id' in v
        ? String(v.id)
        : null;

  async function accountExists(trx: Transaction<Database>, accountId: string) {
    const row = await trx
      .selectFrom('accounts')
      .select('id')
      .where('id', '=', accountId)
      .executeTakeFirst();
    return row !== undefined;
  }

  return async function handleEvent(
    trx: Transaction<Database>,
    event: Stripe.Event,
  ): Promise<'applied' | 'ignored'> {
    const object = event.data.object as unknown as Record<string, unknown>;
    const usdOnly = String(object.currency).toLowerCase() === 'usd';
    if (event.type === 'checkout.session.completed' && object.mode === 'setup') {
      // "Save a card" (auto-recharge): the SetupIntent's payment method becomes the saved one.
      // One Stripe read inside the webhook's transaction: the event is rare (a customer saving
      // a card), and a failure rolls back and Stripe redelivers.
      const metadata = (object.metadata ?? {}) as Record<string, string>;
      const accountId = metadata.tollhouse_account_id;
      const setupIntent = idOf(object.setup_intent);
      if (
        typeof accountId !== 'string' ||
        object.status !== 'complete' ||
        setupIntent === null ||
        deps.setupIntentPaymentMethod === undefined ||
        !(await accountExists(trx, accountId))
      ) {
        return 'ignored';
      }
      const pm = await deps.setupIntentPaymentMethod(setupIntent);
      if (pm === null) return 'ignored';
      await savePaymentMethod(trx, accountId, pm, deps.clock());
      await notifyBillingChanged(trx, `account:${accountId}`);
      return 'applied';
    }
    if (event.type === 'checkout.session.completed') {
      const metadata = (object.metadata ?? {}) as Record<string, string>;
      const accountId = metadata.tollhouse_account_id;
      const amount = cents(object.amount_total);
      if (
        typeof accountId !== 'string' ||
        object.payment_status !== 'paid' ||
        amount === null ||
        !usdOnly ||
        !(await accountExists(trx, accountId))
      ) {
        return 'ignored';
      }
      const added = await credit(trx, {
        accountId,
        kind: 'top_up',
        amountUsdMicros: BigInt(amount) * MICROS_PER_CENT,
        paymentIntentId: idOf(object.payment_intent),
        reference: `stripe:checkout:${String(object.id)}`,
        memo: 'Stripe Checkout top-up',
      });
      return added ? 'applied' : 'ignored';
    }
    if (event.type === 'payment_intent.succeeded') {
      // Auto-recharges are credited by the recharge pass; this is the path when that pass
      // died after Stripe charged (the reference is the same, so only one of them counts).
      const metadata = (object.metadata ?? {}) as Record<string, string>;
      const accountId = metadata.tollhouse_account_id;
      const amount = cents(object.amount_received);
      if (
        metadata.tollhouse_recharge === undefined ||
        typeof accountId !== 'string' ||
        amount === null ||
        !usdOnly ||
        !(await accountExists(trx, accountId))
      ) {
        return 'ignored';
      }
      const added = await credit(trx, {
        accountId,
        kind: 'recharge',
        amountUsdMicros: BigInt(amount) * MICROS_PER_CENT,
        paymentIntentId: String(object.id),
        reference: `stripe:payment_intent:${String(object.id)}`,
        memo: 'Auto-recharge',
      });
      if (added) {
        await trx
          .updateTable('recharges')
          .set({
            state: 'succeeded',
            payment_intent_id: String(object.id),
            updated_at: deps.clock(),
          })
          .where('window_key', '=', metadata.tollhouse_recharge)
          .execute();
      }
      return added ? 'applied' : 'ignored';
    }
    if (event.type === 'charge.refunded') {
      const pi = idOf(object.payment_intent);
      const accountId = pi === null ? null : await findPaymentAccount(trx, pi);
      if (accountId === null || !usdOnly) return 'ignored';
      const refunds = ((object.refunds as { data?: unknown[] } | undefined)?.data ?? []) as Array<
        Record<string, unknown>
      >;
      let applied = false;
      for (const refund of refunds) {
        const amount = cents(refund.amount);
        if (amount === null || typeof refund.id !== 'string') continue;
        if (refund.status !== undefined && refund.status !== 'succeeded') continue;
        const added = await debit(trx, {
          accountId,
          kind: 'refund',
          cents: amount,
          reference: `stripe:refund:${refund.id}`,
        });
        applied ||= added;
      }
      return applied ? 'applied' : 'ignored';
    }
    if (event.type === 'charge.dispute.created') {
      const pi = idOf(object.payment_intent);
      const accountId = pi === null ? null : await findPaymentAccount(trx, pi);
      const amount = cents(object.amount);
      if (accountId === null || amount === null || !usdOnly) return 'ignored';
      const added = await debit(trx, {
        accountId,
        kind: 'dispute',
        cents: amount,
        reference: `stripe:dispute:${String(object.id)}`,
      });
      return added ? 'applied' : 'ignored';
    }
    return 'ignored';
  };
}

export interface PrepaidDeps {
  db: Kysely<Database>;
  stripe: StripeSync;
  events: EventSink;
  usage: Pick<UsageReads, 'spendByPayer'>;
  rates: RateSource;
  log: Logger;
  clock: Clock;
  config: PrepaidConfig;
  requireAccount: (accountId: string) => Promise<void>;
}

export type Prepaid = ReturnType<typeof createPrepaid>;

export function createPrepaid(deps: PrepaidDeps) {
  const { db, stripe, events, log, clock, config } = deps;

  const unsettledLastMonth = createUnsettledLastMonth({
    db,
    usage: deps.usage,
    clock,
    maxAgeMs: UNSETTLED_MAX_AGE_MS,
  });

  /**
   * Usage not yet drawn from the ledger, per account (wei), as the spend gate counts it: the
   * month to date plus last month's until its close settles it (billing/unsettled.ts); and
   * this month's own figures (spend caps and the month's usage count the month alone).
   */
  async function monthUsage(now: Date) {
    const month = monthOfDate(now);
    const rows = await deps.usage.spendByPayer(monthStart(month), monthStart(addMonths(month, 1)));
    const monthWei = new Map<string, bigint>();
    for (const r of rows) monthWei.set(r.accountId, (monthWei.get(r.accountId) ?? 0n) + r.feeWei);
    const wei = await unsettledLastMonth(month);
    for (const [accountId, spent] of monthWei)
      wei.set(accountId, (wei.get(accountId) ?? 0n) + spent);
    return { month, wei, monthWei, rows };
  }

  async function overview(accountId: string) {
    await deps.requireAccount(accountId);
    const settings = await findPrepaidSettings(db, accountId);
    const balance = (await sumBalances(db, [accountId])).get(accountId) ?? 0n;
    const { wei, monthWei } = await monthUsage(clock());
    const spentWei = monthWei.get(accountId) ?? 0n;
    let spentUsd: bigint | null = null;
    let drawnUsd: bigint | null = null;
    try {
      const rate = await deps.rates.current();
      spentUsd = weiToUsdMicros(spentWei, rate);
      drawnUsd = weiToUsdMicros(wei.get(accountId) ?? 0n, rate);
    } catch {
      // No rate: the spendable balance is unknown (the gate refuses prepaid spend meanwhile).
    }
    return {
      settings,
      balanceUsdMicros: balance,
      monthUsageWei: spentWei,
      monthUsageUsdMicros: spentUsd,
      // Last month's usage counts too until its close settles it (billing/unsettled.ts).
      spendableUsdMicros: drawnUsd === null ? null : balance - drawnUsd,
      entries: await findLedgerEntries(db, accountId, 100),
      recharges: await findRecharges(db, accountId, 20),
      topUpAmountsUsdMicros: config.topUpAmountsUsdMicros,
    };
  }

  async function setMode(actor: Actor, accountId: string, mode: BillingMode) {
    await deps.requireAccount(accountId);
    await db.transaction().execute(async (trx) => {
      const current = await findPrepaidSettings(trx, accountId);
      await upsertPrepaidSettings(trx, { ...current, mode }, clock());
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'billing.mode',
        subject: accountId,
        requestId: actor.requestId,
        details: { mode },
      });
      await notifyBillingChanged(trx, `account:${accountId}`);
    });
    return findPrepaidSettings(db, accountId);
  }

  async function setAutoRecharge(
    actor: Actor,
    accountId: string,
    input: { enabled: boolean; threshold: bigint; amount: bigint; monthlyMax: bigint },
  ) {
    await deps.requireAccount(accountId);
    if (input.enabled) {
      if (input.amount <= 0n || input.amount % MICROS_PER_CENT !== 0n) {
        throw new InvalidRequest('body.amount_usd_micros: a positive whole number of cents');
      }
      if (input.monthlyMax < input.amount) {
        throw new InvalidRequest(
          'body.monthly_max_usd_micros: at least amount_usd_micros (else no recharge could run)',
        );
      }
    }
    await db.transaction().execute(async (trx) => {
      const current = await findPrepaidSettings(trx, accountId);
      await upsertPrepaidSettings(
        trx,
        {
          ...current,
          autoRecharge: input.enabled,
          thresholdUsdMicros: input.threshold,
          amountUsdMicros: input.amount,
          monthlyMaxUsdMicros: input.monthlyMax,
        },
        clock(),
      );
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'billing.auto_recharge',
        subject: accountId,
        requestId: actor.requestId,
        details: {
          enabled: input.enabled,
          threshold_usd_micros: usd(input.threshold),
          amount_usd_micros: usd(input.amount),
          monthly_max_usd_micros: usd(input.monthlyMax),
        },
      });
    });
    return findPrepaidSettings(db, accountId);
  }

  /** A Checkout Session for one of the allowed amounts; the webhook credits it. */
  async function createCheckout(accountId: string, amountUsdMicros: bigint) {
    await deps.requireAccount(accountId);
    if (!config.topUpAmountsUsdMicros.includes(amountUsdMicros)) {
      throw new InvalidRequest(
        `body.amount_usd_micros: one of ${config.topUpAmountsUsdMicros.join(', ')}`,
      );
    }
    if (!stripe.configured) {
      throw new StripeNotConfigured('Stripe is not configured: set STRIPE_SECRET_KEY');
    }
    const customer = await stripe.customerFor(accountId);
    // The console's balance page: it shows the credit once the webhook has landed.
    const back = `${config.publicUrl}/console/balance`;
    const session = await stripe.client().checkout.sessions.create(
      {
        mode: 'payment',
        customer,
        line_items: [
          {
            quantity: 1,
            price_data: {
              currency: 'usd',
              unit_amount: Number(amountUsdMicros / MICROS_PER_CENT),
              product_data: { name: 'Prepaid credit' },
            },
          },
        ],
        // Saves the card for auto-recharge (off-session PaymentIntents).
        payment_intent_data: {
          setup_future_usage: 'off_session',
          metadata: { tollhouse_account_id: accountId },
        },
        metadata: { tollhouse_account_id: accountId },
        success_url: `${back}?checkout={CHECKOUT_SESSION_ID}`,
        cancel_url: back,
      },
      // Each click is a new session; the key only guards the SDK's own retry of this call.
      { idempotencyKey: `tollhouse-checkout-${accountId}-${crypto.randomUUID()}` },
    );
    return { id: session.id, url: session.url ?? null };
  }

  /**
   * A Checkout Session in `setup` mode: the customer saves a card for auto-recharge without
   * paying; `checkout.session.completed` (mode setup) saves its payment method.
   */
  async function createSetupCheckout(accountId: string) {
    await deps.requireAccount(accountId);
    if (!stripe.configured) {
      throw new StripeNotConfigured('Stripe is not configured: set STRIPE_SECRET_KEY');
    }
    const customer = await stripe.customerFor(accountId);
    const back = `${config.publicUrl}/console/balance`;
    const session = await stripe.client().checkout.sessions.create(
      {
        mode: 'setup',
        customer,
        currency: 'usd',
        setup_intent_data: { metadata: { tollhouse_account_id: accountId } },
        metadata: { tollhouse_account_id: accountId },
        success_url: `${back}?setup={CHECKOUT_SESSION_ID}`,
        cancel_url: back,
      },
      { idempotencyKey: `tollhouse-setup-${accountId}-${crypto.randomUUID()}` },
    );
    return { id: session.id, url: session.url ?? null };
  }

  /** The account's ledger, newest first, `limit` entries before the entry `beforeId`. */
  async function ledger(accountId: string, page: { limit: number; beforeId: bigint | null }) {
    await deps.requireAccount(accountId);
    const rows = await findLedgerPage(db, accountId, page.limit + 1, page.beforeId);
    const more = rows.length > page.limit;
    const entries = more ? rows.slice(0, page.limit) : rows;
    return { entries, nextBeforeId: more ? entries[entries.length - 1]!.id : null };
  }

  /** Balance and spend-cap crossings, published once per crossing key. */
  async function publishCrossings(now: Date, usage: Awaited<ReturnType<typeof monthUsage>>) {
    const prepaid = await findPrepaidAccounts(db);
    let rate = null;
    try {
      rate = await deps.rates.current();
    } catch (error) {
      log.warn({ err: error }, 'ETH/USD rate unavailable: no balance alerts this pass');
    }
    const ids = prepaid.map((p) => p.accountId);
    // The balances and the latest credits from one snapshot. The credit names the recharge
    // window, so read apart, a replica could see another's recharge in the credits but not in
    // the balance: a new window for a balance already topped up, charged a second time (found
    // by test/billing/prepaid.test.ts, two replicas racing one window).
    const { balances, credits } = await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => ({
        balances: await sumBalances(trx, ids),
        // One query for every account's latest credit (it was one per account: issue #19).
        credits: rate === null ? new Map<string, string>() : await latestCreditIds(trx, ids),
      }));
    const out: OutboundEvent[] = [];
    const spendable = new Map<string, bigint>();
    if (rate !== null) {
      for (const p of prepaid) {
        const left =
          (balances.get(p.accountId) ?? 0n) -
          weiToUsdMicros(usage.wei.get(p.accountId) ?? 0n, rate);
        spendable.set(p.accountId, left);
        // The latest credit names the window: a top-up that lifts the balance re-arms it.
        const credit = credits.get(p.accountId) ?? '0';
        const data = {
          account_id: p.accountId,
          balance_usd_micros: usd(left),
          threshold_usd_micros: usd(p.thresholdUsdMicros),
        };
        if (left <= 0n) {
          out.push({
            type: 'balance.depleted',
            accountId: p.accountId,
            key: `balance.depleted:${p.accountId}:${credit}`,
            data,
          });
        }
        if (left < p.thresholdUsdMicros) {
          out.push({
            type: 'balance.low',
            accountId: p.accountId,
            key: `balance.low:${p.accountId}:${credit}`,
            data,
          });
        }
      }
    }
    const caps = await findSpendCaps(db);
    const spentBy = new Map<string, bigint>();
    for (const r of usage.rows) {
      const add = (k: string) => spentBy.set(k, (spentBy.get(k) ?? 0n) + r.feeWei);
      add(`${r.accountId}\u0000\u0000`);
      if (r.appId !== '') add(`${r.accountId}\u0000${r.appId}\u0000`);
      if (r.appId !== '' && r.endUserId !== '')
        add(`${r.accountId}\u0000${r.appId}\u0000${r.endUserId}`);
    }
    for (const cap of caps) {
      if (cap.monthlyCapWei === 0n || cap.endUserId === '*') continue;
      const scope = `${cap.accountId}\u0000${cap.appId ?? ''}\u0000${cap.endUserId ?? ''}`;
      const spent = spentBy.get(scope) ?? 0n;
      for (const pct of config.spendAlertPercents) {
        if (spent * 100n < cap.monthlyCapWei * BigInt(pct)) continue;
        out.push({
          type: 'spend.threshold_reached',
          accountId: cap.accountId,
          // The cap is in the key: raising it re-arms its thresholds.
          key: `spend.threshold_reached:${scope.replaceAll('\u0000', ':')}:${usage.month}:${cap.monthlyCapWei}:${pct}`,
          data: {
            account_id: cap.accountId,
            app_id: cap.appId,
            end_user_id: cap.endUserId,
            month: usage.month,
            percent: pct,
            spent_wei: spent.toString(),
            monthly_cap_wei: cap.monthlyCapWei.toString(),
          },
        });
      }
    }
    if (out.length > 0) await db.transaction().execute((trx) => events.publish(trx, out));
    return { prepaid, spendable, credits, at: now };
  }

  /**
   * Opens a recharge window for every prepaid account below its threshold: one query for the
   * month's recharges of all of them and one INSERT for all windows (existing ones are kept).
   */
  async function openWindows(
    prepaid: PrepaidSettings[],
    spendable: Map<string, bigint>,
    credits: Map<string, string>,
    now: Date,
    month: string,
  ) {
    const below = prepaid.filter((p) => {
      const left = spendable.get(p.accountId);
      return (
        p.autoRecharge &&
        left !== undefined &&
        left < p.thresholdUsdMicros &&
        p.amountUsdMicros > 0n
      );
    });
    if (below.length === 0) return;
    const done = await rechargedThisMonth(
      db,
      below.map((p) => p.accountId),
      month,
    );
    const windows = below
      .filter((p) => (done.get(p.accountId) ?? 0n) + p.amountUsdMicros <= p.monthlyMaxUsdMicros)
      .map((p) => ({
        windowKey: `${p.accountId}-${credits.get(p.accountId) ?? '0'}`,
        accountId: p.accountId,
        month,
        amountUsdMicros: p.amountUsdMicros,
      }));
    await openRecharges(db, windows, now);
  }

  async function paymentMethodFor(settings: PrepaidSettings): Promise<string | null> {
    if (settings.paymentMethodId !== null) return settings.paymentMethodId;
    // Saved at the first top-up (setup_future_usage): the card is on its PaymentIntent.
    const pi = await latestCheckoutPayment(db, settings.accountId);
    if (pi === null) return null;
    const intent = await stripe.client().paymentIntents.retrieve(pi);
    const pm =
      typeof intent.payment_method === 'string'
        ? intent.payment_method
        : (intent.payment_method?.id ?? null);
    if (pm !== null) await savePaymentMethod(db, settings.accountId, pm, clock());
    return pm;
  }

  async function failed(r: Recharge, message: string, attempts: number, final: boolean) {
    const now = clock();
    const delay = Math.min(FIRST_RETRY_MS * 2 ** Math.max(attempts - 1, 0), MAX_RETRY_MS);
    await db.transaction().execute(async (trx) => {
      await updateRecharge(
        trx,
        r.windowKey,
        {
          attempts,
          state: final ? 'failed' : 'pending',
          next_attempt_at: new Date(now.getTime() + delay),
          last_error: message.slice(0, 500),
        },
        now,
      );
      await events.publish(trx, [
        {
          type: 'recharge.failed',
          accountId: r.accountId,
          key: `recharge.failed:${r.windowKey}:${attempts}`,
          data: {
            account_id: r.accountId,
            amount_usd_micros: usd(r.amountUsdMicros),
            attempts,
            final,
            error: message.slice(0, 500),
          },
        },
      ]);
    });
  }

  async function chargeWindow(r: Recharge) {
    const settings = await findPrepaidSettings(db, r.accountId);
    const pm = await paymentMethodFor(settings);
    if (pm === null) {
      await failed(
        r,
        'No saved payment method: add credit once through Checkout',
        r.attempts + 1,
        true,
      );
      return 'failed';
    }
    const customer = await stripe.customerFor(r.accountId);
    let intent: Stripe.PaymentIntent;
    try {
      intent = await stripe.client().paymentIntents.create(
        {
          amount: Number(r.amountUsdMicros / MICROS_PER_CENT),
          currency: 'usd',
          customer,
          payment_method: pm,
          off_session: true,
          confirm: true,
          description: 'tollhouse auto-recharge',
          metadata: { tollhouse_account_id: r.accountId, tollhouse_recharge: r.windowKey },
        },
        { idempotencyKey: `tollhouse-recharge-${r.windowKey}-${r.attempts}` },
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const declined =
        typeof error === 'object' &&
        error !== null &&
        (error as { type?: string }).type === 'StripeCardError';
      // Only a decline moves to a new attempt (and key); anything else retries the same key.
      const attempts = declined ? r.attempts + 1 : r.attempts;
      await failed(r, message, attempts, declined && attempts >= config.rechargeMaxAttempts);
      log.warn({ err: error, window: r.windowKey }, 'auto-recharge failed');
      return 'failed';
    }
    if (intent.status !== 'succeeded') {
      // e.g. requires_action (3-D Secure): the customer must pay in person; give the window up.
      await failed(r, `PaymentIntent ${intent.id} is ${intent.status}`, r.attempts + 1, true);
      return 'failed';
    }
    const handle = createPrepaidWebhooks({ events, clock });
    await db.transaction().execute(async (trx) => {
      await handle(trx, {
        type: 'payment_intent.succeeded',
        data: { object: intent },
      } as unknown as Stripe.Event);
      await updateRecharge(
        trx,
        r.windowKey,
        { state: 'succeeded', payment_intent_id: intent.id, last_error: null },
        clock(),
      );
    });
    return 'succeeded';
  }

  /** One pass: publish crossings, open recharge windows, charge the due ones. */
  async function run() {
    const now = clock();
    const usage = await monthUsage(now);
    const { prepaid, spendable, credits } = await publishCrossings(now, usage);
    if (!stripe.configured) return [];
    await openWindows(prepaid, spendable, credits, now, usage.month);
    const results: Array<{ window: string; outcome: string }> = [];
    for (const r of await claimDueRecharges(db, now, CLAIM_LEASE_MS, 50)) {
      results.push({ window: r.windowKey, outcome: await chargeWindow(r) });
    }
    return results;
  }

  /** Recharges for the operator console (failed and pending first). */
  async function recharges(accountId: string | null) {
    if (accountId !== null) {
      await deps.requireAccount(accountId);
    }
    return findRecharges(db, accountId, 100);
  }

  return {
    overview,
    setMode,
    setAutoRecharge,
    createCheckout,
    createSetupCheckout,
    ledger,
    run,
    recharges,
  };
}
