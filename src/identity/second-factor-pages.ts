// The second-factor pages of the sign-in (issue #18 item 4): ask for a TOTP code, a recovery
// code or a passkey; set up an authenticator app when one is required; show recovery codes
// once; sign in with a passkey alone. Same look as pages.ts. The only script is
// /sign-in/passkey.js (same origin, allowed by the pages' `script-src 'self'`); the QR code is
// an SVG in a data: URL (`img-src data:`).
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import { alert, layout } from './pages.ts';

export const PASSKEY_SCRIPT_PATH = '/sign-in/passkey.js';

function passkeyButton(input: {
  mode: 'create' | 'get';
  options: unknown;
  label: string;
  field: string;
  secondary?: boolean;
}): Html {
  return html`<input type="hidden" id="${input.field}" name="response" value="" />
    <button
      type="button"
      ${input.secondary === true ? html`class="secondary"` : null}
      data-passkey="${input.mode}"
      data-field="${input.field}"
      data-options="${JSON.stringify(input.options)}"
      hidden
    >
      ${input.label}
    </button>
    <noscript><p>Passkeys need JavaScript in this browser.</p></noscript>
    <p id="${input.field}-status" role="status"></p>`;
}

const script = html`<script src="${PASSKEY_SCRIPT_PATH}" defer></script>`;

export function secondFactorPage(input: {
  base: string;
  csrf: string;
  appName: string;
  error: string | null;
  totp: boolean;
  recoveryCodes: boolean;
  passkeyOptions: unknown;
}): string {
  return layout(
    'Second factor',
    html`<h1>Confirm it is you</h1>
      <p>Your password was right. ${input.appName} needs a second factor too.</p>
      ${alert(input.error)}
      ${
        input.totp
          ? html`<form method="post" action="${input.base}/totp">
              <input type="hidden" name="csrf" value="${input.csrf}" />
              <label for="code">Code from your authenticator app</label>
              <input
                id="code"
                name="code"
                type="text"
                inputmode="numeric"
                autocomplete="one-time-code"
                pattern="[0-9]{6}"
                maxlength="6"
                required
                autofocus
              />
              <button type="submit">Verify</button>
            </form>`
          : null
      }
      ${
        input.passkeyOptions === null
          ? null
          : html`<form method="post" action="${input.base}/passkey">
              <input type="hidden" name="csrf" value="${input.csrf}" />
              ${passkeyButton({
                mode: 'get',
                options: input.passkeyOptions,
                label: 'Use a passkey',
                field: 'passkey-response',
                secondary: input.totp,
              })}
            </form>`
      }
      ${
        input.recoveryCodes
          ? html`<form method="post" action="${input.base}/recovery">
              <input type="hidden" name="csrf" value="${input.csrf}" />
              <label for="recovery">Or a recovery code</label>
              <input
                id="recovery"
                name="code"
                type="text"
                autocomplete="off"
                spellcheck="false"
                maxlength="32"
                required
              />
              <button type="submit" class="secondary">Use the recovery code</button>
            </form>`
          : null
      }
      ${input.passkeyOptions === null ? null : script}`,
  );
}

export function enrolPage(input: {
  action: string;
  csrf: string;
  why: 'required' | 'requested';
  secret: string;
  uri: string;
  qrDataUrl: string;
  error: string | null;
}): string {
  return layout(
    'Set up a second factor',
    html`<h1>Set up a second factor</h1>
      <p>
        ${
          input.why === 'required'
            ? 'This tollhouse requires a second factor for operator accounts.'
            : 'The app you are signing in to asks for a second factor.'
        }
        Scan the code with an authenticator app, then type the 6-digit code it shows.
      </p>
      ${alert(input.error)}
      <img src="${input.qrDataUrl}" width="200" height="200" alt="QR code of the key below" />
      <p>
        Or enter this key by hand: <code id="totp-secret">${input.secret}</code><br />
        <a href="${input.uri}">Open in an authenticator app on this device</a>
      </p>
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        <label for="code">Code from your authenticator app</label>
        <input
          id="code"
          name="code"
          type="text"
          inputmode="numeric"
          autocomplete="one-time-code"
          pattern="[0-9]{6}"
          maxlength="6"
          required
          autofocus
        />
        <button type="submit">Turn on</button>
      </form>`,
  );
}

export function recoveryCodesPage(input: {
  action: string;
  csrf: string;
  codes: string[];
}): string {
  return layout(
    'Recovery codes',
    html`<h1>Save your recovery codes</h1>
      <p>
        Each code signs in once if you lose your authenticator app. They are shown only now: print
        them or keep them in a password manager.
      </p>
      <ul id="recovery-codes">
        ${input.codes.map((c) => html`<li><code>${c}</code></li>`)}
      </ul>
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        <button type="submit">I saved them, continue</button>
      </form>`,
  );
}

export function passkeySignInPage(input: {
  action: string;
  csrf: string;
  appName: string;
  options: unknown;
  error: string | null;
  backTo: string;
}): string {
  return layout(
    'Sign in with a passkey',
    html`<h1>Sign in to ${input.appName} with a passkey</h1>
      ${alert(input.error)}
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        ${passkeyButton({
          mode: 'get',
          options: input.options,
          label: 'Choose a passkey',
          field: 'passkey-response',
        })}
      </form>
      <p class="links"><a href="${input.backTo}">Sign in with a password instead</a></p>
      ${script}`,
  );
}
