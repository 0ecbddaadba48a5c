// Second factors over real HTTP (issue #18 item 4): TOTP enrolment through /v1/account, the
// sign-in's second-factor page (TOTP, recovery code), replay and rate limits, step-up for an
// app asking for the mfa acr, REQUIRE_MFA_FOR_ADMINS, and the amr/acr claims as openid-client
// (the relying party) reads them from the ID token. Hostile input on every new route.
import * as oidc from 'openid-client';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAuditBySubject } from '../../src/platform/audit.ts';
import { ACR_MFA, ACR_PASSWORD, identityCommands } from '../../src/identity/index.ts';
import { NotFound } from '../../src/platform/errors.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { Browser, parseForm, photoStudio, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';

const REDIRECT = 'https://studio.example/callback';

let t: IdentityTestApp;
let seq = 0;
const unique = () => `${Date.now()}-${++seq}`;

beforeAll(async () => {
  t = await startIdentityApp({ LOGIN_ATTEMPTS_PER_MINUTE: '8' });
});
afterAll(async () => {
  await t?.close();
});

/** A TOTP code for `secret` at the app's time, `steps` periods from now. */
async function totp(secret: string, steps = 0): Promise<string> {
  return generate({ secret, epoch: Math.floor(t.clock().getTime() / 1000) + steps * 30 });
}

/** The next period: a code of the current one was used. */
function nextStep() {
  t.clock.advance(30_000);
}

async function person() {
  const email = `mfa-${unique()}@example.com`;
  const account = await accountWithPassword(t, email);
  const key = await issueKey(t, account.id);
  const config = await photoStudio(t, account.id, REDIRECT);
  return { email, account, headers: bearer(key.secret), config };
}

async function enrolTotp(headers: Record<string, string>) {
  const begun = await call(t, 'POST', '/v1/account/second-factor/totp', { headers });
  expect(begun.status).toBe(201);
  const secret = begun.body.secret as string;
  expect(begun.body.otpauth_uri).toMatch(/^otpauth:\/\/totp\//);
  const confirmed = await call(t, 'POST', '/v1/account/second-factor/totp/confirm', {
    headers,
    body: { code: await totp(secret) },
  });
  expect(confirmed.status).toBe(200);
  return { secret, recoveryCodes: confirmed.body.recovery_codes as string[] };
}

/** Authorize, then the password: returns where the browser is after the password form. */
async function afterPassword(
  browser: Browser,
  config: oidc.Configuration,
  email: string,
  extra: Record<string, string> = {},
) {
  const p = await pkce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope: 'openid email',
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    state: p.state,
    ...extra,
  });
  let page = await browser.follow(url.href, REDIRECT);
  let html = await page.response.text();
  if (html.includes('/login"')) {
    page = await browser.submit(page.url, html, '/login', { email, password: PASSWORD }, REDIRECT);
    html = page.url.startsWith(REDIRECT) ? '' : await page.response.text();
  }
  return { page, html, p };
}

/** From a page of the sign-in to the app's callback (allowing on the consent page). */
async function toCallback(browser: Browser, page: { url: string }, html: string) {
  if (page.url.startsWith(REDIRECT)) return new URL(page.url);
  expect(html).toContain('/confirm"');
  const done = await browser.submit(page.url, html, '/confirm', {}, REDIRECT);
  expect(done.url.startsWith(REDIRECT)).toBe(true);
  return new URL(done.url);
}

async function idToken(
  config: oidc.Configuration,
  callback: URL,
  p: { verifier: string; state: string },
) {
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: p.verifier,
    expectedState: p.state,
  });
  return tokens.claims()!;
}

describe('TOTP', () => {
  it('is set up through /v1/account, then asked for after the password; amr/acr say so', async () => {
    const who = await person();
    const before = await call(t, 'GET', '/v1/account/second-factor', { headers: who.headers });
    expect(before.body).toEqual({ totp: 'off', recovery_codes_left: 0, passkeys: [] });

    const begun = await call(t, 'POST', '/v1/account/second-factor/totp', { headers: who.headers });
    const secret = begun.body.secret as string;
    // Not a factor until confirmed: a sign-in now needs only the password.
    expect(
      (await call(t, 'GET', '/v1/account/second-factor', { headers: who.headers })).body.totp,
    ).toBe('pending');
    const wrong = await call(t, 'POST', '/v1/account/second-factor/totp/confirm', {
      headers: who.headers,
      body: { code: (Number(await totp(secret)) ^ 1).toString().padStart(6, '0') },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('WrongCode');
    const code = await totp(secret);
    const confirmed = await call(t, 'POST', '/v1/account/second-factor/totp/confirm', {
      headers: who.headers,
      body: { code },
    });
    expect(confirmed.status).toBe(200);
    const codes = confirmed.body.recovery_codes as string[];
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const after = await call(t, 'GET', '/v1/account/second-factor', { headers: who.headers });
    expect(after.body).toMatchObject({ totp: 'on', recovery_codes_left: 10 });
    // A second set-up while one is active is refused.
    const again = await call(t, 'POST', '/v1/account/second-factor/totp', { headers: who.headers });
    expect(again.status).toBe(409);
    // The secret is sealed at rest, never stored as the base32 text.
    const row = await t.app.database.db
      .selectFrom('account_totp')
      .selectAll()
      .where('account_id', '=', who.account.id)
      .executeTakeFirstOrThrow();
    expect(row.secret_sealed).not.toContain(secret);

    const browser = new Browser();
    const { page, html, p } = await afterPassword(browser, who.config, who.email);
    expect(page.url).toMatch(/\/interaction\/[^/]+\/second-factor$/);
    expect(html).toContain('Code from your authenticator app');
    // Replay: the code that confirmed the set-up was accepted in this step already.
    const replayed = await browser.submit(
      page.url,
      html,
      '/second-factor/totp',
      { code },
      REDIRECT,
    );
    expect(replayed.response.status).toBe(401);
    const replayedHtml = await replayed.response.text();
    expect(replayedHtml).toContain('already used');

    nextStep();
    const fresh = await totp(secret);
    const passed = await browser.submit(
      page.url,
      replayedHtml,
      '/second-factor/totp',
      { code: fresh },
      REDIRECT,
    );
    const callback = await toCallback(
      browser,
      passed,
      passed.url.startsWith(REDIRECT) ? '' : await passed.response.text(),
    );
    const claims = await idToken(who.config, callback, p);
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims.acr).toBe(ACR_MFA);

    // The same code in a new sign-in, same step: refused.
    const other = new Browser();
    const second = await afterPassword(other, who.config, who.email);
    const replay2 = await other.submit(
      second.page.url,
      second.html,
      '/second-factor/totp',
      { code: fresh },
      REDIRECT,
    );
    expect(replay2.response.status).toBe(401);
  });

  it('a password-only account signs in with acr pwd and amr [pwd]', async () => {
    const who = await person();
    const browser = new Browser();
    const { page, html, p } = await afterPassword(browser, who.config, who.email);
    const claims = await idToken(who.config, await toCallback(browser, page, html), p);
    expect(claims.amr).toEqual(['pwd']);
    expect(claims.acr).toBe(ACR_PASSWORD);
  });

  it('recovery codes sign in once each, are audited, and can be regenerated', async () => {
    const who = await person();
    const { recoveryCodes } = await enrolTotp(who.headers);
    const browser = new Browser();
    const { page, html, p } = await afterPassword(browser, who.config, who.email);
    // Typed loosely: upper case, spaces.
    const typed = ` ${recoveryCodes[0]!.toUpperCase()} `;
    const used = await browser.submit(
      page.url,
      html,
      '/second-factor/recovery',
      { code: typed },
      REDIRECT,
    );
    const claims = await idToken(
      who.config,
      await toCallback(
        browser,
        used,
        used.url.startsWith(REDIRECT) ? '' : await used.response.text(),
      ),
      p,
    );
    expect(claims.acr).toBe(ACR_MFA);
    const audit = await findAuditBySubject(t.app.database.db, who.account.id);
    expect(audit.find((e) => e.action === 'account.recovery_code_use')?.details).toEqual({
      codes_left: 9,
    });

    const again = new Browser();
    const second = await afterPassword(again, who.config, who.email);
    const reused = await again.submit(
      second.page.url,
      second.html,
      '/second-factor/recovery',
      { code: recoveryCodes[0]! },
      REDIRECT,
    );
    expect(reused.response.status).toBe(401);

    const regenerated = await call(t, 'POST', '/v1/account/second-factor/recovery-codes', {
      headers: who.headers,
    });
    expect(regenerated.status).toBe(200);
    expect(regenerated.body.recovery_codes).toHaveLength(10);
    const old = await again.submit(
      second.page.url,
      await reused.response.text(),
      '/second-factor/recovery',
      { code: recoveryCodes[1]! },
      REDIRECT,
    );
    expect(old.response.status).toBe(401);
  });

  it('limits second-factor attempts per account', async () => {
    const who = await person();
    await enrolTotp(who.headers);
    const browser = new Browser();
    const { page, html } = await afterPassword(browser, who.config, who.email);
    let last = html;
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) {
      const r = await browser.submit(
        page.url,
        last,
        '/second-factor/totp',
        { code: '000000' },
        REDIRECT,
      );
      statuses.push(r.response.status);
      last = await r.response.text();
    }
    // LOGIN_ATTEMPTS_PER_MINUTE=8, and the set-up's confirmation was the first attempt: 7 wrong
    // codes are checked, then none is until the window ends.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 401, 429, 429]);
    expect(last).toContain('Too many attempts');
  });

  it('is removed only with a current code', async () => {
    const who = await person();
    const { secret } = await enrolTotp(who.headers);
    nextStep();
    const refused = await call(t, 'POST', '/v1/account/second-factor/totp/remove', {
      headers: who.headers,
      body: { code: '123456' === (await totp(secret)) ? '654321' : '123456' },
    });
    expect(refused.status).toBe(400);
    const removed = await call(t, 'POST', '/v1/account/second-factor/totp/remove', {
      headers: who.headers,
      body: { code: await totp(secret) },
    });
    expect(removed.status).toBe(200);
    const status = await call(t, 'GET', '/v1/account/second-factor', { headers: who.headers });
    expect(status.body).toEqual({ totp: 'off', recovery_codes_left: 0, passkeys: [] });
  });
});

/** `tollhouse accounts …` in this process, against `app`'s identity; returns exit code and JSON. */
async function accountsCli(app: IdentityTestApp, args: string[]) {
  const out: string[] = [];
  const code = await identityCommands.accounts!.run(args, {
    io: {
      out: (text) => out.push(text),
      err: (text) => out.push(text),
      stdout: process.stdout,
      stdin: process.stdin,
    },
    open: () => Promise.resolve(app.app.identity),
  });
  return { code, json: JSON.parse(out.join('')) as Record<string, unknown> };
}

describe('an operator resets a lost second factor (accounts reset-second-factor)', () => {
  it('removes the app, recovery codes and passkeys and ends sessions; the password alone signs in', async () => {
    const who = await person();
    const { secret, recoveryCodes } = await enrolTotp(who.headers);
    // A passkey row as registration stores it (a real registration needs an authenticator).
    await t.app.database.db
      .insertInto('account_passkeys')
      .values({
        id: `pk_reset${unique().replace(/\D/g, '')}`,
        account_id: who.account.id,
        credential_id: `cred-${unique()}`,
        public_key: 'AAAA',
        sign_count: 0n,
        transports: JSON.stringify(['usb']),
        device_type: 'singleDevice',
        backed_up: false,
        name: 'lost key',
        created_at: t.clock(),
        last_used_at: null,
      })
      .execute();
    // Signed in with both factors: a browser session and a grant exist.
    const browser = new Browser();
    nextStep();
    const first = await afterPassword(browser, who.config, who.email);
    const passed = await browser.submit(
      first.page.url,
      first.html,
      '/second-factor/totp',
      { code: await totp(secret) },
      REDIRECT,
    );
    await toCallback(
      browser,
      passed,
      passed.url.startsWith(REDIRECT) ? '' : await passed.response.text(),
    );
    // Someone else's factors are not touched.
    const bystander = await person();
    await enrolTotp(bystander.headers);

    const reset = await accountsCli(t, ['reset-second-factor', who.email.toUpperCase()]);
    expect(reset.code).toBe(0);
    expect(reset.json).toMatchObject({
      id: who.account.id,
      totp_removed: true,
      recovery_codes_removed: 10,
      passkeys_removed: 1,
    });
    expect(reset.json.sessions_ended).toBeGreaterThan(0);

    const status = await call(t, 'GET', '/v1/account/second-factor', { headers: who.headers });
    expect(status.body).toEqual({ totp: 'off', recovery_codes_left: 0, passkeys: [] });
    expect(
      (await call(t, 'GET', '/v1/account/second-factor', { headers: bystander.headers })).body,
    ).toMatchObject({ totp: 'on', recovery_codes_left: 10 });
    expect(
      await t.app.identity.secondFactors.useRecoveryCode(who.account.id, recoveryCodes[1]!, null),
    ).toBe(false);
    const audit = await findAuditBySubject(t.app.database.db, who.account.id);
    expect(audit.find((e) => e.action === 'account.reset_second_factor')).toMatchObject({
      actor: 'cli',
      details: {
        totp_removed: true,
        recovery_codes_removed: 10,
        passkeys_removed: 1,
        sessions_ended: reset.json.sessions_ended,
      },
    });

    // The old browser's session is gone: it is asked for the password, and that is all.
    const again = await afterPassword(browser, who.config, who.email);
    expect(again.page.url).not.toMatch(/second-factor|enrol/);
    const claims = await idToken(
      who.config,
      await toCallback(browser, again.page, again.html),
      again.p,
    );
    expect(claims.amr).toEqual(['pwd']);
    expect(claims.acr).toBe(ACR_PASSWORD);

    // An account without factors: nothing to remove, still audited.
    const twice = await accountsCli(t, ['reset-second-factor', who.account.id]);
    expect(twice.json).toMatchObject({
      totp_removed: false,
      recovery_codes_removed: 0,
      passkeys_removed: 0,
    });
  });

  it('refuses an unknown account and bad usage', async () => {
    await expect(accountsCli(t, ['reset-second-factor', 'nobody@example.com'])).rejects.toThrow(
      NotFound,
    );
    await expect(accountsCli(t, ['reset-second-factor'])).rejects.toThrow(
      'reset-second-factor needs an account id',
    );
  });
});

describe('step-up and required enrolment', () => {
  it('an app asking for the mfa acr gets a second factor over a password session', async () => {
    const who = await person();
    const browser = new Browser();
    const first = await afterPassword(browser, who.config, who.email);
    await idToken(who.config, await toCallback(browser, first.page, first.html), first.p);
    const { secret } = await enrolTotp(who.headers);
    nextStep();

    // Same browser session: no password asked, only the second factor.
    const stepUp = await afterPassword(browser, who.config, who.email, { acr_values: ACR_MFA });
    expect(stepUp.page.url).toMatch(/\/second-factor$/);
    const passed = await browser.submit(
      stepUp.page.url,
      stepUp.html,
      '/second-factor/totp',
      { code: await totp(secret) },
      REDIRECT,
    );
    const claims = await idToken(
      who.config,
      await toCallback(
        browser,
        passed,
        passed.url.startsWith(REDIRECT) ? '' : await passed.response.text(),
      ),
      stepUp.p,
    );
    expect(claims.acr).toBe(ACR_MFA);
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  it('an account without a factor sets one up when an app asks for mfa', async () => {
    const who = await person();
    const browser = new Browser();
    const { page, html, p } = await afterPassword(browser, who.config, who.email, {
      acr_values: ACR_MFA,
    });
    expect(page.url).toMatch(/\/enrol$/);
    expect(html).toContain('data:image/svg+xml;base64,');
    const secret = /<code id="totp-secret">([A-Z2-7]+)<\/code>/.exec(html)![1]!;
    const codes = await browser.submit(
      page.url,
      html,
      '/enrol',
      { code: await totp(secret) },
      REDIRECT,
    );
    const codesHtml = await codes.response.text();
    expect(codesHtml.match(/<li><code>/g)).toHaveLength(10);
    const done = await browser.submit(codes.url, codesHtml, '/enrol/done', {}, REDIRECT);
    const claims = await idToken(
      who.config,
      await toCallback(
        browser,
        done,
        done.url.startsWith(REDIRECT) ? '' : await done.response.text(),
      ),
      p,
    );
    expect(claims.acr).toBe(ACR_MFA);
  });
});

describe('REQUIRE_MFA_FOR_ADMINS', () => {
  let strict: IdentityTestApp;
  beforeAll(async () => {
    strict = await startIdentityApp({ REQUIRE_MFA_FOR_ADMINS: 'true' });
  });
  afterAll(async () => {
    await strict?.close();
  });

  it('sends an operator without a factor to set one up; no code until done', async () => {
    const email = `op-${unique()}@example.com`;
    const operator = await accountWithPassword(strict, email, { admin: true });
    const config = await photoStudio(strict, operator.id, REDIRECT);
    const browser = new Browser();
    const p = await pkce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid email',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
      state: p.state,
    });
    const login = await browser.follow(url.href, REDIRECT);
    const enrol = await browser.submit(
      login.url,
      await login.response.text(),
      '/login',
      { email, password: PASSWORD },
      REDIRECT,
    );
    expect(enrol.url).toMatch(/\/enrol$/);
    const html = await enrol.response.text();
    expect(html).toContain('requires a second factor for operator accounts');
    // Skipping ahead to the end of the set-up does not finish the sign-in.
    const skipped = await browser.submit(
      enrol.url,
      html.replace('/enrol"', '/enrol/done"'),
      '/enrol/done',
      {},
      REDIRECT,
    );
    expect(skipped.url.startsWith(REDIRECT)).toBe(false);
    expect(skipped.url).toMatch(/\/enrol$/);

    // A plain account is not asked.
    const plainEmail = `plain-${unique()}@example.com`;
    await accountWithPassword(strict, plainEmail);
    const plain = new Browser();
    const p2 = await pkce();
    const login2 = await plain.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid email',
        code_challenge: p2.challenge,
        code_challenge_method: 'S256',
        state: p2.state,
      }).href,
      REDIRECT,
    );
    const signedIn = await plain.submit(
      login2.url,
      await login2.response.text(),
      '/login',
      { email: plainEmail, password: PASSWORD },
      REDIRECT,
    );
    expect(signedIn.url).not.toMatch(/\/enrol$/);
  });

  it('after a reset of its second factor, an operator is sent to set one up again', async () => {
    const email = `op-reset-${unique()}@example.com`;
    const operator = await accountWithPassword(strict, email, { admin: true });
    const factors = strict.app.identity.secondFactors;
    const caller = { accountId: operator.id, actor: operator.id, requestId: null };
    const { secret } = await factors.beginTotp(caller, email);
    const code = await generate({ secret, epoch: Math.floor(strict.clock().getTime() / 1000) });
    await factors.confirmTotp(caller, code);
    expect(await factors.hasSecondFactor(operator.id)).toBe(true);

    expect((await accountsCli(strict, ['reset-second-factor', email])).code).toBe(0);
    expect(await factors.hasSecondFactor(operator.id)).toBe(false);
    const config = await photoStudio(strict, operator.id, REDIRECT);
    const browser = new Browser();
    const p = await pkce();
    const login = await browser.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid email',
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
        state: p.state,
      }).href,
      REDIRECT,
    );
    const enrol = await browser.submit(
      login.url,
      await login.response.text(),
      '/login',
      { email, password: PASSWORD },
      REDIRECT,
    );
    expect(enrol.url).toMatch(/\/enrol$/);
  });
});

describe('hostile input', () => {
  it('REST routes refuse bad bodies, foreign ids and callers without an account', async () => {
    const who = await person();
    const other = await person();
    const h = who.headers;
    for (const [path, body] of [
      ['/v1/account/second-factor/totp/confirm', { code: 123456 }],
      ['/v1/account/second-factor/totp/confirm', { code: '1'.repeat(33) }],
      ['/v1/account/second-factor/totp/confirm', { code: '123456', extra: true }],
      ['/v1/account/second-factor/totp/remove', {}],
      ['/v1/account/passkeys', { name: 'x', response: 'not an object' }],
      ['/v1/account/passkeys', { name: 'x'.repeat(65), response: {} }],
      ['/v1/account/passkeys', { name: 'a\u0000b', response: {} }],
    ] as const) {
      const r = await call(t, 'POST', path, { headers: h, body });
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
    }
    // Confirming with nothing set up; a passkey answer without a registration under way.
    expect(
      (
        await call(t, 'POST', '/v1/account/second-factor/totp/confirm', {
          headers: h,
          body: { code: '123456' },
        })
      ).status,
    ).toBe(404);
    const noCeremony = await call(t, 'POST', '/v1/account/passkeys', {
      headers: h,
      body: { name: 'Laptop', response: { id: 'x', rawId: 'x', type: 'public-key', response: {} } },
    });
    expect(noCeremony.status).toBe(400);
    // A forged answer after real options: refused, and the challenge is spent.
    const options = await call(t, 'POST', '/v1/account/passkeys/options', { headers: h });
    expect(options.status).toBe(200);
    expect(options.body.options.rp.id).toBe('127.0.0.1');
    expect(options.body.options.authenticatorSelection.residentKey).toBe('required');
    const forged = await call(t, 'POST', '/v1/account/passkeys', {
      headers: h,
      body: {
        name: 'Laptop',
        response: {
          id: 'AAAA',
          rawId: 'AAAA',
          type: 'public-key',
          response: { clientDataJSON: 'e30', attestationObject: 'oA' },
          clientExtensionResults: {},
        },
      },
    });
    expect(forged.status).toBe(400);
    // Regenerating codes with no factor: refused.
    expect(
      (await call(t, 'POST', '/v1/account/second-factor/recovery-codes', { headers: h })).status,
    ).toBe(409);
    // Another account's passkey id, or an unknown one: 404 either way.
    await t.app.database.db
      .insertInto('account_passkeys')
      .values({
        id: 'pk_foreign',
        account_id: other.account.id,
        credential_id: `cred-${unique()}`,
        public_key: 'AA',
        sign_count: 0n,
        transports: '[]',
        device_type: 'singleDevice',
        backed_up: false,
        name: 'Theirs',
        created_at: new Date(),
      })
      .execute();
    expect(
      (
        await call(t, 'PATCH', '/v1/account/passkeys/pk_foreign', {
          headers: h,
          body: { name: 'Mine' },
        })
      ).status,
    ).toBe(404);
    expect(
      (await call(t, 'DELETE', '/v1/account/passkeys/pk_foreign', { headers: h })).status,
    ).toBe(404);
    const theirs = await call(t, 'GET', '/v1/account/passkeys', { headers: other.headers });
    expect(theirs.body.passkeys.map((k: { name: string }) => k.name)).toEqual(['Theirs']);
    expect(
      (
        await call(t, 'PATCH', '/v1/account/passkeys/pk_foreign', {
          headers: other.headers,
          body: { name: '  ' },
        })
      ).status,
    ).toBe(400);
    // No credential at all.
    expect((await call(t, 'GET', '/v1/account/second-factor')).status).toBe(401);
  });

  it('the second-factor pages refuse a missing sign-in, a bad CSRF token and junk answers', async () => {
    const who = await person();
    const { secret } = await enrolTotp(who.headers);
    const browser = new Browser();
    const { page, html } = await afterPassword(browser, who.config, who.email);
    const uid = /\/interaction\/([^/]+)\/second-factor$/.exec(page.url)![1]!;
    // The set-up page is not a way around the factor the account has.
    const enrol = await browser.request(`${t.url}/interaction/${uid}/enrol`);
    expect(enrol.status).toBe(303);
    expect(enrol.headers.get('location')).toBe(`/interaction/${uid}/second-factor`);
    // Another browser (no interaction cookie) gets nothing.
    const stranger = new Browser();
    expect((await stranger.request(`${t.url}/interaction/${uid}/second-factor`)).status).toBe(400);
    // Without the CSRF token.
    const noCsrf = await browser.request(`${t.url}/interaction/${uid}/second-factor/totp`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ code: await totp(secret), csrf: 'x'.repeat(43) }),
    });
    expect(noCsrf.status).toBe(403);
    // JSON instead of a form.
    const json = await browser.request(`${t.url}/interaction/${uid}/second-factor/totp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: await totp(secret) }),
    });
    expect(json.status).toBe(403);
    const form = parseForm(html, '/second-factor/totp');
    const post = (action: string, fields: Record<string, string>) =>
      browser.request(`${t.url}/interaction/${uid}/second-factor/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...form.hidden, ...fields }),
      });
    expect((await post('totp', { code: 'a\u0000b' })).status).toBe(400);
    expect((await post('passkey', { response: '{not json' })).status).toBe(401);
    expect((await post('passkey', { response: '[]' })).status).toBe(401);
    expect((await post('recovery', { code: 'x'.repeat(5000) })).status).toBe(401);
    // Passwordless with a forged answer.
    const forged = await browser.request(`${t.url}/interaction/${uid}/passkey/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        ...form.hidden,
        response: JSON.stringify({ id: 'nope', response: {} }),
      }),
    });
    expect(forged.status).toBe(401);
  });

  it('discovery lists the acr values', async () => {
    const meta = (await (await fetch(`${t.issuer}/.well-known/openid-configuration`)).json()) as {
      acr_values_supported: string[];
    };
    expect(meta.acr_values_supported).toEqual([ACR_PASSWORD, ACR_MFA]);
  });
});
