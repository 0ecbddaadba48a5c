// Every OIDC flow end to end over real HTTP, with openid-client as the relying party and the
// login/consent pages submitted as a browser would.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, browserLogin, discover, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let ownerId: string;
const REDIRECT = 'http://127.0.0.1:9/callback';

beforeAll(async () => {
  t = await startIdentityApp();
  ownerId = (
    await accountWithPassword(t, 'owner@example.com', { admin: true, name: 'Olive Owner' })
  ).id;
  await accountWithPassword(t, 'user@example.com', { name: 'Uma User' });
});
afterAll(async () => t.close());

async function webApp(scopes: string[] = ['gateway', 'usage:read']) {
  return t.app.identity.apps.create(
    {
      name: 'Photo Studio',
      kind: 'web',
      ownerAccountId: ownerId,
      redirectUris: [REDIRECT],
      postLogoutRedirectUris: ['http://127.0.0.1:9/bye'],
      scopes,
    },
    { id: 'test' },
  );
}

describe('authorization code + PKCE', () => {
  it('logs a user in through the login and consent pages and issues a gateway JWT, id token and refresh token', async () => {
    const { app, clientSecret } = await webApp();
    const config = await discover(t, app.clientId, clientSecret);
    const browser = new Browser();
    const p = await pkce();
    const loginPage = await browser.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid email offline_access gateway',
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
        state: p.state,
      }).href,
      REDIRECT,
    );
    const html = await loginPage.response.text();
    expect(loginPage.response.status).toBe(200);
    expect(html).toContain('Photo Studio'); // the app's name is shown
    expect(html).toContain('<label for="password">');

    const callback = await browserLogin({
      browser,
      config,
      redirectUri: REDIRECT,
      scope: 'openid email offline_access gateway',
      email: 'user@example.com',
      codeChallenge: p.challenge,
      state: p.state,
    });
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    expect(tokens.claims()?.email).toBe('user@example.com');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.scope).toContain('gateway');

    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    const user = await t.app.identity.accounts.authenticate(
      'user@example.com',
      'correct horse battery staple',
    );
    expect(principal).toMatchObject({
      via: 'access_token',
      accountId: user!.id,
      appId: app.id,
      clientId: app.clientId,
      endUserId: null,
      scopes: ['gateway'],
    });
  });

  it('rotates refresh tokens and revokes the grant when a used refresh token comes back', async () => {
    const { app, clientSecret } = await webApp();
    const config = await discover(t, app.clientId, clientSecret);
    const p = await pkce();
    const callback = await browserLogin({
      browser: new Browser(),
      config,
      redirectUri: REDIRECT,
      scope: 'openid offline_access gateway',
      email: 'user@example.com',
      codeChallenge: p.challenge,
      state: p.state,
    });
    const first = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    await t.app.authenticator.authenticate(`Bearer ${second.access_token}`, { origin: null });

    // Reuse of the first (rotated) refresh token: refused, and the whole grant is revoked.
    await expect(oidc.refreshTokenGrant(config, first.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await expect(oidc.refreshTokenGrant(config, second.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('serves userinfo, introspects and revokes an opaque access token, and logs out', async () => {
    const { app, clientSecret } = await webApp();
    const config = await discover(t, app.clientId, clientSecret);
    const browser = new Browser();
    const p = await pkce();
    const callback = await browserLogin({
      browser,
      config,
      redirectUri: REDIRECT,
      scope: 'openid email profile offline_access',
      email: 'user@example.com',
      codeChallenge: p.challenge,
      state: p.state,
    });
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    const sub = tokens.claims()!.sub;
    const info = await oidc.fetchUserInfo(config, tokens.access_token, sub);
    expect(info).toMatchObject({
      sub,
      email: 'user@example.com',
      email_verified: true,
      name: 'Uma User',
    });

    const active = await oidc.tokenIntrospection(config, tokens.access_token);
    expect(active).toMatchObject({ active: true, sub, client_id: app.clientId });
    const refresh = await oidc.tokenIntrospection(config, tokens.refresh_token!);
    expect(refresh.active).toBe(true);

    await oidc.tokenRevocation(config, tokens.access_token);
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    await oidc.tokenRevocation(config, tokens.refresh_token!);
    expect((await oidc.tokenIntrospection(config, tokens.refresh_token!)).active).toBe(false);

    // RP-initiated logout: the confirmation page (CSRF field included), then the app's page.
    const logoutUrl = oidc.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'http://127.0.0.1:9/bye',
      state: 'bye-state',
    });
    const page = await browser.follow(logoutUrl.href, 'http://127.0.0.1:9/bye');
    expect(page.response.status).toBe(200);
    const html = await page.response.text();
    expect(html).toContain('Photo Studio');
    const done = await browser.submit(
      page.url,
      html,
      '/session/end/confirm',
      { logout: 'yes' },
      'http://127.0.0.1:9/bye',
    );
    expect(done.url).toBe('http://127.0.0.1:9/bye?state=bye-state');

    // Signed out: the next authorization asks for the password again.
    const again = await pkce();
    const next = await browser.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: again.challenge,
        code_challenge_method: 'S256',
        state: again.state,
      }).href,
      REDIRECT,
    );
    expect(await next.response.text()).toContain('/login"');
  });
});

describe('client credentials', () => {
  it('issues a JWT access token whose principal is the app and its owner account', async () => {
    const { app, clientSecret } = await t.app.identity.apps.create(
      {
        name: 'Batch Backend',
        kind: 'machine',
        ownerAccountId: ownerId,
        scopes: ['gateway', 'usage:read'],
      },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, clientSecret);
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'gateway' });
    expect(tokens.token_type).toBe('bearer');
    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    expect(principal).toMatchObject({
      via: 'access_token',
      accountId: ownerId,
      appId: app.id,
      clientId: app.clientId,
      scopes: ['gateway'],
    });
    await expect(oidc.clientCredentialsGrant(config, { scope: 'admin' })).rejects.toMatchObject({
      error: 'invalid_scope',
    });
  });
});

describe('device flow (RFC 8628)', () => {
  it('lets a user approve a device by entering its code, then the device gets tokens', async () => {
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
    expect(device.verification_uri).toBe(`${t.issuer}/device`);

    // The short address a device can print redirects to the code entry page.
    const short = await fetch(`${t.url}/device`, { redirect: 'manual' });
    expect(short.headers.get('location')).toBe('/oidc/device');

    const browser = new Browser();
    const STOP = 'http://never/';
    let page = await browser.follow(device.verification_uri, STOP);
    let html = await page.response.text();
    expect(html).toContain('<label for="user_code">');
    page = await browser.submit(page.url, html, '/device', { user_code: device.user_code }, STOP);
    html = await page.response.text();
    expect(html).toContain('Render CLI'); // confirm page names the app
    page = await browser.submit(page.url, html, '/device', {}, STOP);
    html = await page.response.text();
    page = await browser.submit(
      page.url,
      html,
      '/login',
      { email: 'user@example.com', password: 'correct horse battery staple' },
      STOP,
    );
    html = await page.response.text();
    page = await browser.submit(page.url, html, '/confirm', {}, STOP);
    html = await page.response.text();
    expect(html).toContain('Device connected');

    const tokens = await oidc.pollDeviceAuthorizationGrant(config, device);
    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    expect(principal.clientId).toBe(app.clientId);
    expect(principal.scopes).toEqual(['gateway']);
  });
});

describe('CORS', () => {
  it("answers browser calls to the token endpoint only from the app's allowed origins", async () => {
    const { app } = await t.app.identity.apps.create(
      {
        name: 'SPA',
        kind: 'public',
        ownerAccountId: ownerId,
        redirectUris: ['https://spa.example/cb'],
        allowedOrigins: ['https://spa.example'],
      },
      { id: 'test' },
    );
    const post = (origin: string) =>
      fetch(`${t.issuer}/token`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: 'x',
          client_id: app.clientId,
        }),
      });
    const allowed = await post('https://spa.example');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://spa.example');
    const other = await post('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('discovery and mounting', () => {
  it('publishes only what works, at the issuer and at the root', async () => {
    const response = await fetch(`${t.issuer}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as { grant_types_supported: string[] };
    expect(doc).toMatchObject({
      issuer: t.issuer,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
      id_token_signing_alg_values_supported: ['ES256'],
    });
    expect([...doc.grant_types_supported].sort()).toEqual(
      [
        'authorization_code',
        'client_credentials',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:token-exchange',
      ].sort(),
    );
    for (const absent of [
      'pushed_authorization_request_endpoint',
      'dpop_signing_alg_values_supported',
      'registration_endpoint',
    ]) {
      expect(doc).not.toHaveProperty(absent);
    }
    const root = await (await fetch(`${t.url}/.well-known/openid-configuration`)).json();
    expect(root).toEqual(doc);
  });

  it('keeps request ids on OAuth endpoints, and their own error format', async () => {
    const response = await fetch(`${t.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-request-id': 'req-oidc-1',
      },
      body: 'grant_type=bogus',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-request-id')).toBe('req-oidc-1');
    const body = await response.json();
    expect(body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
    expect(body).not.toHaveProperty('message');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{[^}]*route="\/oidc\/\*"[^}]*\} \d+/,
    );
  });
});
