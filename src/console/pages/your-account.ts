// "Your account" (issue #18 item 7): the signed-in holder's sign-ins (end one or all), and
// forms to change the password, change the e-mail address (a link goes to the new one) and
// delete the account. Through /v1/account/…, which only an account's own credential may call:
// an operator's console session (admin scope) is refused there, and this page says so.
import { apiMessage, field, ok } from '../framework.ts';
import type { PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import { csrfField, doneMessage, notice, table, when } from '../views.ts';

interface SessionView {
  id: string;
  kind: 'browser_session' | 'refresh_grant';
  clients: Array<{ client_id: string; name: string | null }>;
  created_at: string | null;
  last_used_at: string | null;
}

const DONE: Record<string, string> = {
  password:
    'Your password is changed and every sign-in was ended: this console signs in again when its token expires.',
  email:
    'A confirmation link is on its way to the new address. Until you open it, nothing changes.',
  ended: 'The sign-in is ended.',
  ended_all: 'Every sign-in is ended.',
  unlinked: 'The provider is unlinked: it no longer signs in to this account.',
};

interface IdentityView {
  id: string;
  provider: string;
  provider_name: string;
  email: string | null;
  linked_at: string;
  last_used_at: string | null;
}

// The ids /v1/account/identities gives out, and the provider ids it accepts.
const IDENTITY_ID = /^idn_[0-9A-Za-z]{22}$/;
const PROVIDER_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

// The ids /v1/account/sessions gives out (self-service.ts SESSION_ID).
const SESSION_ID = /^(ses_[0-9a-f]{64}|grt_[A-Za-z0-9_-]{1,64})$/;

export function yourAccountPages(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console/account', async (pc) =>
    render(pc, { success: doneMessage(pc.ctx.query, DONE) }),
  );

  framework.action('/console/account/password', async (ac) => {
    if (field(ac.form, 'new_password') !== field(ac.form, 'new_password_confirm')) {
      return render(ac, { error: 'The two new passwords are not the same.', status: 400 });
    }
    const response = await ac.api('POST', '/v1/account/password', {
      current_password: field(ac.form, 'current_password'),
      new_password: field(ac.form, 'new_password'),
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=password' };
  });

  framework.action('/console/account/email', async (ac) => {
    const response = await ac.api('POST', '/v1/account/email', {
      current_password: field(ac.form, 'current_password'),
      email: field(ac.form, 'email'),
    });
    if (response.status !== 202) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=email' };
  });

  framework.action('/console/account/sessions/end-all', async (ac) => {
    const response = await ac.api('DELETE', '/v1/account/sessions');
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=ended_all' };
  });

  framework.action('/console/account/sessions/:id/end', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!SESSION_ID.test(id)) return render(ac, { error: 'No such sign-in.', status: 400 });
    const response = await ac.api('DELETE', `/v1/account/sessions/${id}`);
    if (response.status !== 204) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=ended' };
  });

  framework.action('/console/account/identities/link', async (ac) => {
    const provider = field(ac.form, 'provider');
    if (!PROVIDER_ID.test(provider)) return render(ac, { error: 'No such provider.', status: 400 });
    const response = await ac.api('POST', '/v1/account/identities', { provider });
    if (response.status !== 202) return render(ac, { error: apiMessage(response), status: 400 });
    const linkUrl = response.body.link_url as string;
    // A page with a plain link rather than a redirect: the console's CSP (form-action 'self')
    // would stop a form's redirect chain at the provider's origin.
    return {
      title: 'Link a sign-in provider',
      active: 'account',
      body: html`<p>
          Sign in at the provider to link it to ${ac.viewer.email}. The link works once, for ten
          minutes.
        </p>
        <p><a class="button" href="${linkUrl}">Continue to the provider</a></p>
        <p><a href="/console/account">Cancel</a></p>`,
    };
  });

  framework.action('/console/account/identities/:id/unlink', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!IDENTITY_ID.test(id)) return render(ac, { error: 'No such provider link.', status: 400 });
    const response = await ac.api('DELETE', `/v1/account/identities/${id}`);
    if (response.status !== 204) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=unlinked' };
  });

  framework.action('/console/account/delete', async (ac) => {
    if (field(ac.form, 'confirm') !== 'delete') {
      return render(ac, { error: 'Type delete to confirm.', status: 400 });
    }
    const response = await ac.api('POST', '/v1/account/delete', {
      current_password: field(ac.form, 'current_password'),
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    // The account can no longer sign in: this console session has nothing left to show.
    return { redirect: '/console/signed-out' };
  });
}

async function render(
  pc: PageContext,
  input: { success?: string | null; error?: string; status?: number },
): Promise<PageResult> {
  const listed = await pc.api('GET', '/v1/account/sessions');
  if (listed.status === 403) {
    return {
      title: 'Your account',
      active: 'account',
      status: 403,
      body: html`${notice(
        'warning',
        'An operator session cannot change its own account here: sign in to the console with an account that is not an operator, or use the tollhouse accounts command.',
      )}`,
    };
  }
  const sessions = ok(listed).body.sessions as SessionView[];
  const linked = ok(await pc.api('GET', '/v1/account/identities')).body as {
    identities: IdentityView[];
    providers: Array<{ id: string; name: string }>;
  };
  const csrf = csrfField(pc.viewer);
  const identityRows = linked.identities.map((i) => [
    i.provider_name,
    i.email ?? '—',
    when(i.linked_at),
    when(i.last_used_at),
    html`<form method="post" action="/console/account/identities/${i.id}/unlink">
      ${csrf}
      <button type="submit" class="secondary">Unlink</button>
    </form>`,
  ]);
  const linkable = linked.providers.filter(
    (p) => !linked.identities.some((i) => i.provider === p.id),
  );
  const rows = sessions.map((s) => [
    s.kind === 'browser_session' ? 'Browser sign-in' : 'App sign-in (refresh token)',
    s.clients.map((c) => c.name ?? c.client_id).join(', ') || '—',
    when(s.created_at),
    when(s.last_used_at),
    html`<form method="post" action="/console/account/sessions/${s.id}/end">
      ${csrf}
      <button type="submit" class="secondary">End</button>
    </form>`,
  ]);
  const body = html`${notice('success', input.success ?? null)}
    ${notice('error', input.error ?? null)}
    <section aria-labelledby="acct-sessions">
      <h2 id="acct-sessions">Where you are signed in</h2>
      ${table('Your sign-ins', ['Kind', 'Apps', 'Signed in', 'Last used', ''], rows, 'No sign-ins.')}
      <form method="post" action="/console/account/sessions/end-all">
        ${csrf}
        <button type="submit" class="secondary">End every sign-in</button>
      </form>
    </section>
    ${
      linked.providers.length === 0 && linked.identities.length === 0
        ? null
        : html`<section aria-labelledby="acct-providers">
            <h2 id="acct-providers">Sign-in providers</h2>
            ${table(
              'Linked sign-in providers',
              ['Provider', 'Address there', 'Linked', 'Last used', ''],
              identityRows,
              'No provider is linked.',
            )}
            ${linkable.map(
              (p) =>
                html`<form method="post" action="/console/account/identities/link">
                  ${csrf}
                  <input type="hidden" name="provider" value="${p.id}" />
                  <button type="submit" class="secondary">Link ${p.name}</button>
                </form>`,
            )}
          </section>`
    }
    <section aria-labelledby="acct-password">
      <h2 id="acct-password">Change password</h2>
      <form method="post" action="/console/account/password">
        ${csrf}
        <input type="hidden" name="username" autocomplete="username" value="${pc.viewer.email}" />
        <label for="pw-current">Current password</label>
        <input
          id="pw-current"
          name="current_password"
          type="password"
          autocomplete="current-password"
          required
        />
        <label for="pw-new">New password (at least 8 characters)</label>
        <input
          id="pw-new"
          name="new_password"
          type="password"
          autocomplete="new-password"
          minlength="8"
          required
        />
        <label for="pw-confirm">New password again</label>
        <input
          id="pw-confirm"
          name="new_password_confirm"
          type="password"
          autocomplete="new-password"
          minlength="8"
          required
        />
        <button type="submit">Change password</button>
      </form>
    </section>
    <section aria-labelledby="acct-email">
      <h2 id="acct-email">Change e-mail address</h2>
      <p>
        A link goes to the new address; your account keeps ${pc.viewer.email} until you open it.
      </p>
      <form method="post" action="/console/account/email">
        ${csrf}
        <label for="em-new">New address</label>
        <input id="em-new" name="email" type="email" autocomplete="email" required />
        <label for="em-current">Current password</label>
        <input
          id="em-current"
          name="current_password"
          type="password"
          autocomplete="current-password"
          required
        />
        <button type="submit">Send confirmation link</button>
      </form>
    </section>
    <section aria-labelledby="acct-delete">
      <h2 id="acct-delete">Delete your account</h2>
      <p>
        Your API keys are revoked, your apps disabled and every sign-in ended; you cannot sign in
        again. Usage and statements stay with the operator.
      </p>
      <form method="post" action="/console/account/delete">
        ${csrf}
        <label for="del-confirm">Type delete to confirm</label>
        <input id="del-confirm" name="confirm" type="text" autocomplete="off" required />
        <label for="del-current">Current password</label>
        <input
          id="del-current"
          name="current_password"
          type="password"
          autocomplete="current-password"
          required
        />
        <button type="submit" class="danger">Delete my account</button>
      </form>
    </section>`;
  return {
    title: 'Your account',
    active: 'account',
    body,
    ...(input.status ? { status: input.status } : {}),
  };
}
