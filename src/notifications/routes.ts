// HTTP: /v1/webhooks/endpoints — an account manages its own endpoints; operators manage any,
// and the deployment's own (account_id null).
import type { AuthState } from '../platform/auth.ts';
import type { Access, IdRule } from '../platform/authz.ts';
import type { AppContext, Router } from '../platform/http.ts';
import { defineRoute } from '../platform/http.ts';
import { z } from 'zod';
import {
  createEndpointBody,
  decodeDeliveryCursor,
  deliveryList,
  deliveryParams,
  deliveryView,
  encodeDeliveryCursor,
  endpointList,
  endpointParams,
  endpointView,
  endpointWithSecret,
  listDeliveriesQuery,
  listEndpointsQuery,
  toDeliveryView,
  toEndpointView,
  updateEndpointBody,
} from './schemas.ts';
import type { WebhookCaller, WebhookService } from './service.ts';
import type { AlertEmails } from './alert-emails.ts';
import type { Backlog } from './queries.ts';
import { EVENT_TYPES } from '../platform/events.ts';

const alertEmailParams = z.object({
  id: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected an account id (acct_…)'),
});
const alertEmailBody = z.strictObject({
  muted_event_types: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length),
});
const alertEmailView = z.object({
  account_id: z.string(),
  muted_event_types: z.array(z.string()),
  event_types: z.array(z.string()),
});

const webhookHealthView = z.object({
  unfanned_events: z.number().int(),
  pending_deliveries: z.number().int(),
  oldest_pending_at: z.string().nullable(),
  failing_endpoints: z.number().int(),
  disabled_endpoints: z.number().int(),
});

/** GET /v1/webhooks/health: the deployment's webhook backlog (operators; the console's Health). */
export function webhookHealthRoutes(router: Router, read: () => Promise<Backlog>): void {
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/webhooks/health',
      query: z.strictObject({}),
      response: webhookHealthView,
      access: { kinds: ['operator'], scope: 'admin' },
    },
    async function showWebhookHealth({ ctx }) {
      const b = await read();
      ctx.set('Cache-Control', 'no-store');
      return {
        unfanned_events: b.unfannedEvents,
        pending_deliveries: b.pendingDeliveries,
        oldest_pending_at: b.oldestPendingAt?.toISOString() ?? null,
        failing_endpoints: b.failingEndpoints,
        disabled_endpoints: b.disabledEndpoints,
      };
    },
  );
}

/** GET/PUT /v1/accounts/{id}/alert-emails: which alert e-mails the account gets. */
export function alertEmailRoutes(router: Router, alertEmails: AlertEmails): void {
  const ownAccount: IdRule = { rule: 'own_account', names: 'account' };
  // As webhook endpoints: the account's own credentials and operators, never an app.
  const access: Access = { kinds: ['operator', 'account'], ids: { 'params.id': ownAccount } };
  const view = (accountId: string, muted: readonly string[]) => ({
    account_id: accountId,
    muted_event_types: [...muted],
    event_types: [...EVENT_TYPES],
  });
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id/alert-emails',
      params: alertEmailParams,
      response: alertEmailView,
      access,
    },
    async function showAlertEmails({ params }) {
      return view(params.id, await alertEmails.muted(params.id));
    },
  );
  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/accounts/:id/alert-emails',
      params: alertEmailParams,
      body: alertEmailBody,
      response: alertEmailView,
      access,
    },
    async function setAlertEmails({ params, body, ctx }) {
      const principal = (ctx.state as AuthState).principal;
      const muted = await alertEmails.setMuted(
        { actor: principal.keyId ?? principal.accountId, requestId: ctx.state.requestId },
        params.id,
        body.muted_event_types,
      );
      return view(params.id, muted);
    },
  );
}

function caller(ctx: AppContext): WebhookCaller {
  const principal = (ctx.state as AuthState).principal;
  return {
    actor: principal.keyId ?? principal.accountId,
    accountId: principal.accountId,
    operator: principal.scopes.includes('admin'),
    requestId: ctx.state.requestId,
  };
}

export function webhookRoutes(router: Router, service: WebhookService): void {
  const ownAccount: IdRule = { rule: 'own_account', names: 'account' };
  const ownEndpoint: IdRule = {
    rule: 'own_account',
    names: 'webhook endpoint',
    find: (id) => service.owner(id),
  };
  // As API keys: endpoints receive the account's events and outlive the credential that made
  // them, so only the account's own credentials (and operators) manage them.
  const manage = (ids: Access['ids']): Access => ({
    kinds: ['operator', 'account'],
    ids,
    note: "endpoints without an account (deployment endpoints) are operators' only",
  });
  const one = manage({ 'params.id': ownEndpoint });

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/webhooks/endpoints',
      body: createEndpointBody,
      response: endpointWithSecret,
      status: 201,
      access: manage({ 'body.account_id': ownAccount }),
    },
    async function createEndpoint({ body, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      const { endpoint, secret } = await service.create(caller(ctx), {
        accountId: body.account_id,
        allAccounts: body.all_accounts,
        url: body.url,
        description: body.description,
        eventTypes: body.event_types,
      });
      return { ...toEndpointView(endpoint), secret };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/webhooks/endpoints',
      query: listEndpointsQuery,
      response: endpointList,
      access: manage({ 'query.account_id': ownAccount }),
    },
    async function listWebhookEndpoints({ query, ctx }) {
      const rows = await service.list(caller(ctx), query.account_id);
      return { endpoints: rows.map(toEndpointView) };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/webhooks/endpoints/:id',
      params: endpointParams,
      response: endpointView,
      access: one,
    },
    async function showEndpoint({ params, ctx }) {
      return toEndpointView(await service.show(caller(ctx), params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/webhooks/endpoints/:id',
      params: endpointParams,
      body: updateEndpointBody,
      response: endpointView,
      access: one,
    },
    async function updateWebhookEndpoint({ params, body, ctx }) {
      return toEndpointView(
        await service.update(caller(ctx), params.id, {
          url: body.url,
          description: body.description,
          eventTypes: body.event_types,
          enabled: body.enabled,
        }),
      );
    },
  );

  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/webhooks/endpoints/:id',
      params: endpointParams,
      response: z.undefined(),
      status: 204,
      access: one,
    },
    async function deleteWebhookEndpoint({ params, ctx }) {
      await service.remove(caller(ctx), params.id);
      return undefined;
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/webhooks/endpoints/:id/rotate-secret',
      params: endpointParams,
      response: endpointWithSecret,
      access: one,
    },
    async function rotateWebhookSecret({ params, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      const { endpoint, secret } = await service.rotateSecret(caller(ctx), params.id);
      return { ...toEndpointView(endpoint), secret };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/webhooks/endpoints/:id/enable',
      params: endpointParams,
      response: endpointView,
      access: one,
    },
    async function enableWebhookEndpoint({ params, ctx }) {
      return toEndpointView(await service.enable(caller(ctx), params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/webhooks/endpoints/:id/test',
      params: endpointParams,
      response: deliveryView,
      status: 202,
      access: one,
    },
    async function sendTestEvent({ params, ctx }) {
      return toDeliveryView(await service.sendTest(caller(ctx), params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/webhooks/endpoints/:id/deliveries',
      params: endpointParams,
      query: listDeliveriesQuery,
      response: deliveryList,
      access: one,
    },
    async function listWebhookDeliveries({ params, query, ctx }) {
      const before =
        query.cursor === undefined ? null : decodeDeliveryCursor(params.id, query.cursor);
      const rows = await service.deliveries(caller(ctx), params.id, query.limit + 1, before);
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return {
        deliveries: page.map(toDeliveryView),
        next_cursor:
          rows.length > query.limit && last !== undefined
            ? encodeDeliveryCursor(params.id, last.seq)
            : null,
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/webhooks/endpoints/:id/deliveries/:delivery_id/resend',
      params: deliveryParams,
      response: deliveryView,
      status: 202,
      access: one,
    },
    async function resendDelivery({ params, ctx }) {
      return toDeliveryView(await service.resend(caller(ctx), params.id, params.delivery_id));
    },
  );
}
