// API keys: list (with age and rotation warnings), create a backend or browser key (the secret
// is shown once, with a copy button), rotate with a grace period, revoke. All through /v1/keys.
import { SCOPES } from '../../platform/auth.ts';
import { apiMessage, field, fields, lines, listAll } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
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

interface KeyView {
  id: string;
  kind: 'backend' | 'browser';
  name: string;
  scopes: string[];
  allowed_origins: string[] | null;
  allowed_resources: string[] | null;
  display_prefix: string;
  status: 'active' | 'expired' | 'revoked';
  rotation_due: boolean;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

const DONE: Record<string, string> = {
  revoked: 'The key is revoked: requests with it are refused from now on.',
};

interface FormState {
  name: string;
  kind: string;
  origins: string;
  resources: string;
  scopes: string[];
}

const EMPTY: FormState = {
  name: '',
  kind: 'backend',
  origins: '',
  resources: '',
  scopes: ['gateway'],
};

export function keyPages(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console/keys', async (pc) => {
    const done = doneMessage(pc.ctx.query, DONE);
    return render(pc, { success: done });
  });

  framework.action('/console/keys', async (ac) => {
    const state: FormState = {
      name: field(ac.form, 'name'),
      kind: field(ac.form, 'kind'),
      origins: field(ac.form, 'allowed_origins'),
      resources: field(ac.form, 'allowed_resources'),
      scopes: fields(ac.form, 'scopes'),
    };
    const origins = lines(ac.form, 'allowed_origins');
    const resources = lines(ac.form, 'allowed_resources');
    const body: Record<string, unknown> = { name: state.name, kind: state.kind };
    if (state.kind === 'backend' && state.scopes.length > 0) body.scopes = state.scopes;
    if (origins.length > 0) body.allowed_origins = origins;
    if (resources.length > 0) body.allowed_resources = resources;
    const response = await ac.api('POST', '/v1/keys', body);
    if (response.status !== 201) {
      return render(ac, { error: apiMessage(response), status: 400, state });
    }
    const issued = response.body as { key: KeyView; secret: string };
    return render(ac, { secret: { key: issued.key, secret: issued.secret, verb: 'created' } });
  });

  framework.action('/console/keys/:id/revoke', async (ac) => {
    const response = await ac.api(
      'POST',
      `/v1/keys/${encodeURIComponent(ac.ctx.params.id)}/revoke`,
    );
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/keys?done=revoked' };
  });

  framework.action('/console/keys/:id/rotate', async (ac) => {
    const grace = graceSeconds(field(ac.form, 'grace_seconds'));
    if (grace === null) {
      return render(ac, { error: 'Choose how long the old secret keeps working.', status: 400 });
    }
    const response = await ac.api(
      'POST',
      `/v1/keys/${encodeURIComponent(ac.ctx.params.id)}/rotate`,
      { grace_seconds: grace },
    );
    if (response.status !== 201) return render(ac, { error: apiMessage(response), status: 400 });
    const issued = response.body as { key: KeyView; secret: string };
    return render(ac, { secret: { key: issued.key, secret: issued.secret, verb: 'rotated' } });
  });
}

const RATE_LIMITS_SHOWN = 20;

async function render(
  pc: PageContext | ActionContext,
  options: {
    error?: string;
    success?: string | null;
    status?: number;
    state?: FormState;
    secret?: { key: KeyView; secret: string; verb: 'created' | 'rotated' };
  },
): Promise<PageResult> {
  // Newest first, as the API pages them.
  const { items: keys, next } = await listAll<KeyView>(pc, '/v1/keys', 'keys');
  const active = keys.filter((k) => k.status === 'active');
  // What the front door enforces on each active key (its override, else the plan, else the
  // settings): read-only here; operators set it through the API.
  // One API call per key, so only for the newest RATE_LIMITS_SHOWN (an account with hundreds
  // of keys reads the rest through GET /v1/keys/{id}/limits).
  const rates = new Map(
    await Promise.all(
      active.slice(0, RATE_LIMITS_SHOWN).map(async (k) => {
        const answer = await pc.api('GET', `/v1/keys/${encodeURIComponent(k.id)}/limits`);
        return [k.id, answer.status === 200 ? (answer.body as EffectiveLimits) : null] as const;
      }),
    ),
  );
  const inactive = keys.filter((k) => k.status !== 'active');
  const body = html` ${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    ${options.secret === undefined ? '' : revealed(options.secret)}
    <section class="card" aria-labelledby="keys-active">
      <h2 id="keys-active">Active keys</h2>
      ${table(
        'Active API keys',
        [
          'Name',
          'Kind',
          'Key',
          'Scopes',
          'Limited to',
          'Rate limit',
          'Created',
          'Last used',
          'Actions',
        ],
        active.map((k) => [
          html`${k.name}${k.rotation_due ? html` <span class="badge warn">Older than 90 days: rotate it</span>` : ''}`,
          k.kind,
          html`<code>${k.display_prefix}…</code>`,
          k.scopes.join(', '),
          limits(k),
          rateLimit(rates.get(k.id) ?? null),
          when(k.created_at),
          when(k.last_used_at),
          actions(pc.viewer, k),
        ]),
        'No active keys. Create one below.',
      )}
      ${nextPageLink('/console/keys', next, 'keys (older)')}
    </section>
    ${createForm(pc.viewer, options.state ?? EMPTY)}
    ${
      inactive.length === 0
        ? ''
        : html`<section class="card" aria-labelledby="keys-inactive">
            <h2 id="keys-inactive">Revoked and expired keys</h2>
            ${table(
              'Revoked and expired API keys',
              ['Name', 'Kind', 'Key', 'Status', 'Created'],
              inactive.map((k) => [
                k.name,
                k.kind,
                html`<code>${k.display_prefix}…</code>`,
                html`<span class="badge bad">${k.status}</span>`,
                when(k.created_at),
              ]),
            )}
          </section>`
    }`;
  return { title: 'API keys', active: 'keys', body, status: options.status };
}

function revealed(input: { key: KeyView; secret: string; verb: string }): Html {
  return html`<section class="card" aria-labelledby="secret-head">
    <h2 id="secret-head">Key “${input.key.name}” ${input.verb}</h2>
    ${secretReveal(input.secret, 'secret')}
  </section>`;
}

function limits(k: KeyView): Html {
  const parts: Html[] = [];
  if (k.allowed_origins !== null)
    parts.push(html`<div>Origins: ${k.allowed_origins.join(', ')}</div>`);
  if (k.allowed_resources !== null) {
    parts.push(html`<div>Resources: ${k.allowed_resources.join(', ')}</div>`);
  }
  if (k.expires_at !== null) parts.push(html`<div>Expires ${when(k.expires_at)}</div>`);
  return parts.length === 0 ? html`<span class="muted">unrestricted</span>` : html`${parts}`;
}

interface EffectiveLimits {
  key: { rate: number; burst: number; concurrency: number };
  override: { rate: number | null; burst: number | null; concurrency: number | null };
}

function rateLimit(limits: EffectiveLimits | null): Html {
  if (limits === null) return html`<span class="muted">—</span>`;
  const { rate, burst, concurrency } = limits.key;
  const parts: string[] = [];
  parts.push(rate === 0 ? 'unlimited rate' : `${rate}/s (burst ${burst})`);
  if (concurrency > 0) parts.push(`${concurrency} at once`);
  const overridden = Object.values(limits.override).some((v) => v !== null);
  return html`${parts.join(', ')}${overridden ? html` <span class="badge">set for this key</span>` : ''}`;
}

function actions(viewer: Viewer, k: KeyView): Html {
  const id = `grace-${k.id}`;
  return html`<form method="post" action="/console/keys/${k.id}/rotate">
      ${csrfField(viewer)} ${graceSelect(id)}
      <button type="submit" class="secondary small">
        Rotate<span class="sr"> ${k.name}</span>
      </button>
    </form>
    <form
      method="post"
      action="/console/keys/${k.id}/revoke"
      data-confirm="Revoke the key “${k.name}”? Requests with it will be refused at once."
    >
      ${csrfField(viewer)}
      <button type="submit" class="danger small">Revoke<span class="sr"> ${k.name}</span></button>
    </form>`;
}

function createForm(viewer: Viewer, state: FormState): Html {
  return html`<section class="card" aria-labelledby="create-key">
    <h2 id="create-key">Create a key</h2>
    <form method="post" action="/console/keys">
      ${csrfField(viewer)}
      <label for="key-name">Name</label>
      <input id="key-name" name="name" type="text" required maxlength="100" value="${state.name}" />
      <fieldset>
        <legend>Kind</legend>
        <label
          ><input
            type="radio"
            name="kind"
            value="backend"
            ${state.kind !== 'browser' ? html` checked` : ''}
          />
          Backend (kept secret on your servers)</label
        >
        <label
          ><input
            type="radio"
            name="kind"
            value="browser"
            ${state.kind === 'browser' ? html` checked` : ''}
          />
          Browser (public, limited to your web origins)</label
        >
      </fieldset>
      ${scopeChoices(
        'Scopes (backend keys)',
        SCOPES.filter((s) => s !== 'admin'),
        state.scopes,
        'Browser keys always have only the gateway scope.',
      )}
      <label for="key-origins">Allowed origins</label>
      <p class="hint" id="key-origins-hint">
        One per line, such as https://app.example.com. Required for browser keys.
      </p>
      <textarea id="key-origins" name="allowed_origins" aria-describedby="key-origins-hint">
${state.origins}</textarea>
      <label for="key-resources">Allowed resources</label>
      <p class="hint" id="key-resources-hint">
        Pipelines or model ids, one per line. Empty: every resource.
      </p>
      <textarea id="key-resources" name="allowed_resources" aria-describedby="key-resources-hint">
${state.resources}</textarea>
      <div><button type="submit">Create key</button></div>
    </form>
  </section>`;
}
