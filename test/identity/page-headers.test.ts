// Every HTML page tollhouse serves carries the security headers (CSP with frame-ancestors,
// X-Frame-Options, nosniff, a referrer policy): the sign-in pages (login, consent, expired),
// the pages oidc-provider renders itself (device code entry and confirmation, logout and
// logged out, OAuth errors) and the console's (pages, sign-in failures, refusals). JSON answers
// of the OIDC mount do not get the page headers.
import { hash } from 'node:crypto';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, browserLogin, discover, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let ownerId: string;
const REDIRECT = 'http://127.0.0.1:9/callback';
const BYE = 'http://127.0.0.1:9/bye';
const STOP = 'http://never/';

beforeAll(async () => {
  t = await startIdentityApp();
  ownerId = (await accountWithPassword(t, 'owner@example.com', { admin: true })).id;
  await accountWithPassword(t, 'user@example.com');
});
afterAll(async () => t?.close());

/** Asserts the page headers on an HTML response and returns its text. */
async function expectSecurePage(response: Response, family: 'sign-in' | 'console') {
  expect(response.headers.get('content-type')).toMatch(/^text\/html/);
  const csp = response.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("base-uri 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(response.headers.get('x-frame-options')).toBe('DENY');
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('referrer-policy')).toBe('same-origin');
  const html = await response.text();
  if (family === 'sign-in') {
    expect(csp).toContain("default-src 'none'");
    // The one inline style is allowed by its hash, and the hash is of the style served.
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1];
    expect(style).toBeDefined();
    expect(csp).toContain(`'sha256-${hash('sha256', style!, 'base64')}'`);
  } else {
    expect(csp).toContain("default-src 'self'");
  }
  return html;
}

function expectNoPageHeaders(response: Response) {
  expect(response.headers.get('content-security-policy')).toBeNull();
  expect(response.headers.get('x-frame-options')).toBeNull();
}

async function webApp() {
  return t.app.identity.apps.create(
    {
      name: 'Photo Studio',
      kind: 'web',
      ownerAccountId: ownerId,
      redirectUris: [REDIRECT],
      postLogoutRedirectUris: [BYE],
      scopes: ['gateway'],
    },
    { id: 'test' },
  );
}

describe('sign-in pages (/interaction/*)', () => {
  it('login page, login page with an error, consent page, and the expired page', async () => {
    const { app, clientSecret } = await webApp();
    const config = await discover(t, app.clientId, clientSecret);
    const browser = new Browser();
    const p = await pkce();
    const authUrl = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid gateway',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
      state: p.state,
    });
    const login = await browser.follow(authUrl.href, REDIRECT);
    expect(new URL(login.url).pathname).toMatch(/^\/interaction\//);
    const loginHtml = await expectSecurePage(login.response, 'sign-in');

    const wrong = await browser.submit(
      login.url,
      loginHtml,
      '/login',
      { email: 'user@example.com', password: 'not the password' },
      REDIRECT,
    );
    const wrongHtml = await expectSecurePage(wrong.response, 'sign-in');
    expect(wrongHtml).toContain('role="alert"');

    const consent = await browser.submit(
      wrong.url,
      wrongHtml,
      '/login',
      { email: 'user@example.com', password: 'correct horse battery staple' },
      REDIRECT,
    );
    const consentHtml = await expectSecurePage(consent.response, 'sign-in');
    expect(consentHtml).toContain('/confirm"');

    await expectSecurePage(await fetch(`${t.url}/interaction/not-a-real-uid`), 'sign-in');
  });
});

describe('pages oidc-provider renders (/oidc/*)', () => {
  it('device code entry, a wrong code, the confirmation and the success page', async () => {
    const { app } = await t.app.identity.apps.create(
      {
        name: 'Render CLI',
        kind: 'public',
        ownerAccountId: ownerId,
        redirectUris: [REDIRECT],
        scopes: ['gateway'],
      },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, null);
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid gateway' });
    const browser = new Browser();
    let page = await browser.follow(device.verification_uri, STOP);
    let html = await expectSecurePage(page.response, 'sign-in');
    const wrong = await browser.submit(page.url, html, '/device', { user_code: 'BCDF-GHJK' }, STOP);
    html = await expectSecurePage(wrong.response, 'sign-in');

    page = await browser.submit(wrong.url, html, '/device', { user_code: device.user_code }, STOP);
    // The code leads to sign-in first, then the confirmation page.
    html = await expectSecurePage(page.response, 'sign-in');
    if (html.includes('/login"')) {
      page = await browser.submit(
        page.url,
        html,
        '/login',
        { email: 'user@example.com', password: 'correct horse battery staple' },
        STOP,
      );
      html = await expectSecurePage(page.response, 'sign-in');
    }
    if (html.includes('/confirm"')) {
      page = await browser.submit(page.url, html, '/confirm', {}, STOP);
      html = await expectSecurePage(page.response, 'sign-in');
    }
    expect(html).toContain('Render CLI');
    page = await browser.submit(page.url, html, '/device', {}, STOP);
    await expectSecurePage(page.response, 'sign-in');
  });

  it('the logout confirmation and the logged-out page (/oidc/session/end)', async () => {
    const { app, clientSecret } = await webApp();
    const config = await discover(t, app.clientId, clientSecret);
    const browser = new Browser();
    const p = await pkce();
    const callback = await browserLogin({
      browser,
      config,
      redirectUri: REDIRECT,
      scope: 'openid',
      email: 'user@example.com',
      codeChallenge: p.challenge,
      state: p.state,
    });
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    const logout = await browser.follow(
      oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token! }).href,
      STOP,
    );
    const html = await expectSecurePage(logout.response, 'sign-in');
    const done = await browser.submit(
      logout.url,
      html,
      '/session/end/confirm',
      { logout: 'yes' },
      STOP,
    );
    await expectSecurePage(done.response, 'sign-in');
  });

  it("oidc-provider's error page, and no page headers on its JSON answers", async () => {
    const error = await fetch(`${t.url}/oidc/auth?client_id=nope&response_type=code`);
    expect(error.status).toBe(400);
    await expectSecurePage(error, 'sign-in');
    // The issuer's discovery document and JWKS are JSON: no page headers.
    for (const path of ['/.well-known/openid-configuration', '/oidc/jwks']) {
      const json = await fetch(`${t.url}${path}`);
      expect(json.status).toBe(200);
      expectNoPageHeaders(json);
    }
  });
});

describe('console pages', () => {
  it('a page, a sign-in failure, a refusal and the signed-out page', async () => {
    // Sign in through the console's own client (first party: no consent page).
    const browser = new Browser();
    const start = await browser.follow(`${t.url}/console/login`, `${t.url}/console/callback`);
    const loginHtml = await expectSecurePage(start.response, 'sign-in');
    const done = await browser.submit(
      start.url,
      loginHtml,
      '/login',
      { email: 'user@example.com', password: 'correct horse battery staple' },
      `${t.url}/console/callback`,
    );
    expect((await browser.request(done.url)).status).toBe(303);
    await expectSecurePage(await browser.request(`${t.url}/console/keys`), 'console');
    // An operator-only page, for a customer: 403 rendered as a console page.
    const refused = await browser.request(`${t.url}/console/admin/accounts`);
    expect(refused.status).toBe(403);
    await expectSecurePage(refused, 'console');
    // A callback that is not one: the sign-in failure page.
    const failed = await fetch(`${t.url}/console/callback?code=x&state=y`);
    expect(failed.status).toBeGreaterThanOrEqual(400);
    await expectSecurePage(failed, 'console');
    await expectSecurePage(await fetch(`${t.url}/console/signed-out`), 'console');
  });
});
