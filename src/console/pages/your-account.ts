// "Your account" (issue #18 item 7): the signed-in holder's sign-ins (end one or all), and
// forms to change the password, change the e-mail address (a link goes to the new one) and
// delete the account. Through /v1/account/…, which only an account's own credential may call:
// an operator's console session (admin scope) is refused there, and this page says so.
import { apiMessage, field, ok } from '../framework.ts';
import type { PageContext, PageResult, createFramework } from '../framework.ts';
import QRCode from 'qrcode';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
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
  totp_removed: 'The authenticator app is off.',
  passkey_added: 'The passkey is added: use it to sign in, with or without your password.',
  passkey_renamed: 'The passkey is renamed.',
  passkey_removed: 'The passkey is removed.',
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

interface PasskeyView {
  id: string;
  name: string;
  device_type: string;
  created_at: string;
  last_used_at: string | null;
}

// The ids /v1/account/passkeys gives out (second-factor.ts newId('pk')).
const PASSKEY_ID = /^pk_[0-9A-Za-z]{1,40}$/;
// The browser-side helper identity serves for the sign-in pages (second-factor-pages.ts).
const PASSKEY_SCRIPT = '/sign-in/passkey.js';

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

  framework.action('/console/account/totp/begin', async (ac) => {
    const response = await ac.api('POST', '/v1/account/second-factor/totp');
    if (response.status !== 201) return render(ac, { error: apiMessage(response), status: 400 });
    const { secret, otpauth_uri: uri } = response.body as { secret: string; otpauth_uri: string };
    return render(ac, { setup: await totpSetup(ac, secret, uri) });
  });

  framework.action('/console/account/totp/confirm', async (ac) => {
    const response = await ac.api('POST', '/v1/account/second-factor/totp/confirm', {
      code: field(ac.form, 'code'),
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    const codes = (response.body as { recovery_codes: string[] }).recovery_codes;
    return render(ac, {
      success: 'The authenticator app is on: sign-ins ask for its code after the password.',
      setup: recoveryCodes(codes),
    });
  });

  framework.action('/console/account/totp/remove', async (ac) => {
    const response = await ac.api('POST', '/v1/account/second-factor/totp/remove', {
      code: field(ac.form, 'code'),
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=totp_removed' };
  });

  framework.action('/console/account/recovery-codes', async (ac) => {
    const response = await ac.api('POST', '/v1/account/second-factor/recovery-codes');
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    const codes = (response.body as { recovery_codes: string[] }).recovery_codes;
    return render(ac, {
      success: 'New recovery codes: the old ones no longer work.',
      setup: recoveryCodes(codes),
    });
  });

  framework.action('/console/account/passkeys/begin', async (ac) => {
    const response = await ac.api('POST', '/v1/account/passkeys/options');
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    const options = (response.body as { options: unknown }).options;
    return render(ac, { setup: passkeySetup(ac, options) });
  });

  framework.action('/console/account/passkeys/add', async (ac) => {
    let answer: unknown;
    try {
      answer = JSON.parse(field(ac.form, 'response'));
    } catch {
      return render(ac, { error: 'The browser sent no passkey; try again.', status: 400 });
    }
    const response = await ac.api('POST', '/v1/account/passkeys', {
      name: field(ac.form, 'name') || 'Passkey',
      response: answer,
    });
    if (response.status !== 201) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=passkey_added' };
  });

  framework.action('/console/account/passkeys/:id/rename', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!PASSKEY_ID.test(id)) return render(ac, { error: 'No such passkey.', status: 400 });
    const response = await ac.api('PATCH', `/v1/account/passkeys/${id}`, {
      name: field(ac.form, 'name'),
    });
    if (response.status !== 200) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=passkey_renamed' };
  });

  framework.action('/console/account/passkeys/:id/remove', async (ac) => {
    const id = ac.ctx.params.id!;
    if (!PASSKEY_ID.test(id)) return render(ac, { error: 'No such passkey.', status: 400 });
    const response = await ac.api('DELETE', `/v1/account/passkeys/${id}`);
    if (response.status !== 204) return render(ac, { error: apiMessage(response), status: 400 });
    return { redirect: '/console/account?done=passkey_removed' };
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

async function totpSetup(pc: PageContext, secret: string, uri: string): Promise<Html> {
  const svg = await QRCode.toString(uri, { type: 'svg', margin: 1 });
  const csrf = csrfField(pc.viewer);
  return html`<section aria-labelledby="totp-setup">
    <h2 id="totp-setup">Set up an authenticator app</h2>
    <p>Scan the code with an authenticator app, then type the 6-digit code it shows.</p>
    <img
      src="data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}"
      width="200"
      height="200"
      alt="QR code of the key below"
    />
    <p>Or enter this key by hand: <code id="totp-secret">${secret}</code></p>
    <form method="post" action="/console/account/totp/confirm">
      ${csrf}
      <label for="totp-code">Code from the app</label>
      <input
        id="totp-code"
        name="code"
        type="text"
        inputmode="numeric"
        autocomplete="one-time-code"
        pattern="[0-9]{6}"
        maxlength="6"
        required
      />
      <button type="submit">Turn on</button>
    </form>
  </section>`;
}

function recoveryCodes(codes: string[]): Html {
  return html`<section aria-labelledby="recovery-codes">
    <h2 id="recovery-codes">Your recovery codes</h2>
    <p>
      Each code signs in once if you lose your authenticator app or passkeys. They are shown only
      now: print them or keep them in a password manager.
    </p>
    <ul id="recovery-code-list">
      ${codes.map((c) => html`<li><code>${c}</code></li>`)}
    </ul>
  </section>`;
}

function passkeySetup(pc: PageContext, options: unknown): Html {
  return html`<section aria-labelledby="passkey-setup">
    <h2 id="passkey-setup">Add a passkey</h2>
    <form method="post" action="/console/account/passkeys/add">
      ${csrfField(pc.viewer)}
      <label for="passkey-name">Name (to tell your passkeys apart)</label>
      <input id="passkey-name" name="name" type="text" maxlength="64" value="Passkey" required />
      <input type="hidden" id="passkey-response" name="response" value="" />
      <button
        type="button"
        data-passkey="create"
        data-field="passkey-response"
        data-options="${JSON.stringify(options)}"
        hidden
      >
        Create the passkey
      </button>
      <noscript><p>Adding a passkey needs JavaScript in this browser.</p></noscript>
      <p id="passkey-response-status" role="status"></p>
    </form>
    <script src="${PASSKEY_SCRIPT}" defer></script>
  </section>`;
}

function secondFactorSection(
  pc: PageContext,
  state: { totp: string; recovery_codes_left: number; passkeys: PasskeyView[] },
): Html {
  const csrf = csrfField(pc.viewer);
  const totp =
    state.totp === 'on'
      ? html`<p>An authenticator app is on. ${state.recovery_codes_left} recovery codes left.</p>
          <form method="post" action="/console/account/recovery-codes">
            ${csrf}
            <button type="submit" class="secondary">New recovery codes</button>
          </form>
          <form method="post" action="/console/account/totp/remove">
            ${csrf}
            <label for="totp-remove-code">Code from the app (to turn it off)</label>
            <input
              id="totp-remove-code"
              name="code"
              type="text"
              inputmode="numeric"
              autocomplete="one-time-code"
              maxlength="6"
              required
            />
            <button type="submit" class="danger">Turn off the authenticator app</button>
          </form>`
      : html`<form method="post" action="/console/account/totp/begin">
          ${csrf}
          <button type="submit">Set up an authenticator app</button>
        </form>`;
  const rows = state.passkeys.map((k) => [
    html`<form method="post" action="/console/account/passkeys/${k.id}/rename">
      ${csrf}
      <input
        name="name"
        type="text"
        maxlength="64"
        value="${k.name}"
        aria-label="Name of passkey ${k.name}"
        required
      />
      <button type="submit" class="secondary">Rename</button>
    </form>`,
    k.device_type === 'multiDevice' ? 'Synced' : 'This device only',
    when(k.created_at),
    when(k.last_used_at),
    html`<form method="post" action="/console/account/passkeys/${k.id}/remove">
      ${csrf}
      <button type="submit" class="secondary">Remove ${k.name}</button>
    </form>`,
  ]);
  return html`<section aria-labelledby="acct-second-factor">
    <h2 id="acct-second-factor">Second factor</h2>
    ${totp}
    <h3>Passkeys</h3>
    ${table('Your passkeys', ['Name', 'Kind', 'Added', 'Last used', ''], rows, 'No passkeys.')}
    <form method="post" action="/console/account/passkeys/begin">
      ${csrf}
      <button type="submit">Add a passkey</button>
    </form>
  </section>`;
}

async function render(
  pc: PageContext,
  input: { success?: string | null; error?: string; status?: number; setup?: Html },
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
  const factors = ok(await pc.api('GET', '/v1/account/second-factor')).body as {
    totp: string;
    recovery_codes_left: number;
    passkeys: PasskeyView[];
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
    ${notice('error', input.error ?? null)} ${input.setup ?? null}
    ${secondFactorSection(pc, factors)}
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
