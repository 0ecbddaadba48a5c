// HTTP: /v1/plans, /v1/accounts/{id}/subscription|balance|credits|spend-caps|prepaid|
// billing-mode|auto-recharge|checkout, /v1/billing/recharges, /v1/spend/check,
// /v1/statements (+ export), GET /v1/billing/stripe-sync, and POST /webhooks/stripe — one
// registrar per resource in ./routes/, each over the same dependencies.
import type { Router } from '../platform/http.ts';
import { balanceRoutes } from './routes/balances.ts';
import { planRoutes } from './routes/plans.ts';
import { prepaidRoutes } from './routes/prepaid.ts';
import { spendRoutes } from './routes/spend.ts';
import { statementRoutes } from './routes/statements.ts';
import { stripeRoutes } from './routes/stripe.ts';
import { subscriptionRoutes } from './routes/subscriptions.ts';
import type { BillingRouteDeps } from './routes/access.ts';

export type { BillingRouteDeps };

export function billingRoutes(router: Router, deps: BillingRouteDeps): void {
  planRoutes(router, deps);
  subscriptionRoutes(router, deps);
  balanceRoutes(router, deps);
  prepaidRoutes(router, deps);
  spendRoutes(router, deps);
  statementRoutes(router, deps);
  stripeRoutes(router, deps);
}
