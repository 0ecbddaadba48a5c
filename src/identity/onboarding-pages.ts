// The onboarding pages (issue #18): sign up, confirm an address, forgot password, set a new
// password, accept an invitation. The same layout, style and CSP as the sign-in pages
// (pages.ts): plain accessible HTML, no scripts, every value escaped by the `html` tag. Pure.
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import { alert, layout } from './pages.ts';

function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="csrf" value="${csrf}" />`;
}

function newPasswordFields(): Html {
  return html`<label for="password">New password</label>
    <input
      id="password"
      name="password"
      type="password"
      autocomplete="new-password"
      minlength="8"
      maxlength="1024"
      required
      aria-describedby="password-hint"
    />
    <p id="password-hint">At least 8 characters. A few unrelated words make a strong one.</p>
    <label for="password_confirm">New password, again</label>
    <input
      id="password_confirm"
      name="password_confirm"
      type="password"
      autocomplete="new-password"
      required
    />`;
}

function continueLink(href: string | null): Html | null {
  return href === null
    ? null
    : html`<p class="links"><a href="${href}">Continue to sign in</a></p>`;
}

export function signUpPage(input: {
  action: string;
  csrf: string;
  email: string;
  name: string;
  domains: readonly string[];
  error: string | null;
}): string {
  return layout(
    'Create an account',
    html`<h1>Create an account</h1>
      ${alert(input.error)}
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="email"
          required
          value="${input.email}"
          autofocus
          ${input.domains.length > 0 ? html`aria-describedby="email-hint"` : null}
        />
        ${
          input.domains.length > 0
            ? html`<p id="email-hint">Addresses at ${input.domains.join(', ')} only.</p>`
            : null
        }
        <label for="name">Name (optional)</label>
        <input id="name" name="name" type="text" autocomplete="name" value="${input.name}" />
        ${newPasswordFields()}
        <button type="submit">Create account</button>
      </form>`,
  );
}

/** After sign-up: the same page whether or not the address already had an account. */
export function signUpDonePage(input: {
  email: string;
  emailConfigured: boolean;
  signIn: string | null;
}): string {
  return layout(
    'Check your inbox',
    input.emailConfigured
      ? html`<h1>Check your inbox</h1>
          <p>
            We sent a message to <strong>${input.email}</strong>. Open the link in it to confirm the
            address; until then the account cannot use the API.
          </p>
          <p>No message within a few minutes? Look in the spam folder, then sign up again.</p>
          ${continueLink(input.signIn)}`
      : html`<h1>Confirm your address with the operator</h1>
          <p>
            If <strong>${input.email}</strong> is new here, its account is created. E-mail is not
            configured on this server, so no confirmation message was sent: ask the operator of this
            service to confirm your address. Until then the account cannot use the API.
          </p>
          ${continueLink(input.signIn)}`,
  );
}

export function closedPage(title: string, text: string): string {
  return layout(
    title,
    html`<h1>${title}</h1>
      <p role="alert">${text}</p>`,
  );
}

export function forgotPasswordPage(input: {
  action: string;
  csrf: string;
  email: string;
  error: string | null;
}): string {
  return layout(
    'Forgot your password?',
    html`<h1>Forgot your password?</h1>
      ${alert(input.error)}
      <p>Enter your account's email. We will send you a link to choose a new password.</p>
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="email"
          required
          value="${input.email}"
          autofocus
        />
        <button type="submit">Send the link</button>
      </form>`,
  );
}

/** After "forgot password": the same page whether or not the address has an account. */
export function resetRequestedPage(email: string, minutes: number): string {
  return layout(
    'Check your inbox',
    html`<h1>Check your inbox</h1>
      <p>
        If <strong>${email}</strong> has an account here, a link to choose a new password is on its
        way. It works once, for ${minutes} minutes.
      </p>`,
  );
}

export function emailNotConfiguredPage(what: string): string {
  return layout(
    'E-mail is not configured',
    html`<h1>E-mail is not configured</h1>
      <p role="alert">
        This server cannot send e-mail, so ${what} by e-mail is not available. Ask the operator of
        this service for a link.
      </p>`,
  );
}

export function resetPasswordPage(input: {
  action: string;
  csrf: string;
  token: string;
  email: string;
  error: string | null;
}): string {
  return layout(
    'Choose a new password',
    html`<h1>Choose a new password</h1>
      ${alert(input.error)}
      <p>For <strong>${input.email}</strong>. Every other sign-in session will end.</p>
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <input type="hidden" name="token" value="${input.token}" />
        <input type="hidden" name="username" autocomplete="username" value="${input.email}" />
        ${newPasswordFields()}
        <button type="submit">Set the password</button>
      </form>`,
  );
}

export function invitationPage(input: {
  action: string;
  csrf: string;
  token: string;
  email: string;
  name: string;
  error: string | null;
}): string {
  return layout(
    'Create your account',
    html`<h1>Create your account</h1>
      ${alert(input.error)}
      <p>You are invited as <strong>${input.email}</strong>. Choose a password to finish.</p>
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <input type="hidden" name="token" value="${input.token}" />
        <input type="hidden" name="username" autocomplete="username" value="${input.email}" />
        <label for="name">Name (optional)</label>
        <input id="name" name="name" type="text" autocomplete="name" value="${input.name}" />
        ${newPasswordFields()}
        <button type="submit">Create account</button>
      </form>`,
  );
}

/** The confirmation link opens this form (a POST confirms): a mail scanner that follows links
 * must not use up the link before its owner does. */
export function verifyEmailPage(input: {
  action: string;
  csrf: string;
  token: string;
  email: string;
}): string {
  return layout(
    'Confirm your address',
    html`<h1>Confirm your address</h1>
      <p>Confirm that <strong>${input.email}</strong> is your address.</p>
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <input type="hidden" name="token" value="${input.token}" />
        <button type="submit">Confirm</button>
      </form>`,
  );
}

export function donePage(title: string, text: string, signIn: string | null): string {
  return layout(
    title,
    html`<h1>${title}</h1>
      <p>${text}</p>
      ${continueLink(signIn)}`,
  );
}

export function invalidLinkPage(message: string): string {
  return layout(
    'This link does not work',
    html`<h1>This link does not work</h1>
      <p role="alert">${message}</p>
      <p>
        Ask for a new one: sign up again, use "Forgot your password?", or ask whoever invited you.
      </p>`,
  );
}

/** First run: the one-time setup link's form, which creates the first operator. */
export function setupPage(input: {
  action: string;
  csrf: string;
  token: string;
  email: string;
  name: string;
  error: string | null;
}): string {
  return layout(
    'Create the first operator',
    html`<h1>Create the first operator</h1>
      ${alert(input.error)}
      <p>
        No operator exists yet. This account administers this tollhouse: accounts, plans, the
        signer. The link works once.
      </p>
      <form method="post" action="${input.action}">
        ${csrfField(input.csrf)}
        <input type="hidden" name="token" value="${input.token}" />
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
        <label for="name">Name (optional)</label>
        <input id="name" name="name" type="text" autocomplete="name" value="${input.name}" />
        ${newPasswordFields()}
        <button type="submit">Create the operator</button>
      </form>`,
  );
}
