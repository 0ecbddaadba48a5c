// Sign in with an upstream OpenID provider (issue #18 item 3), against a second tollhouse
// acting as the upstream provider: a real OpenID provider, its login and consent pages
// submitted as a browser would. Two downstream tollhouses use it: one with open sign-up
// (limited to example.com) and one closed.
import * as oidc from 'openid-client';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { freePort } from '../support/process.ts';
import { Browser, photoStudio, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';

/** Cookies kept per origin: the two tollhouses share a host and their cookies' names. */
class TwoSiteBrowser extends Browser {
  readonly sites = new Map<string, Browser>();
  override async request(url: string, init: RequestInit = {}): Promise<Response> {
    const origin = new URL(url).origin;
    let site = this.sites.get(origin);
    if (site === undefined) {
      site = new Browser();
      this.sites.set(origin, site);
    }
    return site.request(url, init);
  }
  site(t: { url: string }): Browser {
    return this.sites.get(new URL(t.url).origin)!;
  }
}

const REDIRECT = 'http://127.0.0.1:9/callback';

let upstream: IdentityTestApp;
let flaky: IdentityTestApp;
let open: Downstream;
let closed: Downstream;

interface Downstream {
  t: IdentityTestApp;
  rp: oidc.Configuration;
  callback: string;
}

async function downstream(
  env: Record<string, string>,
  extraProviders: (
    url: string,
  ) => Promise<Array<Record<string, string | undefined>>> = async () => [],
): Promise<Downstream> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const callback = `${url}/upstream/up/callback`;
  const owner = await accountWithPassword(upstream, `owner-${port}@example.com`);
  const { app, clientSecret } = await upstream.app.identity.apps.create(
    {
      name: `Downstream ${port}`,
      kind: 'web',
      ownerAccountId: owner.id,
      redirectUris: [callback],
      scopes: [],
      grantTypes: ['authorization_code'],
    },
    { id: 'test' },
  );
  const providers = [
    {
      id: 'up',
      name: 'Upstream Co',
      issuer: upstream.issuer,
      client_id: app.clientId,
      client_secret: clientSecret!,
    },
    ...(await extraProviders(url)),
  ];
  const started = await startTestApp({
    port,
    env: { PUBLIC_URL: url, UPSTREAM_OIDC_PROVIDERS: JSON.stringify(providers), ...env },
  });
  const t = Object.assign(started, { issuer: `${url}/oidc` });
  const rpOwner = await accountWithPassword(t, `rp-owner@${port}.example.org`);
  return { t, rp: await photoStudio(t, rpOwner.id, REDIRECT), callback };
}

beforeAll(async () => {
  upstream = await startIdentityApp();
  flaky = await startIdentityApp();
  await accountWithPassword(upstream, 'vera@example.com', { name: 'Vera Verified' });
  await upstream.app.identity.accounts.create({
    email: 'ursula@example.com',
    password: PASSWORD,
    emailVerified: false,
  });
  await accountWithPassword(upstream, 'newbie@example.com', { name: 'New Bie' });
  await accountWithPassword(upstream, 'outsider@elsewhere.org');
  await accountWithPassword(upstream, 'taken@example.com');
  await accountWithPassword(upstream, 'second@example.com');
  await accountWithPassword(upstream, 'third@example.com');
  await accountWithPassword(upstream, 'tess@example.com');
  const flakyOwner = await accountWithPassword(flaky, 'flaky-owner@example.com');
  await accountWithPassword(flaky, 'flaky@example.com');
  // Nothing listens there.
  const downPort = await freePort();
  open = await downstream(
    { SIGNUP_POLICY: 'open', SIGNUP_EMAIL_DOMAINS: 'example.com' },
    async (url) => {
      const flakyClient = await flaky.app.identity.apps.create(
        {
          name: 'Open downstream',
          kind: 'web',
          ownerAccountId: flakyOwner.id,
          redirectUris: [`${url}/upstream/flaky/callback`],
          scopes: [],
          grantTypes: ['authorization_code'],
        },
        { id: 'test' },
      );
      return [
        {
          id: 'down',
          name: 'Down Corp',
          issuer: `http://127.0.0.1:${downPort}/oidc`,
          client_id: 'x',
          client_secret: 'y',
        },
        {
          id: 'flaky',
          name: 'Flaky Inc',
          issuer: flaky.issuer,
          client_id: flakyClient.app.clientId,
          client_secret: flakyClient.clientSecret!,
          scopes: 'openid email',
        },
      ];
    },
  );
  closed = await downstream({});
}, 120_000);

afterAll(async () => {
  await Promise.all([open?.t.close(), closed?.t.close()]);
  await Promise.all([upstream?.close(), flaky?.close().catch(() => undefined)]);
});

/** From the downstream app's authorize URL to "Continue with <provider>". */
async function startAtDownstream(d: Downstream, browser: TwoSiteBrowser, providerId = 'up') {
  const p = await pkce();
  const authUrl = oidc.buildAuthorizationUrl(d.rp, {
    redirect_uri: REDIRECT,
    scope: 'openid email',
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    state: p.state,
  });
  const login = await browser.follow(authUrl.href, REDIRECT);
  const html = await login.response.text();
  expect(html).toContain(`Continue with`);
  const page = await browser.submit(login.url, html, `/upstream/${providerId}`, {}, REDIRECT);
  return { page, pkce: p };
}

/** Signs in at the upstream's login page (and allows its consent page); stops at `stopAt`. */
async function signInUpstream(
  browser: TwoSiteBrowser,
  page: { url: string; response: Response },
  email: string,
  stopAt: string,
): Promise<{ url: string; status: number; html: string }> {
  let html = await page.response.text();
  expect(html).toContain('/login"');
  let next = await browser.submit(page.url, html, '/login', { email, password: PASSWORD }, stopAt);
  for (let i = 0; i < 3; i++) {
    if (next.url.startsWith(stopAt))
      return { url: next.url, status: next.response.status, html: '' };
    html = await next.response.text();
    if (!html.includes('/confirm"')) break;
    next = await browser.submit(next.url, html, '/confirm', {}, stopAt);
  }
  return { url: next.url, status: next.response.status, html };
}

/** The whole sign-in: returns the page where it ended (the app's redirect, or an error). */
async function upstreamSignIn(d: Downstream, email: string, browser = new TwoSiteBrowser()) {
  const { page, pkce: p } = await startAtDownstream(d, browser);
  const end = await signInUpstream(browser, page, email, REDIRECT);
  if (!end.url.startsWith(REDIRECT)) {
    return { ok: false as const, status: end.status, html: end.html };
  }
  const tokens = await oidc.authorizationCodeGrant(d.rp, new URL(end.url), {
    pkceCodeVerifier: p.verifier,
    expectedState: p.state,
  });
  return { ok: true as const, claims: tokens.claims()!, browser };
}

const db = (d: Downstream) => d.t.app.database.db;
const identities = (d: Downstream, accountId: string) =>
  db(d).selectFrom('account_identities').selectAll().where('account_id', '=', accountId).execute();

describe('first sign-in with an upstream identity', () => {
  it('links to the account with the same address when the provider verified it', async () => {
    const vera = await accountWithPassword(closed.t, 'Vera@example.com');
    const result = await upstreamSignIn(closed, 'vera@example.com');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.claims.sub).toBe(vera.id);
    // RFC 8176 `fed` on the downstream's session (the ID token's amr is the MFA work's).
    const sessions = await db(closed)
      .selectFrom('oidc_payloads')
      .select('payload')
      .where('model', '=', 'Session')
      .execute();
    const mine = sessions.map((row) => row.payload).filter((p) => p.accountId === vera.id);
    expect(mine.map((p) => p.amr)).toContainEqual(['fed']);
    const linked = await identities(closed, vera.id);
    expect(linked).toHaveLength(1);
    expect(linked[0]).toMatchObject({ provider: 'up', email: 'vera@example.com' });

    // The second time goes by the linked sub, not the address.
    const again = await upstreamSignIn(closed, 'vera@example.com');
    expect(again.ok && again.claims.sub).toBe(vera.id);
  });

  it('asks an account with an authenticator app for its code after the upstream, as after a password', async () => {
    const tess = await accountWithPassword(closed.t, 'tess@example.com');
    const headers = bearer((await issueKey(closed.t, tess.id)).secret);
    const begun = await call(closed.t, 'POST', '/v1/account/second-factor/totp', { headers });
    expect(begun.status).toBe(201);
    const epoch = Math.floor(closed.t.clock().getTime() / 1000);
    const code = await generate({ secret: begun.body.secret as string, epoch });
    const confirmed = await call(closed.t, 'POST', '/v1/account/second-factor/totp/confirm', {
      headers,
      body: { code },
    });
    expect(confirmed.status).toBe(200);

    const browser = new TwoSiteBrowser();
    const { page } = await startAtDownstream(closed, browser);
    // The upstream vouched for the first factor; the downstream stops at its own second step
    // instead of finishing the sign-in, so no code reaches the app yet.
    const end = await signInUpstream(browser, page, 'tess@example.com', REDIRECT);
    expect(end.url).not.toContain(REDIRECT);
    expect(new URL(end.url).origin).toBe(new URL(closed.t.url).origin);
    expect(end.url).toMatch(/\/interaction\/[^/]+\/second-factor$/);
    expect(await identities(closed, tess.id)).toHaveLength(1);
  });

  it('refuses an unverified upstream address for an existing account, and writes nothing', async () => {
    const ursula = await accountWithPassword(closed.t, 'ursula@example.com');
    const result = await upstreamSignIn(closed, 'ursula@example.com');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBe(403);
    expect(result.html).toContain('has not verified this e-mail address');
    expect(await identities(closed, ursula.id)).toHaveLength(0);
  });

  it('creates an account under open sign-up, verified as upstream says', async () => {
    const result = await upstreamSignIn(open, 'newbie@example.com');
    expect(result.ok).toBe(true);
    const account = await open.t.app.identity.accounts.findByEmail('newbie@example.com');
    expect(account).toMatchObject({ emailVerified: true, name: 'New Bie', status: 'active' });
    expect(result.ok && result.claims.sub).toBe(account!.id);
    expect(await identities(open, account!.id)).toHaveLength(1);
  });

  it('creates an unconfirmed account from an unverified address when none exists (open)', async () => {
    const result = await upstreamSignIn(open, 'ursula@example.com');
    expect(result.ok).toBe(true);
    const account = await open.t.app.identity.accounts.findByEmail('ursula@example.com');
    // As a sign-up: no gateway or signer credentials until the address is confirmed.
    expect(account).toMatchObject({ emailVerified: false, status: 'active' });
  });

  it('refuses an address outside SIGNUP_EMAIL_DOMAINS under open sign-up', async () => {
    const result = await upstreamSignIn(open, 'outsider@elsewhere.org');
    expect(result).toMatchObject({ ok: false, status: 403 });
    expect(!result.ok && result.html).toContain('limited to addresses at example.com');
    expect(await open.t.app.identity.accounts.findByEmail('outsider@elsewhere.org')).toBeNull();
  });

  it('refuses to create an account under closed sign-up, with a clear page', async () => {
    const result = await upstreamSignIn(closed, 'newbie@example.com');
    expect(result).toMatchObject({ ok: false, status: 403 });
    expect(!result.ok && result.html).toContain('created by the operator');
    expect(await closed.t.app.identity.accounts.findByEmail('newbie@example.com')).toBeNull();
  });

  it('refuses a disabled account, linked or not', async () => {
    const account = await accountWithPassword(open.t, 'second@example.com');
    expect((await upstreamSignIn(open, 'second@example.com')).ok).toBe(true);
    await open.t.app.identity.accounts.update(account.id, { status: 'disabled' }, { id: 'test' });
    const result = await upstreamSignIn(open, 'second@example.com');
    expect(result).toMatchObject({ ok: false, status: 403 });
    expect(!result.ok && result.html).toContain('This account cannot sign in');
  });
});

describe('hostile callbacks', () => {
  /** A sign-in stopped at the downstream's callback, before it is used. */
  async function atCallback(d: Downstream, email: string) {
    const browser = new TwoSiteBrowser();
    const { page } = await startAtDownstream(d, browser);
    const end = await signInUpstream(browser, page, email, d.callback);
    expect(end.url.startsWith(d.callback)).toBe(true);
    return { browser, callbackUrl: end.url };
  }

  it('refuses a tampered state, and a replayed callback', async () => {
    await accountWithPassword(open.t, 'taken@example.com');
    const { browser, callbackUrl } = await atCallback(open, 'taken@example.com');
    const tampered = new URL(callbackUrl);
    tampered.searchParams.set('state', 'A'.repeat(43));
    const refused = await browser.follow(tampered.href, REDIRECT);
    expect(refused.response.status).toBe(400);
    expect(await refused.response.text()).toContain('expired or was already used');

    // The downstream app's consent page comes after the sign-in, then the app.
    const first = await browser.follow(callbackUrl, REDIRECT);
    const html = await first.response.text();
    expect(html).toContain('/confirm"');
    const app = await browser.submit(first.url, html, '/confirm', {}, REDIRECT);
    expect(app.url.startsWith(REDIRECT)).toBe(true);
    const replay = await browser.follow(callbackUrl, REDIRECT);
    expect(replay.response.status).toBe(400);
    expect(await replay.response.text()).toContain('expired or was already used');
  });

  it('refuses a callback in a browser that did not start the sign-in', async () => {
    const { browser, callbackUrl } = await atCallback(open, 'taken@example.com');
    // The same interaction, but the state cookie is gone (login CSRF: someone else's callback).
    browser.site(open.t).cookies.delete('tollhouse_upstream');
    const refused = await browser.follow(callbackUrl, REDIRECT);
    expect(refused.response.status).toBe(400);
    expect(await refused.response.text()).toContain('not started in this browser');
    // And a browser with no cookies at all.
    const stranger = await new TwoSiteBrowser().follow(callbackUrl, REDIRECT);
    expect(stranger.response.status).toBe(400);
  });

  it('refuses an ID token whose nonce is not the one the sign-in sent', async () => {
    const { browser, callbackUrl } = await atCallback(open, 'taken@example.com');
    await db(open).updateTable('upstream_flows').set({ nonce: 'not-the-nonce' }).execute();
    const refused = await browser.follow(callbackUrl, REDIRECT);
    expect(refused.response.status).toBe(400);
    expect(await refused.response.text()).toContain('could not be verified');
  });

  it('answers an unreachable provider with a clear page and starts nothing', async () => {
    const before = await db(open).selectFrom('upstream_flows').select('state_hash').execute();
    const browser = new TwoSiteBrowser();
    const { page } = await startAtDownstream(open, browser, 'down');
    expect(page.response.status).toBe(502);
    expect(await page.response.text()).toContain('Down Corp could not be reached');
    const after = await db(open).selectFrom('upstream_flows').select('state_hash').execute();
    expect(after).toHaveLength(before.length);
  });

  it('writes no account when the provider goes down before the code is exchanged', async () => {
    const browser = new TwoSiteBrowser();
    const { page } = await startAtDownstream(open, browser, 'flaky');
    const callback = `${open.t.url}/upstream/flaky/callback`;
    const end = await signInUpstream(browser, page, 'flaky@example.com', callback);
    expect(end.url.startsWith(callback)).toBe(true);
    await flaky.close();
    const refused = await browser.follow(end.url, REDIRECT);
    expect(refused.response.status).toBe(502);
    expect(await refused.response.text()).toContain('Flaky Inc could not be reached');
    expect(await open.t.app.identity.accounts.findByEmail('flaky@example.com')).toBeNull();
    const linked = await db(open)
      .selectFrom('account_identities')
      .selectAll()
      .where('provider', '=', 'flaky')
      .execute();
    expect(linked).toHaveLength(0);
  });

  it('answers unknown providers and malformed states without a server error', async () => {
    for (const path of [
      '/upstream/nope/callback?state=' + 'B'.repeat(43),
      '/upstream/up/callback',
      '/upstream/up/callback?state=%00',
      '/upstream/UP/callback?state=x',
      '/upstream/link?state=' + 'C'.repeat(43),
      '/upstream/link',
      '/interaction/nope/upstream/up/callback?state=x',
    ]) {
      const response = await fetch(`${open.t.url}${path}`, { redirect: 'manual' });
      expect(response.status, path).toBeGreaterThanOrEqual(400);
      expect(response.status, path).toBeLessThan(500);
    }
    const post = await fetch(`${open.t.url}/interaction/nope/upstream/up`, {
      method: 'POST',
      redirect: 'manual',
    });
    expect(post.status).toBe(400);
  });
});

describe('linking and unlinking from the account', () => {
  async function holder(d: Downstream, email: string, password: string | null = PASSWORD) {
    const account = await d.t.app.identity.accounts.create({ email, password });
    const key = await issueKey(d.t, account.id, { scopes: ['gateway'] });
    return { id: account.id, headers: bearer(key.secret) };
  }

  /** Starts a link through the API and signs in upstream in the holder's browser. */
  async function link(d: Downstream, headers: Record<string, string>, upstreamEmail: string) {
    const started = await call(d.t, 'POST', '/v1/account/identities', {
      headers,
      body: { provider: 'up' },
    });
    expect(started.status).toBe(202);
    const browser = new TwoSiteBrowser();
    const page = await browser.follow(started.body.link_url as string, REDIRECT);
    const end = await signInUpstream(browser, page, upstreamEmail, d.callback);
    const result = await browser.follow(end.url, REDIRECT);
    return { status: result.response.status, html: await result.response.text(), started };
  }

  it('links a signed-in account to an upstream identity with another address', async () => {
    const me = await holder(closed, 'linker@example.net');
    const result = await link(closed, me.headers, 'newbie@example.com');
    expect(result.status).toBe(200);
    expect(result.html).toContain('Upstream Co is linked');
    const list = await call(closed.t, 'GET', '/v1/account/identities', { headers: me.headers });
    expect(list.status).toBe(200);
    expect(list.body.providers).toEqual([{ id: 'up', name: 'Upstream Co' }]);
    expect(list.body.identities).toHaveLength(1);
    expect(list.body.identities[0]).toMatchObject({
      provider: 'up',
      provider_name: 'Upstream Co',
      email: 'newbie@example.com',
    });
    // That upstream identity now signs in to this account.
    const signIn = await upstreamSignIn(closed, 'newbie@example.com');
    expect(signIn.ok && signIn.claims.sub).toBe(me.id);

    // The link URL works once.
    const again = await fetch(result.started.body.link_url as string, { redirect: 'manual' });
    expect(again.status).toBe(400);
  });

  it('refuses a sub already linked to another account', async () => {
    const first = await holder(closed, 'first@example.net');
    expect((await link(closed, first.headers, 'taken@example.com')).status).toBe(200);
    const second = await holder(closed, 'second@example.net');
    const result = await link(closed, second.headers, 'taken@example.com');
    expect(result.status).toBe(409);
    expect(result.html).toContain('linked to another account');
    expect(await identities(closed, second.id)).toHaveLength(0);
  });

  it('unlinks, but never the last way to sign in', async () => {
    // Made by upstream sign-in: no password.
    const made = await upstreamSignIn(open, 'vera@example.com');
    expect(made.ok).toBe(true);
    const account = await open.t.app.identity.accounts.findByEmail('vera@example.com');
    const key = await issueKey(open.t, account!.id, { scopes: ['gateway'] });
    const headers = bearer(key.secret);
    const list = await call(open.t, 'GET', '/v1/account/identities', { headers });
    const id = list.body.identities[0].id as string;
    const refused = await call(open.t, 'DELETE', `/v1/account/identities/${id}`, { headers });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message ?? refused.body.message).toContain('only way');

    // With a password it may go.
    const withPassword = await holder(open, 'pw@example.net');
    expect((await link(open, withPassword.headers, 'third@example.com')).status).toBe(200);
    const mine = await call(open.t, 'GET', '/v1/account/identities', {
      headers: withPassword.headers,
    });
    const mineId = mine.body.identities[0].id as string;
    // Another account's identity id is not found, not deleted.
    const foreign = await call(open.t, 'DELETE', `/v1/account/identities/${mineId}`, { headers });
    expect(foreign.status).toBe(404);
    const gone = await call(open.t, 'DELETE', `/v1/account/identities/${mineId}`, {
      headers: withPassword.headers,
    });
    expect(gone.status).toBe(204);
    expect(await identities(open, withPassword.id)).toHaveLength(0);
  });

  it('frees the linked identities of a deleted account', async () => {
    const me = await holder(closed, 'leaver@example.net');
    expect((await link(closed, me.headers, 'third@example.com')).status).toBe(200);
    const deleted = await call(closed.t, 'POST', '/v1/account/delete', {
      headers: me.headers,
      body: { current_password: PASSWORD },
    });
    expect(deleted.status).toBe(200);
    expect(await identities(closed, me.id)).toHaveLength(0);
    // The identity no longer reaches the deleted account: closed sign-up has none for it.
    const result = await upstreamSignIn(closed, 'third@example.com');
    expect(result).toMatchObject({ ok: false, status: 403 });
    expect(!result.ok && result.html).toContain('There is no account for this address');
  });

  it('answers hostile input to the REST routes with 4xx', async () => {
    const me = await holder(open, 'hostile@example.net');
    const cases: Array<[string, string, unknown]> = [
      ['POST', '/v1/account/identities', { provider: 'nope' }],
      ['POST', '/v1/account/identities', { provider: '../x' }],
      ['POST', '/v1/account/identities', { provider: 'up', extra: 1 }],
      ['POST', '/v1/account/identities', { provider: 7 }],
      ['DELETE', '/v1/account/identities/idn_missing', undefined],
      ['DELETE', `/v1/account/identities/${'x'.repeat(200)}`, undefined],
    ];
    for (const [method, path, body] of cases) {
      const response = await call(open.t, method, path, { headers: me.headers, body });
      expect(response.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(response.status, `${method} ${path}`).toBeLessThan(500);
    }
    const down = await call(open.t, 'POST', '/v1/account/identities', {
      headers: me.headers,
      body: { provider: 'down' },
    });
    expect(down.status).toBe(502);
    const anonymous = await call(open.t, 'GET', '/v1/account/identities');
    expect(anonymous.status).toBe(401);
  });
});
