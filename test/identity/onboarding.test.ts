// Issue #18: customers onboard themselves. Every flow runs against a real SMTP server in this
// process (smtp.ts): the test reads the message that arrived, takes the link out of its text
// part and follows it over real HTTP, with a browser that keeps cookies and submits forms.
// Each flow is also attacked: used and expired links, another account's link, a link of
// another kind, malformed tokens, and the enumeration question ("has this address an
// account?"), which must get the same status and body either way.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityCommands } from '../../src/identity/index.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { Browser, browserLogin, discover, photoStudio, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { linkIn, startSmtp } from './smtp.ts';
import type { TestSmtp } from './smtp.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const NEVER = 'http://127.0.0.1:9/never';
const NEW_PASSWORD = 'a brand new passphrase';

let smtp: TestSmtp;
let t: IdentityTestApp;
let operator: { accountId: string; secret: string };
let rp: oidc.Configuration;
let counter = 0;
const unique = (name: string) => `${name}-${Date.now()}-${++counter}@example.com`;

beforeAll(async () => {
  smtp = await startSmtp();
  t = await startIdentityApp({
    SIGNUP_POLICY: 'open',
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Example API <no-reply@example.com>',
    EMAILS_PER_ADDRESS_PER_HOUR: '3',
    SIGNUP_ATTEMPTS_PER_IP_PER_HOUR: '1000',
    LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: '1000',
  });
  operator = await adminKey(t);
  rp = await photoStudio(t, operator.accountId, REDIRECT);
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});

/** Opens a page; returns its URL and HTML. */
async function open(browser: Browser, url: string) {
  const response = await browser.request(url.startsWith('http') ? url : `${t.url}${url}`);
  return {
    url: response.url || url,
    status: response.status,
    html: await response.text(),
    response,
  };
}

/** Opens `path`'s form and submits it with `fields`; returns status and HTML of the answer. */
async function fillIn(browser: Browser, url: string, fields: Record<string, string>) {
  const full = url.startsWith('http') ? url : `${t.url}${url}`;
  const page = await open(browser, full);
  expect(page.status, page.html).toBe(200);
  const action = /<form method="post" action="([^"]*)"/.exec(page.html)?.[1];
  if (action === undefined) throw new Error(`no form on ${full}:\n${page.html}`);
  const result = await browser.submit(
    full,
    page.html,
    action.replaceAll('&amp;', '&'),
    fields,
    NEVER,
  );
  return {
    status: result.response.status,
    html: await result.response.text(),
    headers: result.response.headers,
  };
}

async function signUp(email: string, password = PASSWORD, browser = new Browser()) {
  return fillIn(browser, '/account/sign-up', {
    email,
    name: 'Ada',
    password,
    password_confirm: password,
  });
}

/** Signs in on the provider's login page; true when the password was accepted. */
async function signsIn(email: string, password: string): Promise<boolean> {
  const browser = new Browser();
  const p = await pkce();
  const page = await browser.follow(
    oidc.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
      state: p.state,
    }).href,
    REDIRECT,
  );
  const html = await page.response.text();
  const result = await browser.submit(page.url, html, '/login', { email, password }, REDIRECT);
  if (result.url.startsWith(REDIRECT)) return true;
  const text = await result.response.text();
  if (result.response.status === 401) return false;
  expect(text).toContain('/confirm"');
  return true;
}

/** Replaces the address typed into a form, so two answers can be compared byte for byte. */
function without(html: string, ...emails: string[]): string {
  return emails.reduce((text, email) => text.replaceAll(email, '<email>'), html);
}

const MALFORMED = [
  '',
  'x',
  'thpr_short',
  `thpr_${'A'.repeat(42)}`,
  `thpr_${'A'.repeat(44)}`,
  `thpr_${'A'.repeat(42)}!`,
  `thve_${'A'.repeat(43)}`,
  `thpr_${'A'.repeat(43)}`,
  `<script>alert(1)</script>`,
  `thpr_${'A'.repeat(43)}' OR '1'='1`,
];

describe('sign-up with open policy', () => {
  it('signs up, confirms the address by the e-mailed link, and signs in', async () => {
    const email = unique('ada');
    const browser = new Browser();
    const form = await open(browser, '/account/sign-up');
    expect(form.status).toBe(200);
    expect(form.response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(form.response.headers.get('cache-control')).toBe('no-store');
    const done = await signUp(email, PASSWORD, browser);
    expect(done.status).toBe(200);
    expect(done.html).toContain('Check your inbox');

    const mail = await smtp.next(email, /Confirm your e-mail address/);
    expect(mail.from).toBe('no-reply@example.com');
    const link = linkIn(mail, `${t.url}/account/verify-email?token=`);
    // The HTML part carries the same link, escaped, and no script or remote content.
    expect(mail.html).toContain(link.replaceAll('&', '&amp;'));
    expect(mail.html).not.toMatch(/<script|<img|src=/);
    const account = await t.app.identity.accounts.find(email);
    expect(account.emailVerified).toBe(false);
    expect(account.name).toBe('Ada');

    // Unconfirmed: the password works already.
    expect(await signsIn(email, PASSWORD)).toBe(true);

    // Opening the link uses nothing up (a mail scanner may open it first); the form does.
    const confirm = await fillIn(browser, link, {});
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain('Address confirmed');
    expect((await t.app.identity.accounts.find(email)).emailVerified).toBe(true);
    expect(await signsIn(email, PASSWORD)).toBe(true);

    // Used once: the link and a replayed POST both fail, with the one "invalid link" answer.
    const again = await open(new Browser(), link);
    expect(again.status).toBe(400);
    expect(again.html).toContain('This link does not work');
  });

  it('gives an unconfirmed account no gateway or signer credential until it confirms', async () => {
    const email = unique('grace');
    await signUp(email);
    const mail = await smtp.next(email, /Confirm/);
    const account = await t.app.identity.accounts.find(email);

    // A key without spending scopes is fine; one with gateway or signer is EmailNotVerified.
    const reader = await issueKey(t, account.id, { scopes: ['usage:read'] });
    for (const scopes of [['gateway'], ['signer'], ['usage:read', 'gateway']]) {
      const refused = await call(t, 'POST', '/v1/keys', {
        headers: bearer(reader.secret),
        body: { name: 'k', scopes },
      });
      expect(refused.status).toBe(403);
      expect(refused.body.error).toBe('EmailNotVerified');
      expect(refused.body.message).toMatch(/confirm/i);
    }
    // Adding the scope to an existing key is refused the same way.
    const widened = await call(t, 'PATCH', `/v1/keys/${reader.key.id}`, {
      headers: bearer(reader.secret),
      body: { scopes: ['usage:read', 'gateway'] },
    });
    expect(widened.status).toBe(403);
    expect(widened.body.error).toBe('EmailNotVerified');

    // An app of the account gets tokens, but they carry no gateway scope while unconfirmed.
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'Backend', kind: 'machine', ownerAccountId: account.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, clientSecret);
    const token = (await oidc.clientCredentialsGrant(config, { scope: 'gateway' })).access_token;
    const before = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(token) });
    expect(before.status).toBe(403);

    await fillIn(new Browser(), linkIn(mail, `${t.url}/account/verify-email?token=`), {});
    // The same token gains the scope at once (the verifier follows the change).
    const after = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(token) });
    expect(after.status).toBe(200);
    expect(after.body.scopes).toContain('gateway');
    // And the account may now hold a gateway key (the reader key still cannot grant what it
    // lacks: that is the scope rule, no longer EmailNotVerified).
    const widenedNow = await call(t, 'POST', '/v1/keys', {
      headers: bearer(reader.secret),
      body: { name: 'k', scopes: ['gateway'] },
    });
    expect(widenedNow.status).toBe(403);
    expect(widenedNow.body.error).toBe('Forbidden');
    const key = await issueKey(t, account.id, { scopes: ['gateway', 'signer'] });
    expect(key.key.scopes).toEqual(['gateway', 'signer']);
  });

  it('answers a sign-up with a taken address exactly as a new one, and tells its owner', async () => {
    const owner = unique('owner');
    await accountWithPassword(t, owner);
    const fresh = unique('fresh');
    const taken = await signUp(owner, 'an attacker password');
    const created = await signUp(fresh, 'an attacker password');
    expect(taken.status).toBe(created.status);
    expect(without(taken.html, owner)).toBe(without(created.html, fresh));
    expect([...taken.headers.keys()].sort()).toEqual([...created.headers.keys()].sort());

    // The owner hears of it, with a way in that does not need the attacker's password.
    const notice = await smtp.next(owner, /already have an account/);
    expect(notice.text).toContain(`${t.url}/account/reset-password?token=`);
    await smtp.next(fresh, /Confirm/);
    // Nothing about the existing account changed.
    expect(await signsIn(owner, PASSWORD)).toBe(true);
    expect(await signsIn(owner, 'an attacker password')).toBe(false);
  });

  it('refuses a mismatched confirmation, a short password and a malformed address on the form', async () => {
    const browser = new Browser();
    const mismatch = await fillIn(browser, '/account/sign-up', {
      email: unique('m'),
      password: PASSWORD,
      password_confirm: `${PASSWORD}!`,
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.html).toContain('The two passwords are not the same.');
    const short = await fillIn(browser, '/account/sign-up', {
      email: unique('s'),
      password: 'short',
      password_confirm: 'short',
    });
    expect(short.status).toBe(400);
    expect(short.html).toContain('password: expected 8 to 1024 characters');
    const hostile = `"><img src=x onerror=alert(1)>`;
    const bad = await fillIn(browser, '/account/sign-up', {
      email: hostile,
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    expect(bad.status).toBe(400);
    expect(bad.html).not.toContain('<img');
    expect(bad.html).toContain('value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"');
  });

  it('refuses a form without its CSRF cookie', async () => {
    const page = await open(new Browser(), '/account/sign-up');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)![1]!;
    const response = await fetch(`${t.url}/account/sign-up`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf,
        email: unique('csrf'),
        password: PASSWORD,
        password_confirm: PASSWORD,
      }),
    });
    expect(response.status).toBe(403);
  });

  it('links to sign-up and password reset from the sign-in page', async () => {
    const browser = new Browser();
    const p = await pkce();
    const page = await browser.follow(
      oidc.buildAuthorizationUrl(rp, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
      }).href,
      REDIRECT,
    );
    const html = await page.response.text();
    expect(html).toContain('href="/account/forgot-password"');
    const signUpHref = /href="(\/account\/sign-up\?interaction=[^"]+)"/.exec(html)?.[1];
    expect(signUpHref).toBeDefined();
    // After signing up from there, "Continue to sign in" returns to that sign-in.
    const done = await fillIn(browser, signUpHref!.replaceAll('&amp;', '&'), {
      email: unique('from-login'),
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    const uid = new URL(page.url).pathname.split('/').at(-1)!;
    expect(done.html).toContain(`href="/interaction/${uid}"`);
  });
});

describe('password reset', () => {
  it('resets by the e-mailed link, ends other sessions, and sends a notice', async () => {
    const email = unique('reset');
    await accountWithPassword(t, email);
    // A session with a refresh token from before the reset.
    const p = await pkce();
    const browser = new Browser();
    const callback = await browserLogin({
      browser,
      config: rp,
      redirectUri: REDIRECT,
      scope: 'openid offline_access',
      email,
      codeChallenge: p.challenge,
      state: p.state,
    });
    const tokens = await oidc.authorizationCodeGrant(rp, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    expect(tokens.refresh_token).toBeTruthy();

    const asked = await fillIn(new Browser(), '/account/forgot-password', { email });
    expect(asked.status).toBe(200);
    const mail = await smtp.next(email, /Reset your password/);
    expect(mail.text).toContain('30 minutes');
    const link = linkIn(mail, `${t.url}/account/reset-password?token=`);

    // A too-short password is refused without using up the link.
    const short = await fillIn(new Browser(), link, {
      password: 'short',
      password_confirm: 'short',
    });
    expect(short.status).toBe(400);
    expect(short.html).toContain('password: expected 8 to 1024 characters');
    const formBrowser = new Browser();
    const form = await open(formBrowser, link);
    const submit = () =>
      formBrowser.submit(
        link,
        form.html,
        '/account/reset-password',
        { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD },
        NEVER,
      );
    const done = await submit();
    expect(done.response.status).toBe(200);
    expect(await done.response.text()).toContain('Password changed');

    expect(await signsIn(email, NEW_PASSWORD)).toBe(true);
    expect(await signsIn(email, PASSWORD)).toBe(false);
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const notice = await smtp.next(email, /password .* was changed/);
    expect(notice.text).toContain('every other sign-in session was ended');

    // Used once: the same form sent again, and the link opened again, are refused.
    const replay = await submit();
    expect(replay.response.status).toBe(400);
    expect(await replay.response.text()).toContain('This link does not work');
    expect((await open(new Browser(), link)).status).toBe(400);
    expect(await signsIn(email, NEW_PASSWORD)).toBe(true);
  });

  it('answers an unknown address exactly as a known one, and sends nothing', async () => {
    const known = unique('known');
    await accountWithPassword(t, known);
    const unknown = unique('nobody');
    const a = await fillIn(new Browser(), '/account/forgot-password', { email: known });
    const b = await fillIn(new Browser(), '/account/forgot-password', { email: unknown });
    expect(a.status).toBe(200);
    expect(b.status).toBe(a.status);
    expect(without(b.html, unknown)).toBe(without(a.html, known));
    expect([...b.headers.keys()].sort()).toEqual([...a.headers.keys()].sort());
    await smtp.next(known, /Reset/);
    // Sending is asynchronous: give a message to the unknown address every chance to arrive.
    await fillIn(new Browser(), '/account/forgot-password', { email: known });
    await smtp.next(known, /Reset/);
    expect(smtp.waiting(unknown)).toEqual([]);
    expect(smtp.received.some((m) => m.to.includes(unknown))).toBe(false);
  });

  it('refuses an expired link, by the clock', async () => {
    const email = unique('late');
    await accountWithPassword(t, email);
    await fillIn(new Browser(), '/account/forgot-password', { email });
    const link = linkIn(await smtp.next(email, /Reset/), `${t.url}/account/reset-password?token=`);
    const browser = new Browser();
    const page = await open(browser, link);
    expect(page.status).toBe(200);
    t.clock.advance(31 * 60_000);
    try {
      const reopened = await open(new Browser(), link);
      expect(reopened.status).toBe(400);
      // The form opened before expiry cannot be sent after it either.
      const late = await browser.submit(
        link,
        page.html,
        '/account/reset-password',
        { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD },
        NEVER,
      );
      expect(late.response.status).toBe(400);
      expect(await late.response.text()).toContain('This link does not work');
    } finally {
      t.clock.advance(-31 * 60_000);
    }
    expect(await signsIn(email, PASSWORD)).toBe(true);
  });

  it('changes only the account a link was sent for, and refuses links of another kind', async () => {
    const alice = unique('alice');
    const bob = unique('bob');
    await accountWithPassword(t, alice);
    await accountWithPassword(t, bob);
    await fillIn(new Browser(), '/account/forgot-password', { email: alice });
    const link = linkIn(await smtp.next(alice, /Reset/), `${t.url}/account/reset-password?token=`);
    // Naming Bob in the form changes nothing: the token decides whose password it is.
    await fillIn(new Browser(), link, {
      email: bob,
      username: bob,
      account_id: (await t.app.identity.accounts.find(bob)).id,
      password: NEW_PASSWORD,
      password_confirm: NEW_PASSWORD,
    });
    expect(await signsIn(bob, PASSWORD)).toBe(true);
    expect(await signsIn(bob, NEW_PASSWORD)).toBe(false);
    expect(await signsIn(alice, NEW_PASSWORD)).toBe(true);

    // A confirmation link is not a reset link (nor the other way round).
    const carol = unique('carol');
    await signUp(carol);
    const verifyToken = new URL(
      linkIn(await smtp.next(carol, /Confirm/), `${t.url}/account/verify-email?token=`),
    ).searchParams.get('token')!;
    const crossed = await open(new Browser(), `/account/reset-password?token=${verifyToken}`);
    expect(crossed.status).toBe(400);
  });

  it('answers every malformed or unknown token with the one invalid-link page', async () => {
    const answers = new Set<string>();
    for (const token of MALFORMED) {
      for (const path of [
        '/account/reset-password',
        '/account/verify-email',
        '/account/invitation',
      ]) {
        const page = await open(new Browser(), `${path}?token=${encodeURIComponent(token)}`);
        expect(page.status, `${path} ${token}`).toBe(400);
        expect(page.html).not.toContain('<script>alert');
        answers.add(page.html);
      }
      // Posted straight to the form handler (with a valid CSRF pair), the same refusal.
      const browser = new Browser();
      const form = await open(browser, '/account/forgot-password');
      const csrf = /name="csrf" value="([^"]+)"/.exec(form.html)![1]!;
      const posted = await browser.request(`${t.url}/account/reset-password`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf,
          token,
          password: NEW_PASSWORD,
          password_confirm: NEW_PASSWORD,
        }),
      });
      // The CSRF cookie is scoped to /account, so it is sent here too.
      expect(posted.status, token).toBe(400);
      answers.add(await posted.text());
    }
    expect(answers.size).toBe(1);
  });

  it('limits the e-mails one address can be sent', async () => {
    const email = unique('flood');
    await accountWithPassword(t, email);
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await fillIn(new Browser(), '/account/forgot-password', { email })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    // An address without an account hits the same limit at the same point.
    const nobody = unique('flood-nobody');
    const unknown = [];
    for (let i = 0; i < 4; i++) {
      unknown.push(
        (await fillIn(new Browser(), '/account/forgot-password', { email: nobody })).status,
      );
    }
    expect(unknown).toEqual(statuses);
  });
});

describe('invitations', () => {
  it('invites by e-mail; the link sets a password and the address counts as confirmed', async () => {
    const email = unique('invitee');
    const created = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ email, email_sent: true, link: null });
    expect(new Date(created.body.expires_at).getTime() - t.clock().getTime()).toBeGreaterThan(
      6 * 86_400_000,
    );
    const mail = await smtp.next(email, /invited/);
    const link = linkIn(mail, `${t.url}/account/invitation?token=`);
    const page = await open(new Browser(), link);
    expect(page.html).toContain(email);
    const done = await fillIn(new Browser(), link, {
      name: 'Grace',
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    expect(done.status).toBe(200);
    expect(done.html).toContain('Account created');
    const account = await t.app.identity.accounts.find(email);
    expect(account).toMatchObject({ emailVerified: true, name: 'Grace', status: 'active' });
    expect(await signsIn(email, PASSWORD)).toBe(true);

    // Used once; an address with an account cannot be invited.
    expect((await open(new Browser(), link)).status).toBe(400);
    const twice = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email },
    });
    expect(twice.status).toBe(409);
  });

  it('refuses an expired invitation, and one whose address signed up meanwhile', async () => {
    const late = unique('late-invitee');
    await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email: late },
    });
    const link = linkIn(await smtp.next(late, /invited/), `${t.url}/account/invitation?token=`);
    t.clock.advance(7 * 86_400_000 + 60_000);
    try {
      expect((await open(new Browser(), link)).status).toBe(400);
    } finally {
      t.clock.advance(-(7 * 86_400_000 + 60_000));
    }

    const raced = unique('raced');
    await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email: raced },
    });
    const racedLink = linkIn(
      await smtp.next(raced, /invited/),
      `${t.url}/account/invitation?token=`,
    );
    await signUp(raced);
    const answer = await fillIn(new Browser(), racedLink, {
      password: NEW_PASSWORD,
      password_confirm: NEW_PASSWORD,
    });
    expect(answer.status).toBe(409);
    expect(await signsIn(raced, NEW_PASSWORD)).toBe(false);
  });

  it('is for operators only, and validates its body', async () => {
    const customer = await accountWithPassword(t, unique('customer'));
    const key = await issueKey(t, customer.id, { scopes: ['usage:read'] });
    const refused = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: unique('x') },
    });
    expect(refused.status).toBe(403);
    const bad = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email: 'not an address' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('InvalidRequest');
    const extra = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(operator.secret),
      body: { email: unique('y'), role: 'admin' },
    });
    expect(extra.status).toBe(400);
  });

  it('hands the operator the link instead when asked not to send', async () => {
    const email = unique('handed');
    const out: string[] = [];
    const code = await identityCommands.accounts!.run(['invite', email, '--no-email'], {
      io: {
        out: (text) => out.push(text),
        err: (text) => out.push(text),
        stdout: process.stdout,
        stdin: process.stdin,
      },
      open: () => Promise.resolve(t.app.identity),
    });
    expect(code).toBe(0);
    const printed = JSON.parse(out.join(''));
    expect(printed).toMatchObject({ email, email_sent: false });
    expect(printed.link).toMatch(new RegExp(`^${t.url}/account/invitation\\?token=thiv_`));
    expect(smtp.waiting(email)).toEqual([]);
    const done = await fillIn(new Browser(), printed.link, {
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    expect(done.status).toBe(200);
  });
});

describe('without e-mail (no SMTP_URL)', () => {
  let bare: IdentityTestApp;
  beforeAll(async () => {
    bare = await startIdentityApp({ SIGNUP_POLICY: 'open', SIGNUP_EMAIL_DOMAINS: 'example.com' });
  });
  afterAll(async () => bare?.close());

  it('says so on the forms, and operators get links on the command line', async () => {
    const forgot = await new Browser().request(`${bare.url}/account/forgot-password`);
    expect(forgot.status).toBe(503);
    expect(await forgot.text()).toContain('E-mail is not configured');

    const email = unique('offline');
    const done = await fillIn(new Browser(), `${bare.url}/account/sign-up`, {
      email,
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    expect(done.status).toBe(200);
    expect(done.html).toContain('Confirm your address with the operator');
    expect(done.html).toMatch(/E-mail is\s+not\s+configured\s+on\s+this\s+server/);

    const io = () => {
      const out: string[] = [];
      return { out, io: { out: (s: string) => out.push(s), err: (s: string) => out.push(s) } };
    };
    const accounts = (args: string[], io: { out(s: string): void; err(s: string): void }) =>
      identityCommands.accounts!.run(args, {
        io: { ...io, stdout: process.stdout, stdin: process.stdin },
        open: () => Promise.resolve(bare.app.identity),
      });
    const invite = io();
    expect(await accounts(['invite', unique('cli')], invite.io)).toBe(0);
    const invitation = JSON.parse(invite.out.join(''));
    expect(invitation.email_sent).toBe(false);
    expect(invitation.link).toContain('/account/invitation?token=thiv_');
    expect(invitation.note).toMatch(/not configured/);

    const reset = io();
    expect(await accounts(['reset-link', email], reset.io)).toBe(0);
    const resetLink = JSON.parse(reset.out.join('')).link as string;
    const changed = await fillIn(new Browser(), resetLink, {
      password: NEW_PASSWORD,
      password_confirm: NEW_PASSWORD,
    });
    expect(changed.status).toBe(200);

    const verify = io();
    expect(await accounts(['verify', email], verify.io)).toBe(0);
    expect(JSON.parse(verify.out.join('')).email_verified).toBe(true);

    const api = await call(bare, 'POST', '/v1/invitations', {
      headers: bearer((await adminKey(bare)).secret),
      body: { email: unique('api') },
    });
    expect(api.status).toBe(201);
    expect(api.body.email_sent).toBe(false);
    expect(api.body.link).toContain('/account/invitation?token=thiv_');
  });

  it('limits open sign-up to SIGNUP_EMAIL_DOMAINS', async () => {
    const refused = await fillIn(new Browser(), `${bare.url}/account/sign-up`, {
      email: `someone-${Date.now()}@elsewhere.org`,
      password: PASSWORD,
      password_confirm: PASSWORD,
    });
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('Sign-up is limited to addresses at example.com');
  });
});

describe('closed and invite-only sign-up', () => {
  let closed: IdentityTestApp;
  beforeAll(async () => {
    closed = await startIdentityApp({ SIGNUP_ATTEMPTS_PER_IP_PER_HOUR: '2' });
  });
  afterAll(async () => closed?.close());

  it('refuses sign-up under the default policy and offers no link to it', async () => {
    const page = await new Browser().request(`${closed.url}/account/sign-up`);
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('Sign-up is closed');
    const posted = await fetch(`${closed.url}/account/sign-up`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'email=a%40example.com&password=xxxxxxxxxx&password_confirm=xxxxxxxxxx',
    });
    expect(posted.status).toBe(403);
    expect(
      (await closed.app.identity.accounts.list({ search: 'a@example.com', limit: 5 })).accounts,
    ).toEqual([]);
  });

  it('limits the forms per IP', async () => {
    const link = (
      await closed.app.identity.onboarding.invite(unique('ip'), { id: 'test' }, { send: false })
    ).link!;
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(
        (await fillIn(new Browser(), link, { password: 'short', password_confirm: 'short' }))
          .status,
      );
    }
    expect(statuses).toEqual([400, 400, 429]);
  });
});

describe('invite-only policy', () => {
  it('sends people to an invitation instead of a sign-up form', async () => {
    const invite = await startIdentityApp({ SIGNUP_POLICY: 'invite' });
    try {
      const page = await new Browser().request(`${invite.url}/account/sign-up`);
      expect(page.status).toBe(403);
      expect(await page.text()).toContain('Sign-up is by invitation');
    } finally {
      await invite.close();
    }
  });
});
