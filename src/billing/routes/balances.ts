// /v1/accounts/{id}/balance and /credits: the prepaid ledger, read by the account, credited
// by operators.
import { defineRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import { accountParams, balanceView, creditBody, creditResult } from '../schemas.ts';
import { actorOf, admin, ownAccount, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';
import { balanceJson } from './views.ts';

export function balanceRoutes(router: Router, deps: BillingRouteDeps): void {
  const { service } = deps;
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
}
