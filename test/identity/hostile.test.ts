// Hostile and broken requests against the OpenID provider, its pages and the JWT verifier.
import { SignJWT, generateKeyPair, importJWK } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, browserLogin, discover, parseForm, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let ownerId: string;
const REDIRECT = 'http://127.0.0.1:9/callback';

beforeAll(async () => {
  t = await startIdentityApp({ LOGIN_ATTEMPTS_PER_MINUTE: '3' });
  ownerId = (await accountWithPassword(t, 'owner@example.com', { admin: true })).id;
  await accountWithPassword(t, 'user@example.com');
});
afterAll(async () => t.close());

/** The OAuth error code of a rejected openid-client call (body or WWW-Authenticate). */
async function oauthError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const e = error as { error?: string; cause?: Array<{ parameters?: { error?: string } }> };
    return e.error ?? e.cause?.[0]?.parameters?.error ?? String(error);
  }
  throw new Error('expected the request to be refused');
}

async function webApp() {
  const { app, clientSecret } = await t.app.identity.apps.create(
    {
      name: 'Web',
      kind: 'web',
      ownerAccountId: ownerId,
      redirectUris: [REDIRECT],
      scopes: ['gateway'],
    },
    { id: 'test' },
  );
  return {
    app,
    clientSecret: clientSecret!,
    config: await discover(t, app.clientId, clientSecret),
  };
}

async function codeFor(
  config: oidc.Configuration,
  scope = 'openid gateway',
  email = 'user@example.com',
) {
  const p = await pkce();
  const callback = await browserLogin({
    browser: new Browser(),
    config,
    redirectUri: REDIRECT,
    scope,
    email,
    codeChallenge: p.challenge,
    state: p.state,
  });
  return { callback, ...p };
}

describe('authorization endpoint', () => {
  it('never redirects to an unregistered redirect URI', async () => {
    const { config } = await webApp();
    const p = await pkce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: 'https://attacker.example/steal',
      scope: 'openid',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    });
    const response = await fetch(url, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    const html = await response.text();
    expect(html).toContain('redirect_uri did not match any of the client');
    expect(html).not.toContain('<script');
  });

  it('requires PKCE with S256', async () => {
    const { config } = await webApp();
    const without = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid' });
    const response = await fetch(without, { redirect: 'manual' });
    expect(response.status).toBe(303);
    const location = new URL(response.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(REDIRECT);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/PKCE/);

    const plain = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: 'a'.repeat(43),
      code_challenge_method: 'plain',
    });
    const refused = new URL((await fetch(plain, { redirect: 'manual' })).headers.get('location')!);
    expect(refused.searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses the implicit flow', async () => {
    const { config } = await webApp();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      response_type: 'id_token token',
      nonce: 'n',
    });
    const response = await fetch(url, { redirect: 'manual' });
    const location = new URL(response.headers.get('location') ?? 'http://x/#error=none');
    const error =
      location.searchParams.get('error') ??
      new URLSearchParams(location.hash.slice(1)).get('error');
    expect(error).toBe('unsupported_response_type');
  });
});

describe('token endpoint', () => {
  it('refuses a wrong code_verifier', async () => {
    const { config } = await webApp();
    const { callback, state } = await codeFor(config);
    await expect(
      oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
        expectedState: state,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a replayed code', async () => {
    const { config } = await webApp();
    const { callback, state, verifier } = await codeFor(config, 'openid offline_access gateway');
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
    await expect(
      oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
    // RFC 6749 §4.1.2: a replayed code revokes what the first redemption issued.
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('stores codes and refresh tokens only as keyed hashes', async () => {
    const { config } = await webApp();
    const { callback, state, verifier } = await codeFor(config, 'openid offline_access gateway');
    const code = callback.searchParams.get('code')!;
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
    const rows = await t.app.database.db.selectFrom('oidc_payloads').selectAll().execute();
    const dump = JSON.stringify(rows);
    expect(rows.some((r) => r.model === 'RefreshToken')).toBe(true);
    expect(dump).not.toContain(code);
    expect(dump).not.toContain(tokens.refresh_token!);
  });

  it('refuses an expired device code', async () => {
    const { app } = await t.app.identity.apps.create(
      { name: 'CLI', kind: 'public', ownerAccountId: ownerId, redirectUris: [REDIRECT] },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, null);
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    // Let the code expire: oidc-provider checks the payload's exp.
    await sql`update oidc_payloads set payload = jsonb_set(payload, '{exp}', to_jsonb(extract(epoch from now())::int - 1)) where model = 'DeviceCode'`.execute(
      t.app.database.db,
    );
    await expect(
      oidc.pollDeviceAuthorizationGrant(config, { ...device, interval: 0 }),
    ).rejects.toMatchObject({ error: 'expired_token' });
  });

  it('refuses client credentials for an app whose owner account is disabled', async () => {
    const owner = await accountWithPassword(t, 'owner-soon-gone@example.com');
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'M', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    await t.app.database.db
      .updateTable('accounts')
      .set({ status: 'disabled' })
      .where('id', '=', owner.id)
      .execute();
    const config = await discover(t, app.clientId, clientSecret);
    expect(await oauthError(oidc.clientCredentialsGrant(config, { scope: 'gateway' }))).toBe(
      'invalid_client',
    );
  });

  it('refuses a disabled app and a wrong secret, and honours a rotation grace period', async () => {
    const { app, clientSecret, config } = await webApp();
    const { app: machineApp, clientSecret: machineSecret } = await t.app.identity.apps.create(
      { name: 'M', kind: 'machine', ownerAccountId: ownerId, scopes: ['gateway'] },
      { id: 'test' },
    );
    const good = await discover(t, machineApp.clientId, machineSecret);
    await oidc.clientCredentialsGrant(good, { scope: 'gateway' });
    const wrong = await discover(t, machineApp.clientId, `${machineSecret}x`);
    expect(await oauthError(oidc.clientCredentialsGrant(wrong, { scope: 'gateway' }))).toBe(
      'invalid_client',
    );

    const rotated = await t.app.identity.apps.rotateSecret(machineApp.id, 3600, { id: 'test' });
    await oidc.clientCredentialsGrant(good, { scope: 'gateway' }); // old secret, in grace
    const fresh = await discover(t, machineApp.clientId, rotated.clientSecret);
    await oidc.clientCredentialsGrant(fresh, { scope: 'gateway' });
    const again = await t.app.identity.apps.rotateSecret(machineApp.id, 0, { id: 'test' });
    expect(await oauthError(oidc.clientCredentialsGrant(fresh, { scope: 'gateway' }))).toBe(
      'invalid_client',
    );
    await oidc.clientCredentialsGrant(await discover(t, machineApp.clientId, again.clientSecret), {
      scope: 'gateway',
    });

    await t.app.identity.apps.update(app.id, { status: 'disabled' }, { id: 'test' });
    expect(clientSecret).toBeTruthy();
    const p = await pkce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    });
    const response = await fetch(url, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('invalid_client');
  });
});

describe('login page', () => {
  async function loginPage() {
    const { config } = await webApp();
    const browser = new Browser();
    const p = await pkce();
    const page = await browser.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
      }).href,
      REDIRECT,
    );
    return { browser, page, html: await page.response.text() };
  }

  it('answers an unknown email, a wrong password and a disabled account with the same message', async () => {
    const disabled = await accountWithPassword(t, 'gone@example.com');
    await t.app.database.db
      .updateTable('accounts')
      .set({ status: 'disabled' })
      .where('id', '=', disabled.id)
      .execute();
    const bodies: string[] = [];
    for (const [email, password] of [
      ['nobody@example.com', PASSWORD],
      ['owner@example.com', 'wrong password!'],
      ['gone@example.com', PASSWORD],
    ] as const) {
      const { browser, page, html } = await loginPage();
      const result = await browser.submit(page.url, html, '/login', { email, password }, REDIRECT);
      expect(result.response.status).toBe(401);
      const text = await result.response.text();
      bodies.push(/role="alert">([^<]*)</.exec(text)![1]!);
    }
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).not.toMatch(/exist|unknown|disabled/i);
  });

  it('stops refresh tokens of an account once it is disabled', async () => {
    const account = await accountWithPassword(t, 'soon-gone@example.com');
    const { config } = await webApp();
    const { callback, state, verifier } = await codeFor(
      config,
      'openid offline_access gateway',
      'soon-gone@example.com',
    );
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
    await t.app.database.db
      .updateTable('accounts')
      .set({ status: 'disabled' })
      .where('id', '=', account.id)
      .execute();
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('refuses a form without the CSRF token', async () => {
    const { browser, page, html } = await loginPage();
    const form = parseForm(html, '/login');
    const response = await browser.request(new URL(form.action, page.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'user@example.com', password: PASSWORD, csrf: 'forged' }),
    });
    expect(response.status).toBe(403);
  });

  it('refuses a form posted without the interaction cookie (another browser)', async () => {
    const { page, html } = await loginPage();
    const form = parseForm(html, '/login');
    const response = await new Browser().request(new URL(form.action, page.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...form.hidden, email: 'user@example.com', password: PASSWORD }),
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('expired');
  });

  it('rate limits sign-in attempts per email address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const { browser, page, html } = await loginPage();
      const result = await browser.submit(
        page.url,
        html,
        '/login',
        { email: 'target@example.com', password: 'guess' + i },
        REDIRECT,
      );
      statuses.push(result.response.status);
      if (result.response.status === 429)
        expect(result.response.headers.get('retry-after')).toMatch(/^\d+$/);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('access token verifier', () => {
  async function ccToken() {
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'M', kind: 'machine', ownerAccountId: ownerId, scopes: ['gateway'] },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, clientSecret);
    return (await oidc.clientCredentialsGrant(config, { scope: 'gateway' })).access_token;
  }
  const authenticate = (token: string) =>
    t.app.authenticator.authenticate(`Bearer ${token}`, { origin: null });

  it('refuses a tampered token', async () => {
    const token = await ccToken();
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.scope = 'gateway admin';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    await expect(authenticate(forged)).rejects.toMatchObject({ status: 401 });
  });

  it('refuses a token from a foreign issuer or key, for another audience, or of another type', async () => {
    const token = await ccToken();
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString());
    // Our own signing key, loaded the way the service does, signs the variants.
    const row = await t.app.database.db
      .selectFrom('signing_keys')
      .selectAll()
      .where('status', '=', 'active')
      .executeTakeFirstOrThrow();
    const ownKey = await importJWK(
      JSON.parse(t.app.secrets.box('oidc-signing-keys').open(row.private_jwk_sealed, row.kid)),
      'ES256',
    );
    const sign = (
      payload: Record<string, unknown>,
      key: Parameters<SignJWT['sign']>[0],
      typ = 'at+jwt',
    ) => new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: header.kid, typ }).sign(key);

    // Control: the same claims, signed the same way, are accepted — so each refusal below is
    // caused by the one thing changed.
    await expect(authenticate(await sign(claims, ownKey))).resolves.toMatchObject({
      accountId: ownerId,
    });

    const foreign = await generateKeyPair('ES256');
    await expect(authenticate(await sign(claims, foreign.privateKey))).rejects.toMatchObject({
      status: 401,
    });
    await expect(
      authenticate(await sign({ ...claims, iss: 'https://evil.example/oidc' }, ownKey)),
    ).rejects.toMatchObject({ status: 401 });
    await expect(
      authenticate(await sign({ ...claims, aud: 'https://other.example' }, ownKey)),
    ).rejects.toMatchObject({ status: 401 });
    await expect(authenticate(await sign(claims, ownKey, 'JWT'))).rejects.toMatchObject({
      status: 401,
    });
    await expect(
      authenticate(await sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 }, ownKey)),
    ).rejects.toMatchObject({ status: 401 });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${token.split('.')[1]}.`;
    await expect(authenticate(none)).rejects.toMatchObject({ status: 401 });
  });

  it('leaves API keys (th_…) and garbage to other verifiers', async () => {
    expect(await t.app.identity.verifier.verify('th_sk_abc', { origin: null })).toBeNull();
    expect(await t.app.identity.verifier.verify('not-a-jwt', { origin: null })).toBeNull();
    await expect(authenticate('th_sk_abc')).rejects.toMatchObject({
      status: 401,
      message: 'Invalid API key',
    });
  });
});
