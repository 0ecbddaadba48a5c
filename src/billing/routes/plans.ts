// /v1/plans: list and show (readers), create (operators). Plans' prices are immutable once
// created; their front-door limits may be replaced (operators).
import { defineRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import { createPlanBody, planLimitsBody, planList, planParams, planView } from '../schemas.ts';
import { actorOf, admin, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';
import { planJson } from './views.ts';

export function planRoutes(router: Router, deps: BillingRouteDeps): void {
  const { service } = deps;
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
        limits: body.limits,
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
      method: 'put',
      path: '/v1/plans/:id/limits',
      access: admin,
      params: planParams,
      body: planLimitsBody,
      response: planView,
    },
    async function setPlanLimits({ params, body, ctx }) {
      return planJson(await service.setPlanLimits(actorOf(ctx), params.id, body));
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
}
