// /v1/accounts/{id}/spend-caps (monthly caps per account, app, end user) and /v1/spend/check
// (the spend gate's answer for the caller, for gateways that ask before sending work).
import { defineRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import { accountParams, spendCapBody, spendCapsView, spendCheckView } from '../schemas.ts';
import { actorOf, admin, ownAccount, principalOf, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';
import { capsJson } from './views.ts';

export function spendRoutes(router: Router, deps: BillingRouteDeps): void {
  const { service } = deps;
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
}
