// GET /v1/billing/stripe-sync (operators: where each statement stands in Stripe) and
// POST /webhooks/stripe (Stripe: invoice events, verified by the Stripe-Signature header).
import type { Context } from 'koa';
import { InvalidRequest, PayloadTooLarge } from '../../platform/errors.ts';
import { defineRoute, guardedRoute } from '../../platform/http.ts';
import type { Router } from '../../platform/http.ts';
import { stripeSyncQuery, stripeSyncView } from '../schemas.ts';
import { admin } from './access.ts';
import type { BillingRouteDeps } from './access.ts';

// Stripe event payloads are a few KB; 1 MiB is far above any and bounds what is buffered.
const WEBHOOK_BODY_LIMIT_BYTES = 1024 * 1024;

export function stripeRoutes(router: Router, deps: BillingRouteDeps): void {
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
