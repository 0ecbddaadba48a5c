// Queries of prepaid credit: billing mode and auto-recharge settings per account, the Stripe
// payments that credited a balance, and the auto-recharge windows.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { BillingMode, RechargeState } from './table.ts';

type Db = Kysely<Database> | Transaction<Database>;

export interface PrepaidSettings {
  accountId: string;
  mode: BillingMode;
  autoRecharge: boolean;
  thresholdUsdMicros: bigint;
  amountUsdMicros: bigint;
  monthlyMaxUsdMicros: bigint;
  paymentMethodId: string | null;
}

const defaults = (accountId: string): PrepaidSettings => ({
  accountId,
  mode: 'postpaid',
  autoRecharge: false,
  thresholdUsdMicros: 0n,
  amountUsdMicros: 0n,
  monthlyMaxUsdMicros: 0n,
  paymentMethodId: null,
});

type Row = {
  account_id: string;
  mode: BillingMode;
  auto_recharge: boolean;
  recharge_threshold_usd_micros: string;
  recharge_amount_usd_micros: string;
  recharge_monthly_max_usd_micros: string;
  payment_method_id: string | null;
};

const toSettings = (r: Row): PrepaidSettings => ({
  accountId: r.account_id,
  mode: r.mode,
  autoRecharge: r.auto_recharge,
  thresholdUsdMicros: BigInt(r.recharge_threshold_usd_micros),
  amountUsdMicros: BigInt(r.recharge_amount_usd_micros),
  monthlyMaxUsdMicros: BigInt(r.recharge_monthly_max_usd_micros),
  paymentMethodId: r.payment_method_id,
});

export async function findPrepaidSettings(db: Db, accountId: string): Promise<PrepaidSettings> {
  const row = await db
    .selectFrom('billing_accounts')
    .selectAll()
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return row === undefined ? defaults(accountId) : toSettings(row);
}

/** Every account in prepaid mode (a few per deployment at most thousands; read on reload). */
export async function findPrepaidAccounts(db: Db): Promise<PrepaidSettings[]> {
  const rows = await db
    .selectFrom('billing_accounts')
    .selectAll()
    .where('mode', '=', 'prepaid')
    .execute();
  return rows.map(toSettings);
}

/** Which of `accountIds` are in billing mode `prepaid` now (the close asks, set-based). */
export async function findPrepaidModeAccounts(
  db: Db,
  accountIds: readonly string[],
): Promise<Set<string>> {
  if (accountIds.length === 0) return new Set();
  const rows = await db
    .selectFrom('billing_accounts')
    .select('account_id')
    .where('mode', '=', 'prepaid')
    .where('account_id', 'in', [...accountIds])
    .execute();
  return new Set(rows.map((r) => r.account_id));
}

export async function upsertPrepaidSettings(
  db: Db,
  s: Omit<PrepaidSettings, 'paymentMethodId'>,
  at: Date,
): Promise<void> {
  const values = {
    mode: s.mode,
    auto_recharge: s.autoRecharge,
    recharge_threshold_usd_micros: s.thresholdUsdMicros.toString(),
    recharge_amount_usd_micros: s.amountUsdMicros.toString(),
    recharge_monthly_max_usd_micros: s.monthlyMaxUsdMicros.toString(),
    updated_at: at,
  };
  await db
    .insertInto('billing_accounts')
    .values({ account_id: s.accountId, ...values })
    .onConflict((oc) => oc.column('account_id').doUpdateSet(values))
    .execute();
}

export async function savePaymentMethod(db: Db, accountId: string, pm: string, at: Date) {
  await db
    .insertInto('billing_accounts')
    .values({ account_id: accountId, payment_method_id: pm, updated_at: at })
    .onConflict((oc) =>
      oc.column('account_id').doUpdateSet({ payment_method_id: pm, updated_at: at }),
    )
    .execute();
}

export async function insertStripePayment(
  db: Db,
  p: {
    paymentIntentId: string;
    accountId: string;
    source: 'checkout' | 'recharge';
    amountUsdMicros: bigint;
  },
): Promise<void> {
  await db
    .insertInto('stripe_payments')
    .values({
      payment_intent_id: p.paymentIntentId,
      account_id: p.accountId,
      source: p.source,
      amount_usd_micros: p.amountUsdMicros.toString(),
    })
    .onConflict((oc) => oc.column('payment_intent_id').doNothing())
    .execute();
}

export async function findPaymentAccount(db: Db, paymentIntentId: string): Promise<string | null> {
  const row = await db
    .selectFrom('stripe_payments')
    .select('account_id')
    .where('payment_intent_id', '=', paymentIntentId)
    .executeTakeFirst();
  return row?.account_id ?? null;
}

export async function latestCheckoutPayment(db: Db, accountId: string): Promise<string | null> {
  const row = await db
    .selectFrom('stripe_payments')
    .select('payment_intent_id')
    .where('account_id', '=', accountId)
    .where('source', '=', 'checkout')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.payment_intent_id ?? null;
}

/**
 * The id of each account's latest credit (a positive ledger entry): it names a low-balance
 * window. One query for all accounts ('0' for an account without credit).
 */
export async function latestCreditIds(
  db: Db,
  accountIds: readonly string[],
): Promise<Map<string, string>> {
  const out = new Map(accountIds.map((a) => [a, '0']));
  if (accountIds.length === 0) return out;
  const rows = await db
    .selectFrom('ledger_entries')
    .select(['account_id', sql<string>`max(id)::text`.as('id')])
    .where('account_id', 'in', [...accountIds])
    .where(sql<boolean>`amount_usd_micros > 0`)
    .groupBy('account_id')
    .execute();
  for (const r of rows) out.set(r.account_id, r.id);
  return out;
}

export interface Recharge {
  windowKey: string;
  accountId: string;
  month: string;
  amountUsdMicros: bigint;
  state: RechargeState;
  paymentIntentId: string | null;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  createdAt: Date;
}

type RechargeRow = {
  window_key: string;
  account_id: string;
  month: Date;
  amount_usd_micros: string;
  state: RechargeState;
  payment_intent_id: string | null;
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
};

const toRecharge = (r: RechargeRow): Recharge => ({
  windowKey: r.window_key,
  accountId: r.account_id,
  month: r.month.toISOString().slice(0, 7),
  amountUsdMicros: BigInt(r.amount_usd_micros),
  state: r.state,
  paymentIntentId: r.payment_intent_id,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  createdAt: r.created_at,
});

/** Opens recharge windows in one INSERT; a window that exists (another replica, or an earlier
 * pass) is left as it is. Returns the keys of the windows opened now. */
export async function openRecharges(
  db: Db,
  windows: ReadonlyArray<{
    windowKey: string;
    accountId: string;
    month: string;
    amountUsdMicros: bigint;
  }>,
  at: Date,
): Promise<string[]> {
  if (windows.length === 0) return [];
  const inserted = await db
    .insertInto('recharges')
    .values(
      windows.map((r) => ({
        window_key: r.windowKey,
        account_id: r.accountId,
        month: `${r.month}-01`,
        amount_usd_micros: r.amountUsdMicros.toString(),
        state: 'pending' as const,
        next_attempt_at: at,
        created_at: at,
        updated_at: at,
      })),
    )
    .onConflict((oc) => oc.column('window_key').doNothing())
    .returning('window_key')
    .execute();
  return inserted.map((r) => r.window_key);
}

/**
 * This month's recharges per account that count against the monthly maximum (not the failed
 * ones); one query for all accounts (0 for an account without any).
 */
export async function rechargedThisMonth(
  db: Db,
  accountIds: readonly string[],
  month: string,
): Promise<Map<string, bigint>> {
  const out = new Map(accountIds.map((a) => [a, 0n]));
  if (accountIds.length === 0) return out;
  const rows = await db
    .selectFrom('recharges')
    .select(['account_id', sql<string>`sum(amount_usd_micros)::text`.as('total')])
    .where('account_id', 'in', [...accountIds])
    .where(sql<string>`month`, '=', `${month}-01`)
    .where('state', '!=', 'failed')
    .groupBy('account_id')
    .execute();
  for (const r of rows) out.set(r.account_id, BigInt(r.total));
  return out;
}

/**
 * Claims due pending recharges for `leaseMs`: the claim is one UPDATE, so two replicas never
 * work on the same window at once (and if they did, the Idempotency-Key makes it one charge).
 */
export async function claimDueRecharges(
  db: Db,
  now: Date,
  leaseMs: number,
  limit: number,
): Promise<Recharge[]> {
  const rows = await db
    .updateTable('recharges')
    .set({ next_attempt_at: new Date(now.getTime() + leaseMs), updated_at: now })
    .where(
      'window_key',
      'in',
      db
        .selectFrom('recharges')
        .select('window_key')
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .limit(limit),
    )
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .returningAll()
    .execute();
  return rows.map(toRecharge);
}

export async function updateRecharge(
  db: Db,
  windowKey: string,
  set: {
    state?: RechargeState;
    payment_intent_id?: string | null;
    attempts?: number;
    next_attempt_at?: Date;
    last_error?: string | null;
  },
  at: Date,
): Promise<void> {
  await db
    .updateTable('recharges')
    .set({ ...set, updated_at: at })
    .where('window_key', '=', windowKey)
    .execute();
}

export async function findRecharges(db: Db, accountId: string | null, limit: number) {
  let q = db.selectFrom('recharges').selectAll();
  if (accountId !== null) q = q.where('account_id', '=', accountId);
  const rows = await q.orderBy('created_at', 'desc').limit(limit).execute();
  return rows.map(toRecharge);
}
