// /v1/accounts/{id}/subscription: the plan in force and its history; operators change it.
import { defineRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import { accountParams, subscribeBody, subscriptionView } from '../schemas.ts';
import { actorOf, admin, ownAccount, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';
import { subscriptionJson } from './views.ts';

export function subscriptionRoutes(router: Router, deps: BillingRouteDeps): void {
  const { service } = deps;
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
}
