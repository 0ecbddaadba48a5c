// Issue #18 item 7: the account holder's own self-service over /v1/account/… — change the
// password, change the e-mail address (confirmed by a link sent to the new one, read from a
// real SMTP server in this process), see and end sign-ins, delete the account. Each flow is
// attacked too: a wrong current password, another account's session id, a used or expired
// link, an address that is taken, NUL and huge values, and the last operator leaving.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { Browser, browserLogin, photoStudio, pkce, startIdentityApp } from './support.ts';
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
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Example API <no-reply@example.com>',
    LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: '1000',
  });
  operator = await adminKey(t);
  rp = await photoStudio(t, operator.accountId, REDIRECT);
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});

/** An account with a password and a backend key to call /v1/account with. */
async function holder(name: string, options: { admin?: boolean } = {}) {
  const email = unique(name);
  const account = await accountWithPassword(t, email, options);
  const key = await issueKey(t, account.id, { scopes: ['gateway'] });
  return { email, id: account.id, headers: bearer(key.secret), keyId: key.key.id };
}

/** Signs in through the app with offline_access: a browser session and a refresh grant. */
async function signIn(email: string, password = PASSWORD) {
  const p = await pkce();
  const callback = await browserLogin({
    browser: new Browser(),
    config: rp,
    redirectUri: REDIRECT,
    scope: 'openid offline_access',
    email,
    password,
    codeChallenge: p.challenge,
    state: p.state,
  });
  const tokens = await oidc.authorizationCodeGrant(rp, callback, {
    pkceCodeVerifier: p.verifier,
    expectedState: p.state,
  });
  expect(tokens.refresh_token).toBeTruthy();
  return tokens.refresh_token!;
}

async function refreshFails(refreshToken: string) {
  await expect(oidc.refreshTokenGrant(rp, refreshToken)).rejects.toMatchObject({
    error: 'invalid_grant',
  });
}

/** Opens the link's form and submits it (the confirmation is a POST, as for sign-up). */
async function confirmLink(link: string) {
  const browser = new Browser();
  const page = await browser.request(link);
  const html = await page.text();
  if (page.status !== 200) return { status: page.status, html };
  const action = /<form method="post" action="([^"]*)"/.exec(html)?.[1];
  const result = await browser.submit(link, html, action!, {}, NEVER);
  return { status: result.response.status, html: await result.response.text() };
}

describe('change password', () => {
  it('needs the current password, ends sessions and refresh tokens, and sends a notice', async () => {
    const who = await holder('pw');
    const refresh = await signIn(who.email);

    const wrong = await call(t, 'POST', '/v1/account/password', {
      headers: who.headers,
      body: { current_password: 'not my password', new_password: NEW_PASSWORD },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('WrongPassword');
    const short = await call(t, 'POST', '/v1/account/password', {
      headers: who.headers,
      body: { current_password: PASSWORD, new_password: 'short' },
    });
    expect(short.status).toBe(400);
    expect(short.body.message).toContain('password: expected 8 to 1024 characters');

    const done = await call(t, 'POST', '/v1/account/password', {
      headers: who.headers,
      body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.sessions_ended).toBeGreaterThanOrEqual(2);
    await refreshFails(refresh);
    expect(await t.app.identity.accounts.authenticate(who.email, NEW_PASSWORD)).not.toBeNull();
    expect(await t.app.identity.accounts.authenticate(who.email, PASSWORD)).toBeNull();
    const notice = await smtp.next(who.email, /password .* was changed/);
    expect(notice.text).toContain('every other sign-in session was ended');
  });

  it('refuses NUL, huge values and unknown fields with a documented 400', async () => {
    const who = await holder('pw-hostile');
    for (const body of [
      { current_password: `${PASSWORD}\u0000`, new_password: NEW_PASSWORD },
      { current_password: 'x'.repeat(5000), new_password: NEW_PASSWORD },
      { current_password: PASSWORD, new_password: 'y'.repeat(5000) },
      { current_password: PASSWORD, new_password: NEW_PASSWORD, account_id: operator.accountId },
      { new_password: NEW_PASSWORD },
    ]) {
      const response = await call(t, 'POST', '/v1/account/password', {
        headers: who.headers,
        body,
      });
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(typeof response.body.error).toBe('string');
      expect(typeof response.body.message).toBe('string');
    }
    expect(await t.app.identity.accounts.authenticate(who.email, PASSWORD)).not.toBeNull();
  });
});

describe('sessions', () => {
  it('lists sessions and grants with their client, and ends one or all', async () => {
    const who = await holder('sessions');
    const first = await signIn(who.email);
    const second = await signIn(who.email);
    const listed = await call(t, 'GET', '/v1/account/sessions', { headers: who.headers });
    expect(listed.status).toBe(200);
    const sessions = listed.body.sessions as Array<{
      id: string;
      kind: string;
      clients: Array<{ name: string | null }>;
      created_at: string;
      last_used_at: string;
    }>;
    const grants = sessions.filter((s) => s.kind === 'refresh_grant');
    expect(grants).toHaveLength(2);
    expect(grants[0]!.clients[0]!.name).toBe('Photo Studio');
    expect(Number.isNaN(Date.parse(grants[0]!.created_at))).toBe(false);
    expect(Number.isNaN(Date.parse(grants[0]!.last_used_at))).toBe(false);
    expect(sessions.some((s) => s.kind === 'browser_session')).toBe(true);

    // Another account cannot see or end them: 404, as for an id that does not exist.
    const other = await holder('sessions-other');
    const theirs = await call(t, 'GET', '/v1/account/sessions', { headers: other.headers });
    expect(theirs.body.sessions).toEqual([]);
    for (const s of sessions) {
      const foreign = await call(t, 'DELETE', `/v1/account/sessions/${s.id}`, {
        headers: other.headers,
      });
      expect(foreign.status).toBe(404);
      expect(foreign.body.error).toBe('NotFound');
    }
    for (const bad of ['x', `ses_${'g'.repeat(64)}`, 'grt_%00', `grt_${'a'.repeat(90)}`]) {
      const response = await call(t, 'DELETE', `/v1/account/sessions/${bad}`, {
        headers: who.headers,
      });
      expect([400, 404]).toContain(response.status);
    }

    // Ending the first grant ends its refresh token and only that one.
    const one = await call(t, 'DELETE', `/v1/account/sessions/${grants[0]!.id}`, {
      headers: who.headers,
    });
    expect(one.status).toBe(204);
    const again = await call(t, 'DELETE', `/v1/account/sessions/${grants[0]!.id}`, {
      headers: who.headers,
    });
    expect(again.status).toBe(404);
    const survivors = [first, second];
    let ended = 0;
    for (const token of survivors) {
      try {
        await oidc.refreshTokenGrant(rp, token);
      } catch {
        ended += 1;
      }
    }
    expect(ended).toBe(1);

    const all = await call(t, 'DELETE', '/v1/account/sessions', { headers: who.headers });
    expect(all.status).toBe(200);
    expect(all.body.ended).toBeGreaterThan(0);
    const empty = await call(t, 'GET', '/v1/account/sessions', { headers: who.headers });
    expect(empty.body.sessions).toEqual([]);
  });
});

describe('change e-mail', () => {
  it('keeps the old address until the link sent to the new one is used', async () => {
    const who = await holder('move');
    const newEmail = unique('moved');
    const wrong = await call(t, 'POST', '/v1/account/email', {
      headers: who.headers,
      body: { current_password: 'nope nope', email: newEmail },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('WrongPassword');

    const asked = await call(t, 'POST', '/v1/account/email', {
      headers: who.headers,
      body: { current_password: PASSWORD, email: newEmail },
    });
    expect(asked.status, JSON.stringify(asked.body)).toBe(202);
    expect(asked.body.pending_email).toBe(newEmail);
    const requested = await smtp.next(who.email, /change of e-mail address was requested/);
    expect(requested.text).toContain(newEmail);
    expect((await t.app.identity.accounts.get(who.id))!.email).toBe(who.email);

    const mail = await smtp.next(newEmail, /Confirm your new e-mail address/);
    const link = linkIn(mail, `${t.url}/account/confirm-email?token=`);
    const done = await confirmLink(link);
    expect(done.status, done.html).toBe(200);
    expect(done.html).toContain('Address changed');
    const moved = (await t.app.identity.accounts.get(who.id))!;
    expect(moved.email).toBe(newEmail);
    expect(moved.emailVerified).toBe(true);
    expect(await t.app.identity.accounts.authenticate(newEmail, PASSWORD)).not.toBeNull();
    expect(await t.app.identity.accounts.authenticate(who.email, PASSWORD)).toBeNull();
    const changed = await smtp.next(who.email, /was changed/);
    expect(changed.text).toContain(newEmail);

    // Used once: the link does nothing a second time.
    const reused = await confirmLink(link);
    expect(reused.status).toBe(400);
    expect(reused.html).toContain('This link does not work');
  });

  it('refuses an expired link by the clock, and a newer request ends older links', async () => {
    const who = await holder('expire');
    const first = unique('first');
    const second = unique('second');
    for (const email of [first, second]) {
      const asked = await call(t, 'POST', '/v1/account/email', {
        headers: who.headers,
        body: { current_password: PASSWORD, email },
      });
      expect(asked.status).toBe(202);
    }
    const older = linkIn(await smtp.next(first), `${t.url}/account/confirm-email?token=`);
    const newer = linkIn(await smtp.next(second), `${t.url}/account/confirm-email?token=`);
    expect((await confirmLink(older)).status).toBe(400);
    t.clock.advance(25 * 3_600_000);
    try {
      expect((await confirmLink(newer)).status).toBe(400);
    } finally {
      t.clock.advance(-25 * 3_600_000);
    }
    expect((await t.app.identity.accounts.get(who.id))!.email).toBe(who.email);
  });

  it('answers a taken address as a free one, and sends it no link', async () => {
    const who = await holder('taker');
    const owner = await holder('owner');
    const free = unique('free');
    const answers = [];
    for (const email of [owner.email, free]) {
      const response = await call(t, 'POST', '/v1/account/email', {
        headers: who.headers,
        body: { current_password: PASSWORD, email },
      });
      answers.push({
        status: response.status,
        keys: Object.keys(response.body).sort(),
        error: response.body.error,
      });
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]!.status).toBe(202);
    await smtp.next(free, /Confirm your new e-mail address/);
    // Both notices reached the old address; nothing reached the owner of the taken one.
    await smtp.next(who.email, /requested/);
    await smtp.next(who.email, /requested/);
    expect(smtp.waiting(owner.email)).toEqual([]);
    expect((await t.app.identity.accounts.get(owner.id))!.email).toBe(owner.email);
  });

  it('confirms nothing when the address was taken after the link was sent', async () => {
    const who = await holder('race');
    const target = unique('race-target');
    await call(t, 'POST', '/v1/account/email', {
      headers: who.headers,
      body: { current_password: PASSWORD, email: target },
    });
    const link = linkIn(await smtp.next(target), `${t.url}/account/confirm-email?token=`);
    await accountWithPassword(t, target);
    expect((await confirmLink(link)).status).toBe(400);
    expect((await t.app.identity.accounts.get(who.id))!.email).toBe(who.email);
  });

  it('refuses malformed and hostile tokens and addresses', async () => {
    for (const token of ['', 'x', `thce_${'A'.repeat(42)}`, `thve_${'A'.repeat(43)}`]) {
      const response = await new Browser().request(
        `${t.url}/account/confirm-email?token=${encodeURIComponent(token)}`,
      );
      expect(response.status).toBe(400);
    }
    const who = await holder('bad-address');
    for (const email of ['not-an-address', `a\u0000@example.com`, `${'a'.repeat(400)}@x.com`]) {
      const response = await call(t, 'POST', '/v1/account/email', {
        headers: who.headers,
        body: { current_password: PASSWORD, email },
      });
      expect(response.status).toBe(400);
      expect(typeof response.body.message).toBe('string');
    }
  });
});

describe('delete the account', () => {
  it('revokes keys, disables apps, ends sessions and keeps the row', async () => {
    const who = await holder('leaver');
    const { app } = await t.app.identity.apps.create(
      { name: 'Leaver app', kind: 'machine', ownerAccountId: who.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const refresh = await signIn(who.email);

    const wrong = await call(t, 'POST', '/v1/account/delete', {
      headers: who.headers,
      body: { current_password: 'wrong password' },
    });
    expect(wrong.status).toBe(400);
    expect((await t.app.identity.accounts.get(who.id))!.status).toBe('active');

    const done = await call(t, 'POST', '/v1/account/delete', {
      headers: who.headers,
      body: { current_password: PASSWORD },
    });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body).toMatchObject({ keys_revoked: 1, apps_disabled: 1 });
    expect(done.body.sessions_ended).toBeGreaterThan(0);

    const row = (await t.app.identity.accounts.get(who.id))!;
    expect(row.status).toBe('disabled');
    expect(row.email).not.toContain(who.email.split('@')[0]);
    expect(row.name).toBeNull();
    expect(await t.app.identity.accounts.authenticate(who.email, PASSWORD)).toBeNull();
    const key = await t.app.keys.service.show({ ...operatorCaller() }, who.keyId);
    expect(key.status).toBe('revoked');
    expect((await t.app.identity.apps.get(app.id)).status).toBe('disabled');
    await refreshFails(refresh);
    const after = await call(t, 'GET', '/v1/account/sessions', { headers: who.headers });
    expect(after.status).toBe(401);
    await smtp.next(who.email, /was deleted/);
    // The address is free again for a new account.
    await accountWithPassword(t, who.email);
  });

  it('refuses to let the last operator delete itself', async () => {
    // The only operator account here (an admin key alone does not make its account one).
    const admin = await holder('last-op', { admin: true });
    const other = await accountWithPassword(t, unique('other-op'), { admin: true });
    const actor = { id: 'test' };
    await t.app.identity.accounts.update(other.id, { status: 'disabled' }, actor);
    try {
      const refused = await call(t, 'POST', '/v1/account/delete', {
        headers: admin.headers,
        body: { current_password: PASSWORD },
      });
      expect(refused.status).toBe(409);
      expect(refused.body.message).toContain('last operator');
      expect((await t.app.identity.accounts.get(admin.id))!.status).toBe('active');
    } finally {
      await t.app.identity.accounts.update(other.id, { status: 'active' }, actor);
    }
    // With another operator active it may leave.
    const allowed = await call(t, 'POST', '/v1/account/delete', {
      headers: admin.headers,
      body: { current_password: PASSWORD },
    });
    expect(allowed.status).toBe(200);
    expect((await t.app.identity.accounts.get(admin.id))!.isAdmin).toBe(false);
  });

  it('is refused to an operator key and a browser key (403)', async () => {
    const who = await holder('kinds');
    const browser = await issueKey(t, who.id, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: ['https://shop.example'],
      allowedResources: ['text-to-image'],
    });
    for (const headers of [
      bearer(operator.secret),
      bearer(browser.secret, { origin: 'https://shop.example' }),
    ]) {
      const response = await call(t, 'POST', '/v1/account/delete', {
        headers,
        body: { current_password: PASSWORD },
      });
      expect(response.status).toBe(403);
    }
    expect((await t.app.identity.accounts.get(who.id))!.status).toBe('active');
  });
});

function operatorCaller() {
  return {
    actor: 'test',
    accountId: null,
    admin: true,
    scopes: ['admin' as const],
    browser: false,
    requestId: null,
  };
}
