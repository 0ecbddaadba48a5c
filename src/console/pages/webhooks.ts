// Webhook endpoints: list (with health), register one (the signing secret shown once), send a
// test event, disable or enable, delete; each endpoint's delivery log with resend. Operators see
// every endpoint, the deployment's first, with the failing and disabled ones counted at the top.
// All through /v1/webhooks.
import { apiMessage, field, ok } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { csrfField, doneMessage, nextPageLink, notice, table, when } from '../views.ts';
import type { Viewer } from '../views.ts';

interface EndpointView {
  id: string;
  account_id: string | null;
  all_accounts: boolean;
  url: string;
  description: string;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: number;
  failing_since: string | null;
  created_at: string;
}

interface DeliveryView {
  id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  response_status: number | null;
  latency_ms: number | null;
  error: string | null;
  created_at: string;
}

const DONE: Record<string, string> = {
  tested: 'A test event is on its way: it appears in the delivery log below.',
  resent: 'The event is queued to be sent again.',
  enabled: 'The endpoint is enabled: waiting deliveries are sent.',
  disabled: 'The endpoint is disabled: new events are not sent to it.',
  deleted: 'The endpoint is deleted.',
};

const path = (id: string) => `/v1/webhooks/endpoints/${encodeURIComponent(id)}`;

export function webhookPages(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console/webhooks', async (pc) =>
    renderList(pc, { success: doneMessage(pc.ctx.query, DONE) }),
  );

  framework.action('/console/webhooks', async (ac) => {
    const url = field(ac.form, 'url').trim();
    const description = field(ac.form, 'description').trim();
    const response = await ac.api('POST', '/v1/webhooks/endpoints', {
      url,
      ...(description === '' ? {} : { description }),
    });
    if (response.status !== 201) {
      return renderList(ac, { error: apiMessage(response), status: 400, url, description });
    }
    const created = response.body as EndpointView & { secret: string };
    return renderList(ac, { secret: { url: created.url, secret: created.secret } });
  });

  framework.page('/console/webhooks/:id', async (pc) =>
    renderOne(pc, { success: doneMessage(pc.ctx.query, DONE) }),
  );

  const act = (
    suffix: string,
    done: string,
    call: (ac: ActionContext, id: string) => Promise<number>,
  ) =>
    framework.action(`/console/webhooks/:id${suffix}`, async (ac) => {
      const id = ac.ctx.params.id as string;
      const status = await call(ac, id);
      if (status >= 300)
        return renderOne(ac, { error: `The request failed (HTTP ${status}).`, status: 400 });
      return {
        redirect:
          done === 'deleted'
            ? '/console/webhooks?done=deleted'
            : `/console/webhooks/${encodeURIComponent(id)}?done=${done}`,
      };
    });
  act('/test', 'tested', async (ac, id) => (await ac.api('POST', `${path(id)}/test`)).status);
  act('/enable', 'enabled', async (ac, id) => (await ac.api('POST', `${path(id)}/enable`)).status);
  act(
    '/disable',
    'disabled',
    async (ac, id) => (await ac.api('PATCH', path(id), { enabled: false })).status,
  );
  act('/delete', 'deleted', async (ac, id) => (await ac.api('DELETE', path(id))).status);
  framework.action('/console/webhooks/:id/deliveries/:delivery/resend', async (ac) => {
    const id = ac.ctx.params.id as string;
    const response = await ac.api(
      'POST',
      `${path(id)}/deliveries/${encodeURIComponent(ac.ctx.params.delivery as string)}/resend`,
    );
    if (response.status !== 202) return renderOne(ac, { error: apiMessage(response), status: 400 });
    return { redirect: `/console/webhooks/${encodeURIComponent(id)}?done=resent` };
  });
}

function health(e: EndpointView): Html {
  if (!e.enabled) return html`<span class="badge bad">disabled</span>`;
  if (e.consecutive_failures > 0) {
    return html`<span class="badge warn">failing (${e.consecutive_failures} in a row)</span>`;
  }
  return html`<span class="badge good">healthy</span>`;
}

async function renderList(
  pc: PageContext | ActionContext,
  options: {
    error?: string;
    success?: string | null;
    status?: number;
    url?: string;
    description?: string;
    secret?: { url: string; secret: string };
  },
): Promise<PageResult> {
  const endpoints = (
    ok(await pc.api('GET', '/v1/webhooks/endpoints')).body as {
      endpoints: EndpointView[];
    }
  ).endpoints;
  const failing = endpoints.filter((e) => e.enabled && e.consecutive_failures > 0).length;
  const disabled = endpoints.filter((e) => !e.enabled).length;
  const body = html`${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    ${options.secret === undefined ? '' : revealed(options.secret)}
    ${
      pc.viewer.isAdmin
        ? html`<section class="card" aria-labelledby="webhook-health">
            <h2 id="webhook-health">Webhook health</h2>
            <p>
              ${endpoints.length} endpoints across the deployment; ${failing} failing, ${disabled}
              disabled. Backlog and delivery rates are in the metrics
              (<code>tollhouse_webhook_*</code>).
            </p>
          </section>`
        : ''
    }
    <section class="card" aria-labelledby="webhook-endpoints">
      <h2 id="webhook-endpoints">Endpoints</h2>
      ${table(
        'Webhook endpoints',
        pc.viewer.isAdmin
          ? ['URL', 'Account', 'Events', 'Health', 'Created']
          : ['URL', 'Events', 'Health', 'Created'],
        endpoints.map((e) => {
          const link = html`<a href="/console/webhooks/${e.id}">${e.url}</a
            >${e.description === '' ? '' : html`<div class="muted">${e.description}</div>`}`;
          const events = e.event_types.length === 0 ? 'all' : e.event_types.join(', ');
          const account =
            e.account_id ?? (e.all_accounts ? 'deployment (all accounts)' : 'deployment');
          return pc.viewer.isAdmin
            ? [link, account, events, health(e), when(e.created_at)]
            : [link, events, health(e), when(e.created_at)];
        }),
        'No endpoints yet. Add one below.',
      )}
    </section>
    ${createForm(pc.viewer, options.url ?? '', options.description ?? '')}`;
  return { title: 'Webhooks', active: 'webhooks', body, status: options.status };
}

function revealed(input: { url: string; secret: string }): Html {
  return html`<section class="card" aria-labelledby="secret-head">
    <h2 id="secret-head">Endpoint ${input.url} added</h2>
    <p role="status">
      Copy the signing secret now: it is shown only once. Verify each delivery with it (Standard
      Webhooks; see the documentation).
    </p>
    <div class="secret">
      <code id="new-secret">${input.secret}</code>
      <button type="button" class="secondary small" data-copy="new-secret" hidden>Copy</button>
      <span id="new-secret-status" role="status"></span>
    </div>
  </section>`;
}

function createForm(viewer: Viewer, url: string, description: string): Html {
  return html`<section class="card" aria-labelledby="webhook-new">
    <h2 id="webhook-new">Add an endpoint</h2>
    <form method="post" action="/console/webhooks">
      ${csrfField(viewer)}
      <label for="webhook-url">URL (https)</label>
      <input id="webhook-url" name="url" type="url" required maxlength="2048" value="${url}" />
      <label for="webhook-description">Description (optional)</label>
      <input id="webhook-description" name="description" maxlength="200" value="${description}" />
      <button type="submit">Add endpoint</button>
    </form>
  </section>`;
}

async function renderOne(
  pc: PageContext | ActionContext,
  options: { error?: string; success?: string | null; status?: number },
): Promise<PageResult> {
  const id = pc.ctx.params.id as string;
  const endpoint = ok(await pc.api('GET', path(id))).body as EndpointView;
  const params = new URLSearchParams({ limit: '50' });
  if (typeof pc.ctx.query.cursor === 'string') params.set('cursor', pc.ctx.query.cursor);
  const log = ok(await pc.api('GET', `${path(id)}/deliveries?${params.toString()}`)).body as {
    deliveries: DeliveryView[];
    next_cursor: string | null;
  };
  const form = (suffix: string, label: string, style = 'secondary') =>
    html`<form method="post" action="/console/webhooks/${endpoint.id}${suffix}">
      ${csrfField(pc.viewer)}
      <button type="submit" class="${style} small">${label}</button>
    </form>`;
  const body = html`${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    <section class="card" aria-labelledby="endpoint-head">
      <h2 id="endpoint-head">${endpoint.url}</h2>
      <p>
        ${health(endpoint)}
        ${endpoint.disabled_reason === null ? '' : html` <span>${endpoint.disabled_reason}</span>`}
      </p>
      <p>Events: ${endpoint.event_types.length === 0 ? 'all' : endpoint.event_types.join(', ')}</p>
      <div class="actions">
        ${form('/test', 'Send test event')}
        ${endpoint.enabled ? form('/disable', 'Disable') : form('/enable', 'Enable')}
        <form
          method="post"
          action="/console/webhooks/${endpoint.id}/delete"
          data-confirm="Delete the endpoint ${endpoint.url} and its delivery log?"
        >
          ${csrfField(pc.viewer)}
          <button type="submit" class="danger small">Delete</button>
        </form>
      </div>
    </section>
    <section class="card" aria-labelledby="deliveries-head">
      <h2 id="deliveries-head">Delivery log</h2>
      ${table(
        'Deliveries, newest first',
        ['Event', 'Status', 'Attempts', 'Response', 'Latency', 'Last attempt', 'Next attempt', ''],
        log.deliveries.map((d) => [
          html`<code>${d.event_type}</code>
            <div class="muted">${d.event_id}</div>`,
          html`<span
            class="badge ${d.status === 'succeeded' ? 'good' : d.status === 'failed' ? 'bad' : 'warn'}"
            >${d.status}</span
          >`,
          d.attempts,
          d.response_status === null ? (d.error ?? '') : String(d.response_status),
          d.latency_ms === null ? '' : `${d.latency_ms} ms`,
          when(d.last_attempt_at),
          d.next_attempt_at === null ? '' : when(d.next_attempt_at),
          html`<form
            method="post"
            action="/console/webhooks/${endpoint.id}/deliveries/${d.id}/resend"
          >
            ${csrfField(pc.viewer)}
            <button type="submit" class="secondary small">
              Resend<span class="sr"> ${d.event_id}</span>
            </button>
          </form>`,
        ]),
        'Nothing delivered yet. Send a test event.',
      )}
      ${nextPageLink(`/console/webhooks/${endpoint.id}`, log.next_cursor, 'deliveries (older)')}
    </section>`;
  return { title: 'Webhooks', active: 'webhooks', body, status: options.status };
}
