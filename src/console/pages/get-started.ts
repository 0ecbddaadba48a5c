// "Get started" (issue #18 item 5): where a new customer lands after signing in while it has no
// API key. Five steps with their state read from /v1 — address confirmed, a first key, a first
// request through the front door, a key the payment signer accepts, an app — with what each
// needs inline: a resend link, a key form (the secret shown once, filled into a ready curl and
// go-livepeer's -remoteSignerUrl/-remoteSignerHeaders), and the way to register an app.
// Dismissable; the navigation offers the page until every step is done.
import { apiMessage, field, listAll, ok } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { csrfField, doneMessage, notice, secretReveal } from '../views.ts';

/** What the page remembers per account (console_get_started), injected by index.ts. */
export interface GetStartedStore {
  /** Whether the account dismissed the page, or finished it. */
  state(accountId: string): Promise<{ dismissed: boolean; completed: boolean }>;
  dismiss(accountId: string): Promise<void>;
  complete(accountId: string): Promise<void>;
}

export interface GetStartedOptions {
  publicUrl: string;
  /** SIGNUP_OWNER_INVITATIONS with the invite policy: offer an invitation form. */
  ownerInvitations: boolean;
  store: GetStartedStore;
}

interface AccountView {
  id: string;
  email: string;
  email_verified: boolean;
  created_at: string;
}

interface KeyView {
  id: string;
  kind: 'backend' | 'browser';
  name: string;
  scopes: string[];
  status: 'active' | 'expired' | 'revoked';
}

// The first key can do what the page goes on to show: call the front door (gateway), pay
// orchestrators through the signer (signer), and read its own usage (usage:read).
export const FIRST_KEY_SCOPES = ['gateway', 'signer', 'usage:read'];
// The placeholder in the commands when no secret is on the page (it is shown only once).
const KEY_PLACEHOLDER = '$TOLLHOUSE_API_KEY';
const PATH = '/console/get-started';

const DONE: Record<string, string> = {
  verification: 'A new confirmation link is on its way. Open it, then come back here.',
  invited: 'The invitation is on its way.',
};

export function getStartedPages(
  framework: ReturnType<typeof createFramework>,
  options: GetStartedOptions,
): void {
  framework.page(PATH, async (pc) =>
    render(pc, options, { success: doneMessage(pc.ctx.query, DONE) }),
  );

  framework.action(`${PATH}/key`, async (ac) => {
    const name = field(ac.form, 'name') || 'First key';
    const response = await ac.api('POST', '/v1/keys', {
      name,
      kind: 'backend',
      scopes: FIRST_KEY_SCOPES,
    });
    if (response.status !== 201) {
      return render(ac, options, { error: apiMessage(response), status: 400 });
    }
    const issued = response.body as { key: KeyView; secret: string };
    return render(ac, options, { secret: issued.secret, keyName: issued.key.name });
  });

  framework.action(`${PATH}/verification`, async (ac) => {
    const response = await ac.api('POST', '/v1/account/verification-email');
    if (response.status !== 202) {
      return render(ac, options, { error: apiMessage(response), status: response.status });
    }
    return { redirect: `${PATH}?done=verification` };
  });

  framework.action(`${PATH}/invite`, async (ac) => {
    const response = await ac.api('POST', '/v1/invitations', { email: field(ac.form, 'email') });
    if (response.status !== 201) {
      return render(ac, options, { error: apiMessage(response), status: response.status });
    }
    return { redirect: `${PATH}?done=invited` };
  });

  framework.action(`${PATH}/dismiss`, async (ac) => {
    await options.store.dismiss(ac.session.accountId);
    return { redirect: '/console' };
  });
}

/**
 * Where the console sends a customer who has just signed in: here while it has no active key
 * and has neither dismissed nor finished the page; otherwise where it was going.
 */
export async function landing(
  store: GetStartedStore,
  session: { accountId: string; isAdmin: boolean },
  hasKey: () => Promise<boolean>,
  returnTo: string,
): Promise<string> {
  if (returnTo !== '/console' || session.isAdmin) return returnTo;
  const state = await store.state(session.accountId);
  if (state.dismissed || state.completed) return returnTo;
  return (await hasKey()) ? returnTo : PATH;
}

interface Steps {
  verified: boolean;
  key: boolean;
  request: boolean;
  signerKey: boolean;
  app: boolean;
}

async function readSteps(pc: PageContext): Promise<{ account: AccountView; steps: Steps }> {
  const account = ok(await pc.api('GET', '/v1/account')).body as AccountView;
  const from = encodeURIComponent(account.created_at);
  const id = encodeURIComponent(account.id);
  const [keys, usage, apps] = await Promise.all([
    listAll<KeyView>(pc, '/v1/keys', 'keys'),
    pc.api('GET', `/v1/usage?account_id=${id}&from=${from}`),
    pc.api('GET', '/v1/apps?limit=1'),
  ]);
  const active = keys.items.filter((k) => k.status === 'active' && k.kind === 'backend');
  return {
    account,
    steps: {
      verified: account.email_verified,
      key: active.some((k) => k.scopes.includes('gateway')),
      request: (ok(usage).body as { totals: { events: number } }).totals.events > 0,
      signerKey: active.some((k) => k.scopes.includes('signer')),
      app: (ok(apps).body as { apps: unknown[] }).apps.length > 0,
    },
  };
}

async function render(
  pc: PageContext | ActionContext,
  options: GetStartedOptions,
  input: {
    success?: string | null;
    error?: string;
    status?: number;
    secret?: string;
    keyName?: string;
  },
): Promise<PageResult> {
  const { account, steps } = await readSteps(pc);
  const allDone = Object.values(steps).every(Boolean);
  if (allDone) await options.store.complete(pc.session.accountId);
  const csrf = csrfField(pc.viewer);
  const key = input.secret ?? KEY_PLACEHOLDER;
  const origin = new URL(options.publicUrl).origin;
  const curl = frontDoorCurl(options.publicUrl, key);
  const flags = signerFlags(origin, key);
  const body = html`${notice('error', input.error ?? null)}
    ${notice('success', input.success ?? null)}
    ${allDone ? notice('success', 'Every step is done. This page leaves the menu now.') : ''}
    <p>A few steps from a new account to a first paid request. Each says whether it is done.</p>
    <ol class="steps">
      ${step(
        'gs-verify',
        'Confirm your e-mail address',
        steps.verified,
        steps.verified
          ? html`<p>${account.email} is confirmed.</p>`
          : html`<p>
                We sent a link to ${account.email}. Until you open it, the account cannot have keys
                for the gateway or the signer.
              </p>
              <form method="post" action="${PATH}/verification">
                ${csrf}
                <button type="submit" class="secondary">Send the link again</button>
              </form>`,
      )}
      ${step(
        'gs-key',
        'Create your first API key',
        steps.key,
        input.secret !== undefined
          ? html`<p>
                Key “${input.keyName ?? ''}” created, with the scopes
                ${FIRST_KEY_SCOPES.join(', ')}.
              </p>
              ${secretReveal(input.secret, 'secret')}`
          : steps.key
            ? html`<p>You have a key. Manage your keys on <a href="/console/keys">API keys</a>.</p>`
            : steps.verified
              ? html`<form method="post" action="${PATH}/key">
                  ${csrf}
                  <label for="gs-key-name">Key name</label>
                  <input
                    id="gs-key-name"
                    name="name"
                    type="text"
                    maxlength="100"
                    value="First key"
                    required
                  />
                  <p class="hint">
                    A backend key with the scopes ${FIRST_KEY_SCOPES.join(', ')}: keep it on your
                    servers.
                  </p>
                  <button type="submit">Create key</button>
                </form>`
              : html`<p class="muted">Confirm your address first.</p>`,
      )}
      ${step(
        'gs-request',
        'Send a request through the front door',
        steps.request,
        html`<p>
            The same paths and bodies as a go-livepeer gateway, with your key added.
            ${
              input.secret === undefined
                ? html`Put your key's secret in <code>${KEY_PLACEHOLDER}</code> first.`
                : html`Your new key is filled in.`
            }
          </p>
          ${copyable('gs-curl', curl, 'the curl command')}`,
      )}
      ${step(
        'gs-signer',
        'Point a go-livepeer gateway at the payment signer',
        steps.signerKey,
        html`<p>
            To run your own go-livepeer gateway and let this service pay orchestrators, start it
            with these flags. The header carries a key with the signer scope (the first key has it).
          </p>
          ${copyable('gs-flags', flags, 'the go-livepeer flags')}`,
      )}
      ${step(
        'gs-app',
        'Register an app',
        steps.app,
        steps.app
          ? html`<p>You have an app. See <a href="/console/apps">Apps</a>.</p>`
          : html`<p>
              For users who sign in to your product with this service (OpenID Connect, issuer
              <code>${options.publicUrl}/oidc</code>), register an app on
              <a href="/console/apps">Apps</a>. Give it your callback address as its redirect URI,
              such as <code>https://app.example.com/callback</code> (http only for localhost).
            </p>`,
      )}
    </ol>
    ${options.ownerInvitations && steps.verified ? inviteForm(csrf) : ''}
    ${
      allDone
        ? ''
        : html`<form method="post" action="${PATH}/dismiss">
            ${csrf}
            <p class="hint">The menu keeps a link to this page until every step is done.</p>
            <button type="submit" class="secondary">Not now: go to the overview</button>
          </form>`
    }`;
  return {
    title: 'Get started',
    active: 'get-started',
    body,
    ...(input.status === undefined ? {} : { status: input.status }),
  };
}

function step(id: string, title: string, done: boolean, content: Html): Html {
  return html`<li class="card">
    <h2 id="${id}">
      ${title}
      <span class="badge ${done ? 'good' : 'warn'}">${done ? 'Done' : 'To do'}</span>
    </h2>
    ${content}
  </li>`;
}

function copyable(id: string, text: string, what: string): Html {
  return html`<div class="secret">
    <pre><code id="${id}">${text}</code></pre>
    <button type="button" class="secondary small" data-copy="${id}" hidden>
      Copy<span class="sr"> ${what}</span>
    </button>
    <span id="${id}-status" role="status"></span>
  </div>`;
}

function inviteForm(csrf: Html): Html {
  return html`<section class="card" aria-labelledby="gs-invite">
    <h2 id="gs-invite">Invite someone</h2>
    <p>They get an e-mail with a link to create their own account here.</p>
    <form method="post" action="${PATH}/invite">
      ${csrf}
      <label for="gs-invite-email">Their e-mail address</label>
      <input id="gs-invite-email" name="email" type="email" autocomplete="off" required />
      <button type="submit" class="secondary">Send invitation</button>
    </form>
  </section>`;
}

/** A first request (text-to-image, as in the README's tour) against the public URL. */
export function frontDoorCurl(publicUrl: string, key: string): string {
  return [
    `curl ${publicUrl}/text-to-image \\`,
    `  -H "Authorization: Bearer ${key}" \\`,
    `  -H 'content-type: application/json' \\`,
    `  -d '{"prompt":"a cat in a tollbooth","width":512,"height":512}'`,
  ].join('\n');
}

/**
 * go-livepeer resolves every signer call against -remoteSignerUrl with an absolute path, which
 * drops any base path (docs/signer.md): the origin alone is the right value. It sends
 * -remoteSignerHeaders ("Name:value", comma-separated) on every call.
 */
export function signerFlags(origin: string, key: string): string {
  return [
    `livepeer -gateway \\`,
    `  -remoteSignerUrl=${origin} \\`,
    `  -remoteSignerHeaders "Authorization:Bearer ${key}"`,
  ].join('\n');
}
