// Apps (OIDC clients): list, create (redirect URIs, origins; the secret is shown once, with a
// copy button), rotate a confidential app's secret with a grace period, disable and enable.
// Through /v1/apps: a customer sees and manages its own account's apps, an operator every app.
import { apiMessage, field, lines, ok } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../html.ts';
import type { Html } from '../html.ts';
import {
  csrfField,
  doneMessage,
  graceSeconds,
  graceSelect,
  notice,
  secretReveal,
  table,
  when,
} from '../views.ts';
import type { Viewer } from '../views.ts';

interface AppView {
  id: string;
  client_id: string;
  owner_account_id: string;
  name: string;
  kind: 'public' | 'web' | 'machine';
  redirect_uris: string[];
  allowed_origins: string[];
  scopes: string[];
  status: 'active' | 'disabled';
  previous_secret_expires_at: string | null;
  created_at: string;
}

const KINDS = [
  ['public', 'Public: single-page, mobile or CLI app (no secret, PKCE)'],
  ['web', 'Web: server-side app with a client secret'],
  ['machine', 'Machine: backend with client credentials'],
] as const;

const DONE: Record<string, string> = {
  disabled: 'The app is disabled: its tokens and sign-ins are refused.',
  active: 'The app is enabled again.',
};

interface FormState {
  name: string;
  kind: string;
  redirects: string;
  origins: string;
}

const APP_ID = /^app_[0-9A-Za-z]{22}$/;

export function appPages(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console/apps', async (pc) => {
    const done = doneMessage(pc.ctx.query, DONE);
    return render(pc, { success: done });
  });

  framework.action('/console/apps', async (ac) => {
    const state: FormState = {
      name: field(ac.form, 'name'),
      kind: field(ac.form, 'kind'),
      redirects: field(ac.form, 'redirect_uris'),
      origins: field(ac.form, 'allowed_origins'),
    };
    const body: Record<string, unknown> = { name: state.name, kind: state.kind };
    const redirects = lines(ac.form, 'redirect_uris');
    const origins = lines(ac.form, 'allowed_origins');
    if (redirects.length > 0) body.redirect_uris = redirects;
    if (origins.length > 0) body.allowed_origins = origins;
    const response = await ac.api('POST', '/v1/apps', body);
    if (response.status !== 201)
      return render(ac, { error: apiMessage(response), status: 400, state });
    const app = response.body as AppView & { client_secret: string | null };
    return render(ac, { created: { app, verb: 'registered' } });
  });

  framework.action('/console/apps/:id/rotate-secret', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!APP_ID.test(id)) return render(ac, { error: 'No such app.', status: 400 });
    const grace = graceSeconds(field(ac.form, 'grace_seconds'));
    if (grace === null) {
      return render(ac, { error: 'Choose how long the old secret keeps working.', status: 400 });
    }
    const response = await ac.api('POST', `/v1/apps/${id}/rotate-secret`, {
      grace_seconds: grace,
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    const app = response.body as AppView & { client_secret: string };
    return render(ac, { created: { app, verb: 'rotated' } });
  });

  framework.action('/console/apps/:id/status', async (ac) => {
    const id = ac.ctx.params.id!;
    const status = field(ac.form, 'status');
    if (!APP_ID.test(id) || (status !== 'active' && status !== 'disabled')) {
      return render(ac, { error: 'Choose to enable or disable an app.', status: 400 });
    }
    const response = await ac.api('PATCH', `/v1/apps/${id}`, { status });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: `/console/apps?done=${status}` };
  });
}

async function render(
  pc: PageContext | ActionContext,
  options: {
    error?: string;
    success?: string | null;
    status?: number;
    state?: FormState;
    created?: { app: AppView & { client_secret: string | null }; verb: 'registered' | 'rotated' };
  },
): Promise<PageResult> {
  const apps = (ok(await pc.api('GET', '/v1/apps')).body as { apps: AppView[] }).apps;
  // An operator sees every account's apps, so the owner tells them apart.
  const owner = pc.viewer.isAdmin;
  const body = html`${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    ${options.created === undefined ? '' : revealed(options.created)}
    <section class="card" aria-labelledby="apps-list">
      <h2 id="apps-list">Apps</h2>
      ${table(
        'Registered apps',
        [
          'Name',
          ...(owner ? ['Owner'] : []),
          'Kind',
          'Client id',
          'Redirect URIs',
          'Origins',
          'Status',
          'Created',
          'Actions',
        ],
        apps.map((a) => [
          a.name,
          ...(owner ? [html`<code>${a.owner_account_id}</code>`] : []),
          a.kind,
          html`<code class="id">${a.client_id}</code>`,
          uris(a.redirect_uris),
          uris(a.allowed_origins),
          html`<span class="badge ${a.status === 'active' ? 'good' : 'bad'}">${a.status}</span>${
              a.previous_secret_expires_at === null
                ? ''
                : html`<div class="hint">
                    Old secret works until ${when(a.previous_secret_expires_at)}
                  </div>`
            }`,
          when(a.created_at),
          actions(pc.viewer, a),
        ]),
        'No apps yet. Register one below.',
      )}
    </section>
    ${createForm(pc.viewer, options.state ?? { name: '', kind: 'public', redirects: '', origins: '' })}`;
  return { title: 'Apps', active: 'apps', body, status: options.status };
}

/** One URI per line, breakable anywhere: long callback URLs must not push the actions off. */
function uris(list: string[]): Html | string {
  if (list.length === 0) return '—';
  return html`${list.map((u) => html`<div class="wrap">${u}</div>`)}`;
}

function revealed({
  app,
  verb,
}: {
  app: AppView & { client_secret: string | null };
  verb: string;
}): Html {
  return html`<section class="card" aria-labelledby="app-secret">
    <h2 id="app-secret">App “${app.name}” ${verb}</h2>
    <p>Client id: <code>${app.client_id}</code></p>
    ${
      app.client_secret === null
        ? html`<p>This is a public app: it has no secret and signs in with PKCE.</p>`
        : secretReveal(app.client_secret, 'client secret')
    }
  </section>`;
}

function actions(viewer: Viewer, a: AppView): Html {
  const next = a.status === 'active' ? 'disabled' : 'active';
  const grace = `grace-${a.id}`;
  return html`<div class="actions">
    ${
      a.kind === 'public'
        ? ''
        : html`<form
            method="post"
            action="/console/apps/${a.id}/rotate-secret"
            data-confirm="Issue a new secret for “${a.name}”?"
          >
            ${csrfField(viewer)} ${graceSelect(grace)}
            <button type="submit" class="secondary small">
              Rotate secret<span class="sr"> of ${a.name}</span>
            </button>
          </form>`
    }
    <form
      method="post"
      action="/console/apps/${a.id}/status"
      ${next === 'disabled' ? html` data-confirm="Disable “${a.name}”? Its sign-ins and tokens stop working."` : ''}
    >
      ${csrfField(viewer)}<input type="hidden" name="status" value="${next}" />
      <button type="submit" class="${next === 'disabled' ? 'danger' : 'secondary'} small">
        ${next === 'disabled' ? 'Disable' : 'Enable'}<span class="sr"> ${a.name}</span>
      </button>
    </form>
  </div>`;
}

function createForm(viewer: Viewer, state: FormState): Html {
  return html`<section class="card" aria-labelledby="create-app">
    <h2 id="create-app">Register an app</h2>
    <form method="post" action="/console/apps">
      ${csrfField(viewer)}
      <label for="app-name">Name</label>
      <input id="app-name" name="name" type="text" required maxlength="100" value="${state.name}" />
      <fieldset>
        <legend>Kind</legend>
        ${KINDS.map(([kind, text]) => html`<label><input type="radio" name="kind" value="${kind}" ${state.kind === kind ? html` checked` : ''} /> ${text}</label>`)}
      </fieldset>
      <label for="app-redirects">Redirect URIs</label>
      <p class="hint" id="app-redirects-hint">One per line. Needed for public and web apps.</p>
      <textarea id="app-redirects" name="redirect_uris" aria-describedby="app-redirects-hint">
${state.redirects}</textarea>
      <label for="app-origins">Allowed origins (CORS)</label>
      <textarea id="app-origins" name="allowed_origins">${state.origins}</textarea>
      <div><button type="submit">Register app</button></div>
    </form>
  </section>`;
}
