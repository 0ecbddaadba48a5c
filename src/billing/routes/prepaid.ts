// Prepaid credit: GET /v1/accounts/{id}/prepaid (balance, history, auto-recharge), PUT
// /v1/accounts/{id}/billing-mode (operators), PUT /v1/accounts/{id}/auto-recharge and POST
// /v1/accounts/{id}/checkout (the account itself), GET /v1/billing/recharges (operators).
import { defineRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import type { PrepaidSettings, Recharge } from '../prepaid.ts';
import {
  accountParams,
  autoRechargeBody,
  billingModeBody,
  checkoutBody,
  checkoutView,
  decodeLedgerCursor,
  encodeLedgerCursor,
  ledgerPage,
  ledgerQuery,
  prepaidSettingsView,
  prepaidView,
  rechargeList,
  rechargesQuery,
} from '../schemas.ts';
import { actorOf, admin, owner, ownAccount, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';

export const settingsJson = (s: PrepaidSettings) => ({
  account_id: s.accountId,
  mode: s.mode,
  auto_recharge: {
    enabled: s.autoRecharge,
    threshold_usd_micros: s.thresholdUsdMicros.toString(),
    amount_usd_micros: s.amountUsdMicros.toString(),
    monthly_max_usd_micros: s.monthlyMaxUsdMicros.toString(),
    payment_method_saved: s.paymentMethodId !== null,
  },
});

export const rechargeJson = (r: Recharge) => ({
  account_id: r.accountId,
  window: r.windowKey,
  month: r.month,
  amount_usd_micros: r.amountUsdMicros.toString(),
  state: r.state,
  attempts: r.attempts,
  last_error: r.lastError,
  next_attempt_at: r.state === 'pending' ? r.nextAttemptAt.toISOString() : null,
  stripe_payment_intent_id: r.paymentIntentId,
  created_at: r.createdAt.toISOString(),
});

export function prepaidRoutes(router: Router, deps: BillingRouteDeps): void {
  const { prepaid } = deps;
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/prepaid',
      access: reader({ 'params.id': ownAccount }),
      params: accountParams,
      response: prepaidView,
    },
    async function showPrepaid({ params, ctx }) {
      const o = await prepaid.overview(params.id);
      ctx.set('Cache-Control', 'no-store');
      return {
        ...settingsJson(o.settings),
        balance_usd_micros: o.balanceUsdMicros.toString(),
        month_usage_wei: o.monthUsageWei.toString(),
        month_usage_usd_micros: o.monthUsageUsdMicros?.toString() ?? null,
        spendable_usd_micros: o.spendableUsdMicros?.toString() ?? null,
        top_up_amounts_usd_micros: o.topUpAmountsUsdMicros.map(String),
        entries: o.entries.map((e) => ({
          id: e.id.toString(),
          kind: e.kind,
          amount_usd_micros: e.amountUsdMicros.toString(),
          reference: e.reference,
          memo: e.memo,
          created_at: e.createdAt.toISOString(),
        })),
        recharges: o.recharges.map(rechargeJson),
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/accounts/:id/billing-mode',
      access: admin,
      params: accountParams,
      body: billingModeBody,
      response: prepaidSettingsView,
    },
    async function setBillingMode({ params, body, ctx }) {
      return settingsJson(await prepaid.setMode(actorOf(ctx), params.id, body.mode));
    },
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/accounts/:id/auto-recharge',
      access: owner({ 'params.id': ownAccount }),
      params: accountParams,
      body: autoRechargeBody,
      response: prepaidSettingsView,
    },
    async function setAutoRecharge({ params, body, ctx }) {
      return settingsJson(
        await prepaid.setAutoRecharge(actorOf(ctx), params.id, {
          enabled: body.enabled,
          threshold: BigInt(body.threshold_usd_micros),
          amount: BigInt(body.amount_usd_micros),
          monthlyMax: BigInt(body.monthly_max_usd_micros),
        }),
      );
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/accounts/:id/checkout',
      access: owner({ 'params.id': ownAccount }),
      params: accountParams,
      body: checkoutBody,
      response: checkoutView,
    },
    async function createCheckout({ params, body, setStatus }) {
      const session = await prepaid.createCheckout(params.id, BigInt(body.amount_usd_micros));
      setStatus(201);
      return session;
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/accounts/:id/setup-checkout',
      access: owner({ 'params.id': ownAccount }),
      params: accountParams,
      response: checkoutView,
    },
    async function createSetupCheckout({ params, setStatus }) {
      const session = await prepaid.createSetupCheckout(params.id);
      setStatus(201);
      return session;
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/ledger',
      access: reader({ 'params.id': ownAccount }),
      params: accountParams,
      query: ledgerQuery,
      response: ledgerPage,
    },
    async function listLedger({ params, query, ctx }) {
      const beforeId =
        query.cursor === undefined ? null : decodeLedgerCursor(params.id, query.cursor);
      const page = await prepaid.ledger(params.id, { limit: query.limit, beforeId });
      ctx.set('Cache-Control', 'no-store');
      return {
        account_id: params.id,
        entries: page.entries.map((e) => ({
          id: e.id.toString(),
          kind: e.kind,
          amount_usd_micros: e.amountUsdMicros.toString(),
          reference: e.reference,
          memo: e.memo,
          created_at: e.createdAt.toISOString(),
        })),
        next_cursor:
          page.nextBeforeId === null ? null : encodeLedgerCursor(params.id, page.nextBeforeId),
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/billing/recharges',
      access: admin,
      query: rechargesQuery,
      response: rechargeList,
    },
    async function listRecharges({ query }) {
      const found = await prepaid.recharges(query.account_id ?? null);
      return { recharges: found.map(rechargeJson) };
    },
  );
}
