// Apps (OIDC clients): list, create (redirect URIs, origins; the secret is shown once, with a
// copy button), edit an app's name, redirect URIs, origins and scopes on its own page, rotate a
// confidential app's secret with a grace period, disable and enable.
// Through /v1/apps: a customer sees and manages its own account's apps, an operator every app.
import { SCOPES } from '../../platform/auth.ts';
import { apiMessage, field, fields, lines, listAll, ok } from '../framework.ts';
import type {
  ActionContext,
  Form,
  PageContext,
  PageResult,
  createFramework,
} from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import {
  csrfField,
  doneMessage,
  graceSeconds,
  graceSelect,
  nextPageLink,
  notice,
  scopeChoices,
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
  post_logout_redirect_uris: string[];
  allowed_origins: string[];
  scopes: string[];
  status: 'active' | 'disabled';
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
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

/** What the edit form shows: the saved values, or what was typed when the API refused it. */
interface EditState {
  name: string;
  redirects: string;
  postLogout: string;
  origins: string;
  scopes: string[];
}

const EDIT_DONE: Record<string, string> = {
  saved: 'The changes are saved.',
};

// PATCH /v1/apps/{id} fields the edit form sends, by form field name. A field the form did not
// send is left out of the PATCH (unchanged). Redirect URIs split on newlines only (a comma is
// legal in them); an origin cannot contain one.
const URI_FIELDS = [
  ['redirect_uris', false],
  ['post_logout_redirect_uris', false],
  ['allowed_origins', true],
] as const;

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
    const redirects = lines(ac.form, 'redirect_uris', { commas: false });
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

  // The app's page: what cannot change (kind, client id) and the edit form, filled in.
  framework.page('/console/apps/:id', async (pc) => {
    const app = await findApp(pc, pc.ctx.params.id);
    if (app === null) return notFound();
    return renderApp(pc, app, { state: saved(app), success: doneMessage(pc.ctx.query, EDIT_DONE) });
  });

  framework.action('/console/apps/:id', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!APP_ID.test(id)) return notFound();
    const response = await ac.api('PATCH', `/v1/apps/${id}`, patchOf(ac.form));
    if (response.status === 200) return { redirect: `/console/apps/${id}?done=saved` };
    // Another account's app answers 404 like a missing one; nothing of it is shown.
    const app = response.status === 404 ? null : await findApp(ac, id);
    if (app === null) return notFound();
    return renderApp(ac, app, {
      error: apiMessage(response),
      status: 400,
      state: typed(ac.form, saved(app)),
    });
  });
}

async function findApp(pc: PageContext, id: string): Promise<AppView | null> {
  if (!APP_ID.test(id)) return null;
  const response = await pc.api('GET', `/v1/apps/${id}`);
  if (response.status === 404) return null;
  return ok(response).body as AppView;
}

function notFound(): PageResult {
  return {
    title: 'App not found',
    active: 'apps',
    status: 404,
    body: html`<p>There is no such app on your account.</p>
      <p><a href="/console/apps">All apps</a></p>`,
  };
}

/** The PATCH body of an edit form: only the fields it sent. */
function patchOf(form: Form): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (form.name !== undefined) body.name = field(form, 'name');
  for (const [name, commas] of URI_FIELDS) {
    if (form[name] !== undefined) body[name] = lines(form, name, { commas });
  }
  // The form always carries an empty `scopes` beside its checkboxes, so "none ticked" still
  // arrives (unticked checkboxes send nothing).
  if (form.scopes !== undefined) body.scopes = fields(form, 'scopes');
  return body;
}

function saved(app: AppView): EditState {
  return {
    name: app.name,
    redirects: app.redirect_uris.join('\n'),
    postLogout: app.post_logout_redirect_uris.join('\n'),
    origins: app.allowed_origins.join('\n'),
    scopes: app.scopes,
  };
}

/** What was typed, for fields the form sent; the saved value for the others. */
function typed(form: Form, fallback: EditState): EditState {
  const text = (name: string, otherwise: string) =>
    form[name] === undefined ? otherwise : field(form, name);
  return {
    name: text('name', fallback.name),
    redirects: text('redirect_uris', fallback.redirects),
    postLogout: text('post_logout_redirect_uris', fallback.postLogout),
    origins: text('allowed_origins', fallback.origins),
    scopes: form.scopes === undefined ? fallback.scopes : fields(form, 'scopes'),
  };
}

function renderApp(
  pc: PageContext,
  app: AppView,
  options: { state: EditState; error?: string; success?: string | null; status?: number },
): PageResult {
  // The console does not grant an app the admin scope (that stays a deliberate API call); an app
  // that has it keeps it ticked, so saving other changes does not drop it.
  const offered = SCOPES.filter((s) => s !== 'admin' || app.scopes.includes('admin'));
  const { state } = options;
  const body = html`${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    <section class="card" aria-labelledby="app-facts">
      <h2 id="app-facts">Registration</h2>
      <dl class="facts">
        <dt>Client id</dt>
        <dd><code>${app.client_id}</code></dd>
        <dt>Kind</dt>
        <dd>${app.kind}</dd>
        ${
          pc.viewer.isAdmin
            ? html`<dt>Owner</dt>
                <dd><code>${app.owner_account_id}</code></dd>`
            : ''
        }
        <dt>Status</dt>
        <dd>
          <span class="badge ${app.status === 'active' ? 'good' : 'bad'}">${app.status}</span>
        </dd>
        <dt>Created</dt>
        <dd>${when(app.created_at)}</dd>
        <dt>Last changed</dt>
        <dd>${when(app.updated_at)}</dd>
      </dl>
    </section>
    <section class="card" aria-labelledby="edit-app">
      <h2 id="edit-app">Edit</h2>
      <form method="post" action="/console/apps/${app.id}">
        ${csrfField(pc.viewer)}
        <label for="edit-name">Name</label>
        <input
          id="edit-name"
          name="name"
          type="text"
          required
          maxlength="100"
          value="${state.name}"
        />
        ${uriField(
          'edit-redirects',
          'redirect_uris',
          'Redirect URIs',
          'One per line, matched exactly. https, or http for localhost only. Needed for public and web apps.',
          state.redirects,
        )}
        ${uriField(
          'edit-post-logout',
          'post_logout_redirect_uris',
          'Post-logout redirect URIs',
          'One per line: where the app may send users after signing out.',
          state.postLogout,
        )}
        ${uriField(
          'edit-origins',
          'allowed_origins',
          'Allowed origins (CORS)',
          'One per line, such as https://app.example.com.',
          state.origins,
        )}
        <input type="hidden" name="scopes" value="" />
        ${scopeChoices(
          'Scopes',
          offered,
          state.scopes,
          "What the app's tokens may do: a token never gets more than these.",
        )}
        <div><button type="submit">Save changes</button></div>
      </form>
    </section>
    <p><a href="/console/apps">All apps</a></p>`;
  return { title: `App “${app.name}”`, active: 'apps', body, status: options.status };
}

/** A labelled textarea of URIs, one per line, with its hint read along. */
function uriField(id: string, name: string, label: string, hint: string, value: string): Html {
  return html`<label for="${id}">${label}</label>
    <p class="hint" id="${id}-hint">${hint}</p>
    <textarea id="${id}" name="${name}" aria-describedby="${id}-hint">${value}</textarea>`;
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
  const { items: apps, next } = await listAll<AppView>(pc, '/v1/apps', 'apps');
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
      ${nextPageLink('/console/apps', next, 'apps (newer)')}
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
    <a class="button secondary small" href="/console/apps/${a.id}"
      >Edit<span class="sr"> ${a.name}</span></a
    >
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
      ${uriField(
        'app-redirects',
        'redirect_uris',
        'Redirect URIs',
        'One per line. Needed for public and web apps.',
        state.redirects,
      )}
      ${uriField(
        'app-origins',
        'allowed_origins',
        'Allowed origins (CORS)',
        'One per line, such as https://app.example.com.',
        state.origins,
      )}
      <div><button type="submit">Register app</button></div>
    </form>
  </section>`;
}
