// Server-rendered pages: login, consent, device code, logout, errors. Plain accessible HTML
// (labels, landmarks, lang, focus order), inline CSS, no scripts or external assets. Pure.
// Markup is made only with the `html` tag, which escapes every value; the forms oidc-provider
// renders (with its own CSRF field) are the one trusted input, passed through `raw`.
import { html, raw } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import { hash } from 'node:crypto';

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
main{max-width:26rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #71717a;border-radius:.25rem}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:.25rem;background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#e4e4e7;color:#18181b}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.error{color:#991b1b;background:#fee2e2;padding:.5rem;border-radius:.25rem}
.links{margin-top:1.5rem;font-size:.95rem}
a{color:#1d4ed8}
ul{padding-left:1.2rem}
`;

/**
 * The sign-in pages' CSP (login, consent, device, logout, errors — ours or oidc-provider's):
 * nothing loads but the one inline style, allowed by its hash, and no page can be framed.
 * Unlike the console's, it has no `form-action`: Chrome applies it to the redirects after a
 * form is sent, and the consent and logout forms end in a redirect to the app's own origin.
 * `script-src 'self'` serves no script of ours; it is there so oidc-provider can add the hash
 * of the one inline script its form_post response page needs (its pushInlineSha).
 */
export const SIGN_IN_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${hash('sha256', STYLE, 'base64')}'`,
  "script-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

// Built apart from the page template so that formatting the template never changes the
// element's text: a Content-Security-Policy may allow this style by the hash of its content.
const STYLE_ELEMENT = raw(`<style>${STYLE}</style>`);

export function layout(title: string, body: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>${title} · tollhouse</title>
        ${STYLE_ELEMENT}
      </head>
      <body>
        <main>${body}</main>
      </body>
    </html> `.value;
}

export function alert(message: string | null): Html | null {
  return message === null ? null : html`<p class="error" role="alert">${message}</p>`;
}

export function loginPage(input: {
  action: string;
  csrf: string;
  appName: string;
  email: string;
  error: string | null;
  /** Issue #18: "forgot password" and, with open sign-up, "create an account". */
  links?: { forgotPassword: string | null; signUp: string | null };
  /** First run: no operator exists yet (shown on the console's sign-in only). */
  noOperator?: boolean;
  /** Issue #18: "Continue with …" for each upstream provider (a form posting `csrf`). */
  upstream?: Array<{ name: string; action: string }>;
  /** Issue #18 item 4: where "Sign in with a passkey" posts (second-factor-flow.ts). */
  passkeyAction?: string;
}): string {
  const forgot = input.links?.forgotPassword ?? null;
  const signUp = input.links?.signUp ?? null;
  return layout(
    'Sign in',
    html`<h1>Sign in to continue to ${input.appName}</h1>
      ${
        input.noOperator === true
          ? html`<p role="note" class="first-run">
              No operator yet: open the setup link printed in the server log.
            </p>`
          : null
      }
      ${alert(input.error)}
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="username"
          required
          value="${input.email}"
          autofocus
        />
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
        />
        <button type="submit">Sign in</button>
      </form>
      ${(input.upstream ?? []).map(
        (p) =>
          html`<form method="post" action="${p.action}" class="upstream">
            <input type="hidden" name="csrf" value="${input.csrf}" />
            <button type="submit" class="secondary">Continue with ${p.name}</button>
          </form>`,
      )}
      ${
        input.passkeyAction === undefined
          ? null
          : html`<form method="post" action="${input.passkeyAction}">
              <input type="hidden" name="csrf" value="${input.csrf}" />
              <button type="submit" class="secondary">Sign in with a passkey</button>
            </form>`
      }
      ${
        forgot === null && signUp === null
          ? null
          : html`<p class="links">
              ${forgot === null ? null : html`<a href="${forgot}">Forgot your password?</a>`}
              ${forgot !== null && signUp !== null ? html`<br />` : null}
              ${signUp === null ? null : html`<a href="${signUp}">Create an account</a>`}
            </p>`
      }`,
  );
}

const SCOPE_TEXT: Record<string, string> = {
  openid: 'Know who you are',
  email: 'See your email address',
  profile: 'See your name',
  offline_access: 'Stay signed in when you are not using it',
  gateway: 'Use the AI API on your account (this can spend your balance)',
  signer: 'Request payments from your account',
  'usage:read': 'See your usage',
  'usage:write': 'Record usage on your account',
  'billing:read': 'See your billing and balance',
  admin: 'Administer this tollhouse (everything an operator can do)',
};

export function consentPage(input: {
  action: string;
  abortAction: string;
  csrf: string;
  appName: string;
  scopes: string[];
}): string {
  const items = input.scopes.map(
    (s) => html`<li><strong>${s}</strong>: ${SCOPE_TEXT[s] ?? s}</li> `,
  );
  return layout(
    'Allow access',
    html`<h1>${input.appName} wants access to your account</h1>
      <p>If you allow it, ${input.appName} will be able to:</p>
      <ul>
        ${items}
      </ul>
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        <button type="submit">Allow</button>
      </form>
      <form method="post" action="${input.abortAction}">
        <input type="hidden" name="csrf" value="${input.csrf}" />
        <button type="submit" class="secondary">Deny</button>
      </form>`,
  );
}

export function deviceInputPage(form: string, error: string | null): string {
  // oidc-provider's form carries the xsrf field and the code input; give the input an id for
  // its label and drop the inline script (no scripts on these pages).
  const accessible = form
    .replace(/ onfocus="[^"]*"/, '')
    .replace(
      'name="user_code"',
      'id="user_code" name="user_code" autocapitalize="characters" spellcheck="false"',
    );
  return layout(
    'Connect a device',
    html`<h1>Connect a device</h1>
      ${alert(error)}
      <label for="user_code">Enter the code shown on your device</label>
      ${raw(accessible)}
      <button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

export function deviceConfirmPage(form: string, appName: string, userCode: string): string {
  return layout(
    'Confirm the device',
    html`<h1>Connect ${appName}?</h1>
      <p>Check that your device shows the code <strong>${userCode}</strong>.</p>
      ${raw(form)}
      <button type="submit" form="op.deviceConfirmForm">Continue</button>
      <button type="submit" form="op.deviceConfirmForm" name="abort" value="yes" class="secondary">
        Cancel
      </button>`,
  );
}

export function deviceSuccessPage(appName: string): string {
  return layout(
    'Device connected',
    html`<h1>Device connected</h1>
      <p>${appName} is now signed in. You can close this page and return to your device.</p>`,
  );
}

export function logoutPage(form: string, appName: string | null): string {
  return layout(
    'Sign out',
    html`<h1>Sign out${appName === null ? '' : ` of ${appName}`}?</h1>
      ${raw(form)}
      <button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
      <button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`,
  );
}

export function loggedOutPage(appName: string | null): string {
  return layout(
    'Signed out',
    html`<h1>You are signed out</h1>
      <p>
        ${appName === null ? 'You can close this page.' : `You have signed out of ${appName}.`}
      </p>`,
  );
}

export function errorPage(error: string, description: string): string {
  return layout(
    'Something went wrong',
    html`<h1>Something went wrong</h1>
      <p role="alert"><strong>${error}</strong>${description ? `: ${description}` : ''}</p>
      <p>Go back to the app and try again.</p>`,
  );
}
