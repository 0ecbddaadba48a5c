// Wire shapes of the billing API. Money travels as decimal strings: wei, micro-dollars.
import { z } from 'zod';
import { pageQuery } from '../platform/cursor.ts';
import { InvalidRequest } from '../platform/errors.ts';
import { planLimitsSchema } from '../platform/limits.ts';
import { isWeiString } from '../platform/money.ts';
import { MONTH_PATTERN } from './pricing.ts';

const integerString = z
  .string()
  .refine(isWeiString, { error: 'expected a non-negative integer in decimal' });
const positiveIntegerString = integerString.refine((v) => v !== '0', { error: 'expected > 0' });
const month = z.string().regex(MONTH_PATTERN, 'expected a month as YYYY-MM');
const name = z.string().min(1).max(200);
const dimension = z.string().min(1).max(200);

export const accountParams = z.object({
  id: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected an account id (acct_…)'),
});
export const planParams = z.object({ id: z.string().min(1).max(100) });
export const statementParams = z.object({
  id: z.string().regex(/^stmt_[0-9A-Za-z]{1,64}$/, 'expected a statement id (stmt_…)'),
});

export const priceBody = z.strictObject({
  pipeline: dimension.default('*'),
  model_id: dimension.default('*'),
  unit: dimension.default('*'),
  currency: z.enum(['wei', 'usd_micros']),
  amount: integerString,
  per_units: positiveIntegerString.default('1'),
});

export const createPlanBody = z.strictObject({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected lower-case letters, digits, - and _')
    .optional(),
  name,
  monthly_fee_usd_micros: integerString.default('0'),
  included_usd_micros: integerString.default('0'),
  prepaid: z.boolean().default(false),
  default: z.boolean().default(false),
  prices: z.array(priceBody).max(1000).default([]),
  limits: planLimitsSchema.optional(),
});

/** PUT /v1/plans/{id}/limits: per key, per account, per client IP (anonymous mode). */
export const planLimitsBody = planLimitsSchema;

const priceView = z.object({
  pipeline: z.string(),
  model_id: z.string(),
  unit: z.string(),
  currency: z.enum(['wei', 'usd_micros']),
  amount: z.string(),
  per_units: z.string(),
});

const limitCount = z.number().int().min(0).nullable();
const limitSettingsView = z.object({
  rate: limitCount,
  burst: limitCount,
  concurrency: limitCount,
});
const planLimitsView = z.object({
  key: limitSettingsView,
  account: limitSettingsView,
  anonymous: limitSettingsView,
});

export const planView = z.object({
  id: z.string(),
  name: z.string(),
  monthly_fee_usd_micros: z.string(),
  included_usd_micros: z.string(),
  prepaid: z.boolean(),
  default: z.boolean(),
  created_at: z.string(),
  prices: z.array(priceView),
  limits: planLimitsView,
});
export const planList = z.object({ plans: z.array(planView) });

export const subscribeBody = z.strictObject({
  plan_id: z.string().min(1).max(100),
  effective_month: month.optional(),
});

export const subscriptionView = z.object({
  account_id: z.string(),
  current_month: z.string(),
  current_plan: planView.nullable(),
  history: z.array(
    z.object({ plan_id: z.string(), effective_month: z.string(), created_at: z.string() }),
  ),
});

export const creditBody = z.strictObject({
  amount_usd_micros: z
    .string()
    .regex(/^-?(0|[1-9]\d{0,30})$/, 'expected an integer number of micro-dollars')
    .refine((v) => v !== '0' && v !== '-0', { error: 'expected a non-zero amount' }),
  kind: z.enum(['grant', 'top_up', 'adjustment']).default('grant'),
  reference: z.string().min(1).max(200),
  memo: z.string().max(500).optional(),
});

export const balanceView = z.object({
  account_id: z.string(),
  balance_usd_micros: z.string(),
  entries: z.array(
    z.object({
      id: z.string(),
      kind: z.string(),
      amount_usd_micros: z.string(),
      reference: z.string(),
      memo: z.string().nullable(),
      created_at: z.string(),
    }),
  ),
});
export const creditResult = balanceView.extend({ recorded: z.boolean() });

export const spendCapBody = z.strictObject({
  app_id: dimension.nullish(),
  end_user_id: dimension.nullish(),
  monthly_cap_wei: integerString.nullable(),
});

export const spendCapsView = z.object({
  account_id: z.string(),
  caps: z.array(
    z.object({
      app_id: z.string().nullable(),
      end_user_id: z.string().nullable(),
      monthly_cap_wei: z.string(),
    }),
  ),
});

export const spendCheckView = z.object({ may_spend: z.literal(true) });

export const statementsQuery = z.object({
  account_id: accountParams.shape.id.optional(),
  month: month.optional(),
  cursor: z.string().max(100).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const statementSummary = z.object({
  id: z.string(),
  account_id: z.string(),
  month: z.string(),
  plan_id: z.string().nullable(),
  closed_at: z.string(),
  eth_usd: z.object({
    answer: z.string(),
    decimals: z.number().int(),
    source: z.string(),
    updated_at: z.string(),
  }),
  fee_wei: z.string(),
  usage_usd_micros: z.string(),
  monthly_fee_usd_micros: z.string(),
  included_usd_micros: z.string(),
  included_applied_usd_micros: z.string(),
  credits_applied_usd_micros: z.string(),
  total_usd_micros: z.string(),
  billing_mode: z.enum(['postpaid', 'prepaid']),
  balance: z
    .object({
      opening_usd_micros: z.string(),
      credits_usd_micros: z.string(),
      debits_usd_micros: z.string(),
      settled_usd_micros: z.string(),
      closing_usd_micros: z.string(),
    })
    .nullable(),
});

export const statementList = z.object({
  statements: z.array(statementSummary),
  next_cursor: z.string().nullable(),
});

export const statementView = statementSummary.extend({
  lines: z.array(
    z.object({
      line: z.number().int(),
      origin_month: z.string(),
      late: z.boolean(),
      pipeline: z.string(),
      model_id: z.string(),
      unit: z.string(),
      events: z.string(),
      quantity: z.string(),
      fee_wei: z.string(),
      price_currency: z.string(),
      price_amount: z.string(),
      price_per_units: z.string(),
      charge_wei: z.string().nullable(),
      charge_usd_micros: z.string(),
    }),
  ),
  ledger_entries: balanceView.shape.entries,
});

export const exportQuery = z.object({ format: z.enum(['csv', 'json']).default('csv') });

// GET /v1/billing/stripe-sync. 24 months is two years of closes, more than a status page needs.
export const stripeSyncQuery = z.strictObject({
  months: z.coerce.number().int().min(1).max(24).default(3),
  month: month.optional(),
  status: z.enum(['pending', 'failed', 'synced', 'skipped']).optional(),
  cursor: statementParams.shape.id.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const count = z.number().int().min(0);

export const stripeSyncView = z.object({
  configured: z.boolean(),
  webhooks_configured: z.boolean(),
  finalize_invoices: z.boolean(),
  months: z.array(
    z.object({
      month: z.string(),
      closed_at: z.string(),
      statements: count,
      pending: count,
      failed: count,
      synced: count,
      skipped: count,
      states: z.object({
        pending: count,
        invoiced: count,
        finalized: count,
        paid: count,
        payment_failed: count,
        skipped: count,
      }),
    }),
  ),
  statements: z.array(
    z.object({
      statement_id: z.string(),
      account_id: z.string(),
      month: z.string(),
      total_usd_micros: z.string(),
      status: z.enum(['pending', 'failed', 'synced', 'skipped']),
      state: z.enum(['pending', 'invoiced', 'finalized', 'paid', 'payment_failed', 'skipped']),
      attempts: count,
      items_pushed: count,
      last_error: z.string().nullable(),
      next_attempt_at: z.string().nullable(),
      updated_at: z.string(),
      stripe_invoice_id: z.string().nullable(),
      stripe_customer_id: z.string().nullable(),
    }),
  ),
  next_cursor: z.string().nullable(),
});

// Prepaid credit. Amounts are micro-dollars; at most 10^15 (a billion dollars) so that a
// charge in cents is always a safe integer for Stripe.
const usdMicros = z
  .string()
  .regex(/^(0|[1-9]\d{0,14})$/, 'expected an integer number of micro-dollars up to 10^15');

export const billingModeBody = z.strictObject({ mode: z.enum(['postpaid', 'prepaid']) });

export const autoRechargeBody = z.strictObject({
  enabled: z.boolean(),
  threshold_usd_micros: usdMicros,
  amount_usd_micros: usdMicros,
  monthly_max_usd_micros: usdMicros,
});

export const checkoutBody = z.strictObject({ amount_usd_micros: usdMicros });
export const checkoutView = z.object({ id: z.string(), url: z.string().nullable() });

const rechargeView = z.object({
  account_id: z.string(),
  window: z.string(),
  month: z.string(),
  amount_usd_micros: z.string(),
  state: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  stripe_payment_intent_id: z.string().nullable(),
  created_at: z.string(),
});

export const prepaidSettingsView = z.object({
  account_id: z.string(),
  mode: z.enum(['postpaid', 'prepaid']),
  auto_recharge: z.object({
    enabled: z.boolean(),
    threshold_usd_micros: z.string(),
    amount_usd_micros: z.string(),
    monthly_max_usd_micros: z.string(),
    payment_method_saved: z.boolean(),
  }),
});

export const prepaidView = prepaidSettingsView.extend({
  balance_usd_micros: z.string(),
  month_usage_wei: z.string(),
  month_usage_usd_micros: z.string().nullable(),
  spendable_usd_micros: z.string().nullable(),
  top_up_amounts_usd_micros: z.array(z.string()),
  entries: balanceView.shape.entries,
  recharges: z.array(rechargeView),
});

export const ledgerQuery = z.strictObject(pageQuery);
export const ledgerPage = z.object({
  account_id: z.string(),
  entries: balanceView.shape.entries,
  next_cursor: z.string().nullable(),
});

/** A ledger cursor: the last entry's id, tied to the account (another account's is refused). */
export function encodeLedgerCursor(accountId: string, id: bigint): string {
  return Buffer.from(`ledger|${accountId}|${id}`, 'utf8').toString('base64url');
}

export function decodeLedgerCursor(accountId: string, cursor: string): bigint {
  const decoded = /^[A-Za-z0-9_-]+$/.test(cursor)
    ? Buffer.from(cursor, 'base64url').toString('utf8')
    : '';
  const match = /^ledger\|(acct_[0-9A-Za-z]{1,64})\|([1-9][0-9]{0,18})$/.exec(decoded);
  if (
    match === null ||
    match[1] !== accountId ||
    encodeLedgerCursor(accountId, BigInt(match[2]!)) !== cursor
  ) {
    throw new InvalidRequest('query.cursor: not a cursor returned by this API');
  }
  return BigInt(match[2]!);
}

export const rechargesQuery = z.strictObject({ account_id: accountParams.shape.id.optional() });
export const rechargeList = z.object({ recharges: z.array(rechargeView) });
