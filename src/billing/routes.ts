// HTTP: /v1/plans, /v1/accounts/{id}/subscription|balance|credits|spend-caps, /v1/spend/check,
// /v1/statements (+ export), GET /v1/billing/stripe-sync, and POST /webhooks/stripe.
import type { Context } from 'koa';
import type { Authenticator, AuthState } from '../platform/auth.ts';
import { hasScope } from '../platform/auth.ts';
import type { Access, IdRule } from '../platform/authz.ts';
import { assertOwnership } from '../platform/authz.ts';
import { InvalidRequest, NotFound, PayloadTooLarge } from '../platform/errors.ts';
import { defineRoute, guardedRoute } from '../platform/http.ts';
import type { AppContext, Router } from '../platform/http.ts';
import type { SpendGate } from '../platform/spend.ts';
import { exportStatement } from './export.ts';
import type { Plan, SpendCap, Statement, StatementLine } from './queries.ts';
import {
  accountParams,
  balanceView,
  createPlanBody,
  creditBody,
  creditResult,
  exportQuery,
  planList,
  planParams,
  planView,
  spendCapBody,
  spendCapsView,
  spendCheckView,
  statementList,
  statementParams,
  statementView,
  statementsQuery,
  stripeSyncQuery,
  stripeSyncView,
  subscribeBody,
  subscriptionView,
} from './schemas.ts';
import type { BillingService } from './service.ts';
import type { StripeSync } from './stripe.ts';
import type { Database } from '../database.ts';
import type { Kysely } from 'kysely';

// Stripe event payloads are a few KB; 1 MiB is far above any and bounds what is buffered.
const WEBHOOK_BODY_LIMIT_BYTES = 1024 * 1024;

export interface BillingRouteDeps {
  service: BillingService;
  spend: SpendGate;
  stripe: StripeSync;
  authenticator: Authenticator;
  db: Kysely<Database>;
}

const principalOf = (ctx: AppContext | Context) => (ctx.state as AuthState).principal;
const actorOf = (ctx: AppContext) => ({
  actor: principalOf(ctx).keyId ?? principalOf(ctx).accountId,
  requestId: ctx.state.requestId,
});

export function planJson(p: Plan) {
  return {
    id: p.id,
    name: p.name,
    monthly_fee_usd_micros: p.monthlyFeeUsdMicros.toString(),
    included_usd_micros: p.includedUsdMicros.toString(),
    prepaid: p.prepaid,
    default: p.isDefault,
    created_at: p.createdAt.toISOString(),
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

function capsJson(accountId: string, caps: SpendCap[]) {
  return {
    account_id: accountId,
    caps: caps.map((c) => ({
      app_id: c.appId,
      end_user_id: c.endUserId,
      monthly_cap_wei: c.monthlyCapWei.toString(),
    })),
  };
}

export function billingRoutes(router: Router, deps: BillingRouteDeps) {
  const { service } = deps;
  const ownAccount: IdRule = { rule: 'own_account', names: 'account' };
  const ownStatement: IdRule = {
    rule: 'own_account',
    names: 'statement',
    find: async (id) => service.statementOwner(id),
  };
  // What an account pays is read by the account's credentials and its apps' backends; an app's
  // end user and a browser key see none of it.
  const reader = (ids?: Access['ids']): Access => ({
    kinds: ['operator', 'account', 'app_client', 'derived'],
    scope: 'billing:read',
    ...(ids === undefined ? {} : { ids }),
  });
  const admin: Access = { kinds: ['operator'], scope: 'admin' };

  defineRoute(
    router,
    { method: 'get', path: '/v1/plans', access: reader(), response: planList },
    async function listPlans() {
      return { plans: (await service.plans()).map(planJson) };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/plans',
      access: admin,
      body: createPlanBody,
      response: planView,
      status: 201,
    },
    async function createPlan({ body, ctx }) {
      const plan = await service.createPlan(actorOf(ctx), {
        id: body.id,
        name: body.name,
        monthlyFeeUsdMicros: BigInt(body.monthly_fee_usd_micros),
        includedUsdMicros: BigInt(body.included_usd_micros),
        prepaid: body.prepaid,
        isDefault: body.default,
        prices: body.prices.map((p) => ({
          pipeline: p.pipeline,
          modelId: p.model_id,
          unit: p.unit,
          currency: p.currency,
          amount: BigInt(p.amount),
          perUnits: BigInt(p.per_units),
        })),
      });
      return planJson(plan);
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/plans/:id',
      access: reader(),
      params: planParams,
      response: planView,
    },
    async function showPlan({ params }) {
      return planJson(await service.plan(params.id));
    },
  );

  const subscriptionJson = (s: Awaited<ReturnType<BillingService['subscription']>>) => ({
    account_id: s.accountId,
    current_month: s.currentMonth,
    current_plan: s.currentPlan === null ? null : planJson(s.currentPlan),
    history: s.history.map((h) => ({
      plan_id: h.planId,
      effective_month: h.effectiveMonth,
      created_at: h.createdAt.toISOString(),
    })),
  });

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/subscription',
      access: reader({ 'params.id': ownAccount }),
      params: accountParams,
      response: subscriptionView,
    },
    async function showSubscription({ params }) {
      return subscriptionJson(await service.subscription(params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/accounts/:id/subscription',
      access: admin,
      params: accountParams,
      body: subscribeBody,
      response: subscriptionView,
    },
    async function changeSubscription({ params, body, ctx }) {
      return subscriptionJson(
        await service.subscribe(actorOf(ctx), params.id, body.plan_id, body.effective_month),
      );
    },
  );

  const balanceJson = (b: Awaited<ReturnType<BillingService['balance']>>) => ({
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

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/balance',
      access: reader({ 'params.id': ownAccount }),
      params: accountParams,
      response: balanceView,
    },
    async function showBalance({ params }) {
      return balanceJson(await service.balance(params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/accounts/:id/credits',
      access: admin,
      params: accountParams,
      body: creditBody,
      response: creditResult,
    },
    async function addCredit({ params, body, ctx, setStatus }) {
      const recorded = await service.addLedgerEntry(actorOf(ctx), {
        accountId: params.id,
        kind: body.kind,
        amountUsdMicros: BigInt(body.amount_usd_micros),
        reference: `api:${body.reference}`,
        memo: body.memo ?? null,
      });
      setStatus(recorded ? 201 : 200);
      return { ...balanceJson(await service.balance(params.id)), recorded };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/spend-caps',
      access: reader({ 'params.id': ownAccount }),
      params: accountParams,
      response: spendCapsView,
    },
    async function showSpendCaps({ params }) {
      return capsJson(params.id, await service.spendCaps(params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/accounts/:id/spend-caps',
      access: admin,
      params: accountParams,
      body: spendCapBody,
      response: spendCapsView,
    },
    async function setSpendCap({ params, body, ctx }) {
      const caps = await service.setSpendCap(actorOf(ctx), {
        accountId: params.id,
        appId: body.app_id ?? null,
        endUserId: body.end_user_id ?? null,
        monthlyCapWei: body.monthly_cap_wei === null ? null : BigInt(body.monthly_cap_wei),
      });
      return capsJson(params.id, caps);
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/spend/check',
      access: {
        kinds: ['operator', 'account', 'app_client', 'app_end_user', 'browser_key', 'derived'],
        scope: 'gateway',
      },
      response: spendCheckView,
    },
    async function spendCheck({ ctx }) {
      await deps.spend.assertMaySpend(principalOf(ctx));
      ctx.set('Cache-Control', 'no-store');
      return { may_spend: true as const };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements',
      access: reader({ 'query.account_id': ownAccount }),
      query: statementsQuery,
      response: statementList,
    },
    async function listStatements({ query, ctx }) {
      const principal = principalOf(ctx);
      const accountId = hasScope(principal, 'admin') ? query.account_id : principal.accountId;
      if (query.cursor !== undefined && !/^stmt_[0-9A-Za-z]{1,64}$/.test(query.cursor)) {
        throw new InvalidRequest('query.cursor: not a cursor returned by this API');
      }
      const page = await service.statements(
        {
          ...(accountId !== undefined ? { accountId } : {}),
          ...(query.month !== undefined ? { month: query.month } : {}),
          ...(query.cursor !== undefined ? { after: query.cursor } : {}),
        },
        query.limit,
      );
      return {
        statements: page.map(statementJson),
        next_cursor: page.length === query.limit ? page[page.length - 1]!.id : null,
      };
    },
  );

  async function visibleStatement(ctx: AppContext | Context, id: string) {
    const found = await service.statement(id);
    const principal = principalOf(ctx);
    if (found.statement.accountId !== principal.accountId && !hasScope(principal, 'admin')) {
      // Not 403: another account's statement ids are not confirmed to exist.
      throw new NotFound(`No statement ${id}`);
    }
    return found;
  }

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements/:id',
      access: reader({ 'params.id': ownStatement }),
      params: statementParams,
      response: statementView,
    },
    async function showStatement({ params, ctx }) {
      const { statement, lines } = await visibleStatement(ctx, params.id);
      return { ...statementJson(statement), lines: lines.map(lineJson) };
    },
  );

  // Streams a body, so it is not a defineRoute (which renders JSON); input is validated the
  // same way, through the same schemas.
  guardedRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements/:id/export',
      access: reader({ 'params.id': ownStatement }),
    },
    async function exportStatementRoute(ctx) {
      const params = statementParams.safeParse(ctx.params);
      const query = exportQuery.safeParse(ctx.query);
      if (!params.success)
        throw new InvalidRequest(`params.id: ${params.error.issues[0]?.message}`);
      if (!query.success) throw new InvalidRequest(`query.format: expected csv or json`);
      await assertOwnership(principalOf(ctx), reader({ 'params.id': ownStatement }), {
        params: params.data,
        query: query.data,
        body: undefined,
      });
      const { statement } = await visibleStatement(ctx, params.data.id);
      const format = query.data.format;
      ctx.set(
        'Content-Disposition',
        `attachment; filename="${statement.id}.${format === 'csv' ? 'csv' : 'jsonl'}"`,
      );
      ctx.type =
        format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson';
      ctx.body = exportStatement(deps.db, statement, format);
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/billing/stripe-sync',
      access: admin,
      query: stripeSyncQuery,
      response: stripeSyncView,
    },
    async function stripeSyncStatus({ query, ctx }) {
      const found = await deps.stripe.status({
        months: query.months,
        ...(query.month !== undefined ? { month: query.month } : {}),
        ...(query.status !== undefined ? { status: query.status } : {}),
        after: query.cursor ?? null,
        limit: query.limit,
      });
      if (found.statements === null) {
        throw new InvalidRequest('query.cursor: not a cursor returned by this API');
      }
      ctx.set('Cache-Control', 'no-store');
      const page = found.statements;
      return {
        configured: found.configured,
        webhooks_configured: found.webhooksConfigured,
        finalize_invoices: found.finalizeInvoices,
        months: found.months.map((m) => ({
          month: m.month,
          closed_at: m.closedAt.toISOString(),
          statements: m.statements,
          ...m.byStatus,
          states: m.byState,
        })),
        statements: page.map((r) => ({
          statement_id: r.statementId,
          account_id: r.accountId,
          month: r.month,
          total_usd_micros: r.totalUsdMicros.toString(),
          status: r.status,
          state: r.state,
          attempts: r.attempts,
          items_pushed: r.itemsPushed,
          last_error: r.lastError,
          // Only a pending row is retried; for the others the column is a leftover.
          next_attempt_at: r.state === 'pending' ? r.nextAttemptAt.toISOString() : null,
          updated_at: r.updatedAt.toISOString(),
          stripe_invoice_id: r.invoiceId,
          stripe_customer_id: r.customerId,
        })),
        next_cursor: page.length === query.limit ? page[page.length - 1]!.statementId : null,
      };
    },
  );

  guardedRoute(
    router,
    {
      method: 'post',
      path: '/webhooks/stripe',
      access: { kinds: 'anyone', note: 'Stripe: the Stripe-Signature header is verified' },
    },
    async function stripeWebhook(ctx) {
      const raw = await readRaw(ctx, WEBHOOK_BODY_LIMIT_BYTES);
      const result = await deps.stripe.handleWebhook(raw, ctx.get('stripe-signature') || undefined);
      ctx.status = 200;
      ctx.body = { received: true, ...result };
    },
  );
}

async function readRaw(ctx: Context, limit: number): Promise<Buffer> {
  const declared = Number(ctx.get('content-length') || '0');
  if (declared > limit) throw new PayloadTooLarge(`Request body is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLarge(`Request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
