// The JSON views of billing's resources: what every route and the CLI print (snake_case).
import type { LedgerEntry, Plan, SpendCap, Statement, StatementLine } from '../queries.ts';
import type { BillingService } from '../service.ts';

export function planJson(p: Plan) {
  return {
    id: p.id,
    name: p.name,
    monthly_fee_usd_micros: p.monthlyFeeUsdMicros.toString(),
    included_usd_micros: p.includedUsdMicros.toString(),
    prepaid: p.prepaid,
    default: p.isDefault,
    created_at: p.createdAt.toISOString(),
    limits: p.limits,
    prices: p.prices.map((x) => ({
      pipeline: x.pipeline,
      model_id: x.modelId,
      unit: x.unit,
      currency: x.currency,
      amount: x.amount.toString(),
      per_units: x.perUnits.toString(),
    })),
  };
}

export function statementJson(s: Statement) {
  return {
    id: s.id,
    account_id: s.accountId,
    month: s.month,
    plan_id: s.planId,
    closed_at: s.closedAt.toISOString(),
    eth_usd: {
      answer: s.rate.answer.toString(),
      decimals: s.rate.decimals,
      source: s.rate.source,
      updated_at: s.rate.updatedAt.toISOString(),
    },
    fee_wei: s.feeWei.toString(),
    usage_usd_micros: s.usageUsdMicros.toString(),
    monthly_fee_usd_micros: s.monthlyFeeUsdMicros.toString(),
    included_usd_micros: s.includedUsdMicros.toString(),
    included_applied_usd_micros: s.includedAppliedUsdMicros.toString(),
    credits_applied_usd_micros: s.creditsAppliedUsdMicros.toString(),
    total_usd_micros: s.totalUsdMicros.toString(),
    billing_mode: s.billingMode,
    balance:
      s.balance === null
        ? null
        : {
            opening_usd_micros: s.balance.openingUsdMicros.toString(),
            credits_usd_micros: s.balance.creditsUsdMicros.toString(),
            debits_usd_micros: s.balance.debitsUsdMicros.toString(),
            settled_usd_micros: s.creditsAppliedUsdMicros.toString(),
            closing_usd_micros: s.balance.closingUsdMicros.toString(),
          },
  };
}

export function ledgerEntryJson(e: LedgerEntry) {
  return {
    id: e.id.toString(),
    kind: e.kind,
    amount_usd_micros: e.amountUsdMicros.toString(),
    reference: e.reference,
    memo: e.memo,
    created_at: e.createdAt.toISOString(),
  };
}

export function lineJson(l: StatementLine) {
  return {
    line: l.line,
    origin_month: l.originMonth,
    late: l.late,
    pipeline: l.pipeline,
    model_id: l.modelId,
    unit: l.unit,
    events: l.events.toString(),
    quantity: l.quantity.toString(),
    fee_wei: l.feeWei.toString(),
    price_currency: l.priceCurrency,
    price_amount: l.priceAmount.toString(),
    price_per_units: l.pricePerUnits.toString(),
    charge_wei: l.chargeWei === null ? null : l.chargeWei.toString(),
    charge_usd_micros: l.chargeUsdMicros.toString(),
  };
}

export function capsJson(accountId: string, caps: SpendCap[]) {
  return {
    account_id: accountId,
    caps: caps.map((c) => ({
      app_id: c.appId,
      end_user_id: c.endUserId,
      monthly_cap_wei: c.monthlyCapWei.toString(),
    })),
  };
}

export const subscriptionJson = (s: Awaited<ReturnType<BillingService['subscription']>>) => ({
  account_id: s.accountId,
  current_month: s.currentMonth,
  current_plan: s.currentPlan === null ? null : planJson(s.currentPlan),
  history: s.history.map((h) => ({
    plan_id: h.planId,
    effective_month: h.effectiveMonth,
    created_at: h.createdAt.toISOString(),
  })),
});

export const balanceJson = (b: Awaited<ReturnType<BillingService['balance']>>) => ({
  account_id: b.accountId,
  balance_usd_micros: b.balanceUsdMicros.toString(),
  entries: b.entries.map((e) => ({
    id: e.id.toString(),
    kind: e.kind,
    amount_usd_micros: e.amountUsdMicros.toString(),
    reference: e.reference,
    memo: e.memo,
    created_at: e.createdAt.toISOString(),
  })),
});
